'use client';
// VM Data (seed 7.2): the snapshots kept per user and UA, paged on the server (newest first, the
// only order the API offers), with delete.
import { useState } from 'react';
import Link from 'next/link';
import { Anchor, Badge, Button, Group, Modal, Stack, Table, Text } from '@mantine/core';
import { DeleteSnapshotDoc, SnapshotFiltersDoc, SnapshotsDoc } from '@/graphql/operations';
import type { SnapshotsQuery } from '@/gql/graphql';
import { act, useQuery } from '@/lib/client';
import { Empty, IdFilter, LoadError, PageTitle, bytes, time, Head, Pager } from '@/components/ui';

const PAGE = 50;
type Snapshot = SnapshotsQuery['snapshots'][number];

export function SnapshotsView({ initial }: { initial: SnapshotsQuery }) {
  const [userId, setUserId] = useState<string | null>(null);
  const [uaId, setUaId] = useState<string | null>(null);
  const [offset, setOffset] = useState(0);
  const q = useQuery(SnapshotsDoc, { userId, uaId, limit: PAGE, offset }, initial);
  const filters = useQuery(SnapshotFiltersDoc, {});
  const [doomed, setDoomed] = useState<Snapshot | null>(null);
  const [busy, setBusy] = useState(false);
  const remove = async () => {
    if (!doomed) return;
    setBusy(true);
    const r = await act(DeleteSnapshotDoc, { id: doomed.id }, 'Snapshot deleted');
    setBusy(false);
    setDoomed(null);
    if (r) await q.refetch();
  };
  const filter = (set: (v: string | null) => void) => (v: string | null) => {
    setOffset(0);
    set(v);
  };
  const rows = q.data?.snapshots ?? [];
  return (
    <>
      <PageTitle right={<Button variant="default" onClick={() => void q.refetch()} loading={q.loading}>Refresh</Button>}>VM Data</PageTitle>
      <Group mb="md" align="end">
        <IdFilter label="User" items={filters.data?.users.map((u) => ({ id: u.id, name: u.username }))} value={userId} onChange={filter(setUserId)} />
        <IdFilter label="UA" items={filters.data?.uas} value={uaId} onChange={filter(setUaId)} />
      </Group>
      <LoadError error={q.error} />
      <Table.ScrollContainer minWidth={760}>
        <Table striped highlightOnHover aria-label="VM snapshots" data-testid="snapshot-table">
          <Head cols={['User', 'UA', 'Kind', 'Size', 'Created', 'Last restored', 'Session', '']} />
          <Table.Tbody>
            {rows.map((s) => (
              <Table.Tr key={s.id} data-testid="snapshot-row" data-snapshot-id={s.id}>
                <Table.Td>{s.user.username}</Table.Td>
                <Table.Td>{s.ua.name}</Table.Td>
                <Table.Td><Badge variant="light" color={s.kind === 'FULL' ? 'grape' : 'blue'}>{s.kind}</Badge></Table.Td>
                <Table.Td>{bytes(s.sizeBytes)}</Table.Td>
                <Table.Td><Text size="xs">{time(s.createdAt)}</Text></Table.Td>
                <Table.Td><Text size="xs">{time(s.lastRestoredAt)}</Text></Table.Td>
                <Table.Td>{s.session ? <Anchor component={Link} href={`/admin/sessions/${s.session.id}`} ff="monospace" size="sm">{s.session.id.slice(0, 8)}</Anchor> : '—'}</Table.Td>
                <Table.Td>
                  <Button size="xs" variant="light" color="red" onClick={() => setDoomed(s)} aria-label={`Delete the snapshot of ${s.user.username} for ${s.ua.name} from ${time(s.createdAt)}`}>Delete</Button>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {rows.length === 0 && <Empty loading={q.loading}>No VM Data matches.</Empty>}
      <Pager offset={offset} size={PAGE} shown={rows.length} onChange={setOffset} />
      <Modal opened={doomed !== null} onClose={() => setDoomed(null)} title="Delete the snapshot">
        <Stack>
          <Text size="sm">
            {doomed && `The ${doomed.kind === 'FULL' ? 'full VM state' : 'application data'} of ${doomed.user.username} for ${doomed.ua.name} is deleted: no later session can be restored from it.`}
          </Text>
          <Button color="red" onClick={remove} loading={busy}>Delete snapshot</Button>
        </Stack>
      </Modal>
    </>
  );
}
