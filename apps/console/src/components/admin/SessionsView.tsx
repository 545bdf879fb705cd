'use client';
import { useState } from 'react';
import Link from 'next/link';
import { Anchor, Button, Group, Select, Table, Text } from '@mantine/core';
import { SessionFiltersDoc, SessionsDoc } from '@/graphql/operations';
import type { SessionState, SessionsQuery } from '@/gql/graphql';
import { useQuery } from '@/lib/client';
import { Empty, IdFilter, LoadError, PageTitle, StatusBadge, time, Head, Pager } from '@/components/ui';

const STATES: SessionState[] = ['REQUESTED', 'ASSIGNED', 'ACTIVE', 'DISCONNECTED', 'SUSPENDED', 'ENDED', 'FAILED'];
const PAGE = 50;

export function SessionsView({ initial }: { initial: SessionsQuery }) {
  const [state, setState] = useState<SessionState | null>(null);
  const [userId, setUserId] = useState<string | null>(null);
  const [uaId, setUaId] = useState<string | null>(null);
  const [vmId, setVmId] = useState<string | null>(null);
  const [offset, setOffset] = useState(0);
  const q = useQuery(SessionsDoc, { state, userId, uaId, vmId, limit: PAGE, offset }, initial);
  const filters = useQuery(SessionFiltersDoc, {});
  const filter = (set: (v: string | null) => void) => (v: string | null) => {
    setOffset(0);
    set(v);
  };
  const rows = q.data?.sessions ?? [];
  return (
    <>
      <PageTitle right={<Button variant="default" onClick={() => void q.refetch()} loading={q.loading}>Refresh</Button>}>Sessions</PageTitle>
      <Group mb="md" align="end">
        <Select
          label="State"
          placeholder="any state"
          clearable
          data={STATES}
          value={state}
          onChange={(v) => {
            setOffset(0);
            setState(v as SessionState | null);
          }}
          w={220}
        />
        <IdFilter label="User" items={filters.data?.users.map((u) => ({ id: u.id, name: u.username }))} value={userId} onChange={filter(setUserId)} />
        <IdFilter label="UA" items={filters.data?.uas} value={uaId} onChange={filter(setUaId)} />
        <IdFilter label="VM" items={filters.data?.vms} value={vmId} onChange={filter(setVmId)} />
      </Group>
      <LoadError error={q.error} />
      <Table.ScrollContainer minWidth={700}>
        <Table striped highlightOnHover aria-label="Sessions" data-testid="session-table">
          <Head cols={['Session', 'State', 'User', 'UA', 'VM', 'Created']} />
          <Table.Tbody>
            {rows.map((s) => (
              <Table.Tr key={s.id} data-testid="session-row" data-session-id={s.id}>
                <Table.Td><Anchor component={Link} href={`/admin/sessions/${s.id}`} ff="monospace" size="sm">{s.id.slice(0, 8)}</Anchor></Table.Td>
                <Table.Td><StatusBadge status={s.state} /></Table.Td>
                <Table.Td>{s.user.username}</Table.Td>
                <Table.Td>{s.ua.name} <Text span size="xs" c="dimmed">{s.uaVersion}</Text></Table.Td>
                <Table.Td>{s.vm?.name ?? '—'}</Table.Td>
                <Table.Td><Text size="xs">{time(s.createdAt)}</Text></Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {rows.length === 0 && <Empty loading={q.loading}>No sessions match.</Empty>}
      <Pager offset={offset} size={PAGE} shown={rows.length} onChange={setOffset} />
    </>
  );
}
