'use client';
import { useEffect, useState } from 'react';
import Link from 'next/link';
import { Anchor, Card, Group, Progress, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { DashboardDoc, VmEventsDoc } from '@/graphql/operations';
import type { DashboardQuery } from '@/gql/graphql';
import { useQuery, useSubscription } from '@/lib/client';
import { Empty, LiveBadge, LoadError, PageTitle, StatusBadge, Head } from '@/components/ui';
import { SessionsChart } from './SessionsChart';

const LIVE = new Set(['REQUESTED', 'ASSIGNED', 'ACTIVE', 'DISCONNECTED', 'SUSPENDED']);
const SERVING = new Set(['IDLE', 'BUSY']);
/** The API has no subscription for all sessions: the session list is refreshed this often. */
const SESSION_REFRESH_MS = 5_000;

function Stat({ label, value, hint }: { label: string; value: number | string; hint?: string }) {
  return (
    <Card withBorder padding="md">
      <Text size="xs" c="dimmed" tt="uppercase" fw={700}>{label}</Text>
      <Text fz={28} fw={700} data-testid={`stat-${label.toLowerCase().replace(/\s+/g, '-')}`}>{value}</Text>
      {hint && <Text size="xs" c="dimmed">{hint}</Text>}
    </Card>
  );
}

export function Dashboard({ initial }: { initial: DashboardQuery }) {
  const q = useQuery(DashboardDoc, {}, initial);
  const live = useSubscription(VmEventsDoc, {}, ({ vmEvents }) => {
    q.setData((d) => ({ ...d, vms: d.vms.some((v) => v.id === vmEvents.vm.id) ? d.vms.map((v) => (v.id === vmEvents.vm.id ? vmEvents.vm : v)) : [...d.vms, vmEvents.vm] }));
  }, q.refetch);
  const { refetch } = q;
  // the chart's "now": set in the browser after hydration (the server's render has none), moved on each refresh
  const [now, setNow] = useState<number | null>(null);
  useEffect(() => {
    setNow(Date.now());
    const t = setInterval(() => {
      setNow(Date.now());
      void refetch();
    }, SESSION_REFRESH_MS);
    return () => clearInterval(t);
  }, [refetch]);

  const d = q.data ?? initial;
  const vms = d.vms.filter((v) => v.status !== 'OFFLINE' || v.activeSessions > 0);
  const byStatus = new Map<string, number>();
  for (const v of d.vms) byStatus.set(v.status, (byStatus.get(v.status) ?? 0) + 1);
  const freeSlots = d.vms.filter((v) => SERVING.has(v.status)).reduce((n, v) => n + Math.max(0, v.capacity - v.activeSessions), 0);
  const liveSessions = d.live.filter((s) => LIVE.has(s.state));
  return (
    <>
      <PageTitle right={<LiveBadge state={live} />}>Dashboard</PageTitle>
      <LoadError error={q.error} />
      <SimpleGrid cols={{ base: 2, sm: 3, lg: 6 }} mb="lg">
        <Stat label="VMs" value={d.vms.length} hint={[...byStatus].map(([s, n]) => `${n} ${s.toLowerCase()}`).join(', ') || 'none'} />
        <Stat label="Free slots" value={freeSlots} hint="on idle and busy VMs" />
        <Stat label="Live sessions" value={liveSessions.length} />
        <Stat label="UAs" value={d.uas.length} />
        <Stat label="Users" value={d.users.length} />
        <Stat label="Storefronts" value={d.storefronts.filter((s) => s.enabled).length} hint={`${d.storefronts.length} registered`} />
      </SimpleGrid>
      {now !== null && <SessionsChart sessions={d.live} now={now} />}
      <SimpleGrid cols={{ base: 1, lg: 2 }}>
        <Card withBorder>
          <Group justify="space-between" mb="sm">
            <Title order={2} size="h4">VMs</Title>
            <Anchor component={Link} href="/admin/vms" size="sm">Manage</Anchor>
          </Group>
          <Stack gap="sm">
            {vms.map((v) => (
              <div key={v.id} data-testid={`dash-vm-${v.name}`}>
                <Group justify="space-between" gap="xs">
                  <Text size="sm" fw={500}>{v.name} <Text span size="xs" c="dimmed">{v.platform} · {v.provider}</Text></Text>
                  <StatusBadge status={v.status} />
                </Group>
                <Progress value={v.capacity ? (100 * v.activeSessions) / v.capacity : 0} size="sm" mt={4} aria-label={`Load of ${v.name}: ${v.activeSessions} of ${v.capacity}`} />
              </div>
            ))}
            {vms.length === 0 && <Empty>No VMs running.</Empty>}
          </Stack>
        </Card>
        <Card withBorder>
          <Group justify="space-between" mb="sm">
            <Title order={2} size="h4">Live sessions</Title>
            <Anchor component={Link} href="/admin/sessions" size="sm">All sessions</Anchor>
          </Group>
          <Table aria-label="Live sessions">
            <Head cols={['User', 'UA', 'VM', 'State']} />
            <Table.Tbody>
              {liveSessions.slice(0, 12).map((s) => (
                <Table.Tr key={s.id}>
                  <Table.Td><Anchor component={Link} href={`/admin/sessions/${s.id}`} size="sm">{s.user.username}</Anchor></Table.Td>
                  <Table.Td>{s.ua.name}</Table.Td>
                  <Table.Td>{s.vm?.name ?? '—'}</Table.Td>
                  <Table.Td><StatusBadge status={s.state} /></Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          {liveSessions.length === 0 && <Empty>No live sessions.</Empty>}
        </Card>
      </SimpleGrid>
    </>
  );
}
