'use client';
// Invitations to join another user's session: accept, or reject with a reason. New ones arrive over
// the `notifications` subscription.
import { useState } from 'react';
import { Badge, Button, Card, Group, Modal, SegmentedControl, Stack, Text, Textarea } from '@mantine/core';
import { MyInvitationsDoc, MyNotificationsDoc, RespondToInvitationDoc } from '@/graphql/operations';
import type { InvitationStatus, MyInvitationsQuery } from '@/gql/graphql';
import { act, useQuery, useSubscription } from '@/lib/client';
import { Empty, LiveBadge, LoadError, PageTitle, StatusBadge, time } from '@/components/ui';
import { WatchPanel, sessionConnection } from '@/components/admin/WatchPanel';

type Invitation = MyInvitationsQuery['myInvitations'][number];
const OVER = new Set(['ENDED', 'FAILED']);

export function Invitations({ initial }: { initial: MyInvitationsQuery }) {
  const [status, setStatus] = useState<InvitationStatus | 'ALL'>('ALL');
  const q = useQuery(MyInvitationsDoc, { status: status === 'ALL' ? null : status }, status === 'ALL' ? initial : null);
  const live = useSubscription(MyNotificationsDoc, {}, ({ notifications }) => {
    if (notifications.invitation) void q.refetch();
  }, q.refetch);
  const [rejecting, setRejecting] = useState<Invitation | null>(null);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState<string | null>(null);
  const [watching, setWatching] = useState<string | null>(null);
  const respond = async (inv: Invitation, accept: boolean) => {
    setBusy(`${inv.id}:${accept}`);
    const r = await act(RespondToInvitationDoc, { invitationId: inv.id, accept, rejectionReason: accept ? null : reason.trim() || null }, accept ? 'Invitation accepted' : 'Invitation rejected');
    setBusy(null);
    if (!r) return;
    setRejecting(null);
    setReason('');
    await q.refetch();
  };
  const list = q.data?.myInvitations ?? [];
  return (
    <>
      <PageTitle right={<LiveBadge state={live} />}>Invitations</PageTitle>
      <SegmentedControl
        mb="md"
        aria-label="Show invitations"
        data={[{ value: 'ALL', label: 'All' }, { value: 'PENDING', label: 'Pending' }, { value: 'ACCEPTED', label: 'Accepted' }, { value: 'REJECTED', label: 'Rejected' }]}
        value={status}
        onChange={(v) => setStatus(v as InvitationStatus | 'ALL')}
      />
      <LoadError error={q.error} />
      <Stack>
        {list.map((inv) => (
          <Card key={inv.id} withBorder data-testid="invitation" data-invitation-id={inv.id} data-status={inv.status}>
            <Group justify="space-between" wrap="wrap" gap="xs">
              <Text fw={600}>{inv.from.username} invites you to {inv.session.ua.name}</Text>
              <StatusBadge status={inv.status} />
            </Group>
            <Text size="sm" c="dimmed">
              as {inv.role === 'PLAYER' ? 'a player' : 'a viewer'} · sent {time(inv.createdAt)} · the session is {inv.session.state.toLowerCase()}
              {inv.respondedAt ? ` · answered ${time(inv.respondedAt)}` : ''}
            </Text>
            {inv.rejectionReason && <Text size="sm">Reason: {inv.rejectionReason}</Text>}
            {inv.status === 'PENDING' && (
              <Group mt="sm">
                <Button onClick={() => void respond(inv, true)} loading={busy === `${inv.id}:true`}>Accept</Button>
                <Button variant="default" onClick={() => setRejecting(inv)}>Reject</Button>
              </Group>
            )}
            {inv.status === 'ACCEPTED' && !OVER.has(inv.session.state) && (
              <Stack mt="sm">
                {watching === inv.id ? (
                  <WatchPanel connect={sessionConnection(inv.session.id)} over={false} label={`${inv.from.username}'s session of ${inv.session.ua.name}`} />
                ) : (
                  <Button variant="light" w="fit-content" onClick={() => setWatching(inv.id)}>Open the session</Button>
                )}
              </Stack>
            )}
          </Card>
        ))}
      </Stack>
      {list.length === 0 && <Empty loading={q.loading}>No invitations.</Empty>}
      <Modal opened={rejecting !== null} onClose={() => setRejecting(null)} title="Reject the invitation">
        <Stack>
          <Text size="sm">{rejecting && `${rejecting.from.username} is told that you declined, with your reason if you give one.`}</Text>
          <Textarea label="Reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)} maxLength={500} autosize minRows={2} data-autofocus />
          <Button color="red" onClick={() => rejecting && void respond(rejecting, false)} loading={busy === `${rejecting?.id}:false`}>Reject invitation</Button>
        </Stack>
      </Modal>
    </>
  );
}
