'use client';
// A watcher's monitoring view: for each user an admin lets them watch (a watcher grant), a
// monitoring request (requestMonitoring) gives a view-only connection to each of that user's active
// sessions; with the SUSPEND privilege they may suspend and resume them.
import { useRef, useState } from 'react';
import { Alert, Badge, Button, Card, Group, Stack, Text, Title } from '@mantine/core';
import { MyWatcherGrantsDoc, RequestMonitoringDoc, ResumeSessionDoc, SessionEventsDoc, StopMonitoringDoc, SuspendSessionDoc } from '@/graphql/operations';
import type { MonitoringFieldsFragment, MyWatcherGrantsQuery } from '@/gql/graphql';
import { ApiError, act, gql, useSubscription } from '@/lib/client';
import { Empty, LiveBadge, PageTitle, STATE_AFTER, StatusBadge } from '@/components/ui';
import { WatchPanel, type StreamTarget } from '@/components/admin/WatchPanel';

type Grant = MyWatcherGrantsQuery['myWatcherGrants'][number];

function MonitoredSession({ m, watcheeId, onStopped }: { m: MonitoringFieldsFragment; watcheeId: string; onStopped: () => void }) {
  const [state, setState] = useState(m.session.state);
  const live = useSubscription(SessionEventsDoc, { sessionId: m.session.id }, ({ sessionEvents: e }) => {
    const next = STATE_AFTER[e.type];
    if (next) setState(next as typeof state);
  });
  const [busy, setBusy] = useState(false);
  const canSuspend = m.privileges.includes('SUSPEND');
  const over = state === 'ENDED' || state === 'FAILED';
  // the first connection came with the monitoring; a reconnection asks for the monitoring again
  const first = useRef<StreamTarget | null>(m.connection ? { url: m.connection.url, token: m.connection.token } : null);
  const connect = async (): Promise<StreamTarget> => {
    const t = first.current;
    if (t) {
      first.current = null;
      return t;
    }
    const again = (await gql(RequestMonitoringDoc, { watcheeId })).requestMonitoring.find((x) => x.session.id === m.session.id);
    if (!again?.connection) throw new Error('The session is no longer there to watch.');
    return { url: again.connection.url, token: again.connection.token };
  };
  const toggle = async () => {
    setBusy(true);
    const r = state === 'SUSPENDED'
      ? (await act(ResumeSessionDoc, { sessionId: m.session.id }, 'Session resumed'))?.resumeSession
      : (await act(SuspendSessionDoc, { sessionId: m.session.id, reason: 'suspended by a watcher' }, 'Session suspended'))?.suspendSession;
    setBusy(false);
    if (r) setState(r.state);
  };
  const stop = async () => {
    if (await act(StopMonitoringDoc, { monitoringId: m.id }, 'Monitoring stopped')) onStopped();
  };
  return (
    <Card withBorder data-testid="monitoring" data-session-id={m.session.id}>
      <Group justify="space-between" wrap="wrap" gap="xs" mb="sm">
        <Text fw={600}>{m.session.ua.name}</Text>
        <Group gap="xs">
          <LiveBadge state={live} />
          <StatusBadge status={state} testId="monitoring-state" />
        </Group>
      </Group>
      <Group gap="xs" mb="sm">
        {canSuspend && (
          <Button size="xs" variant="light" onClick={() => void toggle()} loading={busy} disabled={over || (state !== 'ACTIVE' && state !== 'SUSPENDED')}>
            {state === 'SUSPENDED' ? 'Resume' : 'Suspend'}
          </Button>
        )}
        <Button size="xs" variant="default" onClick={() => void stop()}>Stop monitoring</Button>
      </Group>
      {m.privileges.includes('VIEW') && m.connection ? (
        <WatchPanel connect={connect} over={over} label={`${m.session.user.username}'s session of ${m.session.ua.name}, view only`} />
      ) : (
        <Text size="sm" c="dimmed">You may not see this session&apos;s picture.</Text>
      )}
    </Card>
  );
}

function Watchee({ grant }: { grant: Grant }) {
  const [sessions, setSessions] = useState<MonitoringFieldsFragment[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const request = async () => {
    setBusy(true);
    setError(null);
    try {
      setSessions((await gql(RequestMonitoringDoc, { watcheeId: grant.watchee.id })).requestMonitoring);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(String(e), 'INTERNAL'));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card withBorder data-testid={`watchee-${grant.watchee.username}`}>
      <Group justify="space-between" wrap="wrap" gap="xs" mb="xs">
        <Title order={2} size="h4">{grant.watchee.username}</Title>
        <Group gap="xs">
          {grant.privileges.map((p) => <Badge key={p} variant="light">{p.toLowerCase()}</Badge>)}
          <Button size="xs" onClick={() => void request()} loading={busy}>{sessions ? 'Refresh' : 'Monitor'}</Button>
        </Group>
      </Group>
      {error && (
        <Alert color={error.code === 'UNAVAILABLE' ? 'gray' : 'red'} role="alert" title={error.code === 'UNAVAILABLE' ? 'Monitoring is not available on this platform yet' : 'Monitoring was refused'} data-testid="monitoring-error" data-code={error.code}>
          {error.message}
        </Alert>
      )}
      {sessions && (
        <Stack>
          {sessions.map((m) => <MonitoredSession key={m.id} m={m} watcheeId={grant.watchee.id} onStopped={() => setSessions((l) => l?.filter((x) => x.id !== m.id) ?? null)} />)}
          {sessions.length === 0 && <Empty>{grant.watchee.username} has no active session.</Empty>}
        </Stack>
      )}
    </Card>
  );
}

export function Monitoring({ initial }: { initial: MyWatcherGrantsQuery }) {
  const grants = initial.myWatcherGrants.filter((g) => g.watcher.id === initial.me?.id);
  return (
    <>
      <PageTitle>Monitoring</PageTitle>
      <Stack>
        {grants.map((g) => <Watchee key={g.id} grant={g} />)}
      </Stack>
      {grants.length === 0 && <Empty>No one has been given to you to watch; an admin assigns watchers.</Empty>}
    </>
  );
}
