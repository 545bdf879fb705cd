'use client';
import { useState } from 'react';
import { Box, Button, Card, Code, Group, Modal, SimpleGrid, Stack, Text, Textarea, Timeline } from '@mantine/core';
import { ResumeSessionDoc, SessionEventsDoc, SuspendSessionDoc, TerminateSessionDoc } from '@/graphql/operations';
import type { SessionQuery } from '@/gql/graphql';
import { act, useSubscription } from '@/lib/client';
import { LiveBadge, PageTitle, STATE_AFTER, StatusBadge, time } from '@/components/ui';
import { WatchPanel, sessionConnection } from './WatchPanel';

type SessionData = NonNullable<SessionQuery['session']>;
type Ev = SessionData['events'][number];


export function SessionDetail({ initial }: { initial: SessionData }) {
  const [events, setEvents] = useState<Ev[]>(initial.events);
  const [state, setState] = useState<string>(initial.state);
  // replay: the events so far, then live ones with no gap; keyed by id so replays do not double
  const live = useSubscription(SessionEventsDoc, { sessionId: initial.id }, ({ sessionEvents: e }) => {
    setEvents((list) => (list.some((x) => x.id === e.id) ? list : [...list, e].sort((a, b) => a.at.localeCompare(b.at))));
    const next = STATE_AFTER[e.type];
    if (next) setState(next);
  });
  // terminate and suspend both ask for a reason (recorded in the timeline)
  const [asking, setAsking] = useState<'terminate' | 'suspend' | null>(null);
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const run = async (what: 'terminate' | 'suspend' | 'resume') => {
    setBusy(true);
    const why = reason.trim() || null;
    const r =
      what === 'terminate'
        ? (await act(TerminateSessionDoc, { sessionId: initial.id, reason: why }, 'Session terminated'))?.terminateSession
        : what === 'suspend'
          ? (await act(SuspendSessionDoc, { sessionId: initial.id, reason: why }, 'Session suspended'))?.suspendSession
          : (await act(ResumeSessionDoc, { sessionId: initial.id }, 'Session resumed'))?.resumeSession;
    setBusy(false);
    if (r) {
      setState(r.state);
      setAsking(null);
      setReason('');
    }
  };
  const over = state === 'ENDED' || state === 'FAILED';
  return (
    <>
      <PageTitle
        right={
          <>
            <LiveBadge state={live} />
            {state === 'SUSPENDED' ? (
              <Button variant="light" onClick={() => void run('resume')} loading={busy && asking === null}>Resume</Button>
            ) : (
              <Button variant="light" onClick={() => setAsking('suspend')} disabled={state !== 'ACTIVE'}>Suspend</Button>
            )}
            <Button color="red" onClick={() => setAsking('terminate')} disabled={over}>Terminate</Button>
          </>
        }
      >
        Session <Code fz="inherit">{initial.id.slice(0, 8)}</Code>
      </PageTitle>
      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="md">
        <Card withBorder>
          <Stack gap="xs">
            <Group><Text fw={600} w={140}>State</Text><StatusBadge status={state} testId="session-state" /></Group>
            <Group><Text fw={600} w={140}>User</Text><Text>{initial.user.username}</Text></Group>
            <Group><Text fw={600} w={140}>UA</Text><Text>{initial.ua.name} {initial.uaVersion} ({initial.ua.platform})</Text></Group>
            <Group><Text fw={600} w={140}>VM</Text><Text>{initial.vm?.name ?? '—'}</Text></Group>
            <Group><Text fw={600} w={140}>Reconnection</Text><Text>{initial.reconnectionMethod}, {initial.reconnections} reconnection(s)</Text></Group>
            <Group><Text fw={600} w={140}>Terminal</Text><Text>{initial.terminal.screenWidth}×{initial.terminal.screenHeight}, {initial.terminal.codecs.join(', ')}</Text></Group>
            <Group><Text fw={600} w={140}>Created</Text><Text>{time(initial.createdAt)}</Text></Group>
          </Stack>
        </Card>
        <Card withBorder>
          <Text fw={600} mb="sm">Event timeline</Text>
          <Timeline active={events.length - 1} bulletSize={14} lineWidth={2} data-testid="session-timeline" aria-live="polite">
            {events.map((e) => (
              <Timeline.Item key={e.id} title={e.type} data-testid="session-event" data-type={e.type}>
                <Text size="xs" c="dimmed">{time(e.at)}{e.actor ? ` · ${e.actor.username}` : ''}</Text>
                {e.data != null && Object.keys(e.data as object).length > 0 && <Code block fz="xs" style={{ whiteSpace: 'pre-wrap', wordBreak: 'break-all' }}>{JSON.stringify(e.data)}</Code>}
              </Timeline.Item>
            ))}
          </Timeline>
        </Card>
      </SimpleGrid>
      <Box mt="md"><WatchPanel connect={sessionConnection(initial.id)} over={over} /></Box>
      <Modal opened={asking !== null} onClose={() => setAsking(null)} title={asking === 'suspend' ? 'Suspend the session' : 'Terminate the session'}>
        <Stack>
          <Text size="sm">
            {asking === 'suspend'
              ? 'The UA is paused and the user sees the session suspended until it is resumed; the reason is recorded in the timeline.'
              : <>The user&apos;s stream stops at once; the reason is recorded in the timeline.</>}
          </Text>
          <Textarea label="Reason" value={reason} onChange={(e) => setReason(e.currentTarget.value)} maxLength={500} autosize minRows={2} />
          <Button color={asking === 'suspend' ? undefined : 'red'} onClick={() => asking && void run(asking)} loading={busy}>{asking === 'suspend' ? 'Suspend session' : 'Terminate session'}</Button>
        </Stack>
      </Modal>
    </>
  );
}
