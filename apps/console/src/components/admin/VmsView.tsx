'use client';
import { useState } from 'react';
import { Button, Group, Modal, NumberInput, Progress, Select, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useDisclosure } from '@mantine/hooks';
import { DrainVmDoc, ProvisionVmDoc, RemoveVmDoc, VmEventsDoc, VmsDoc } from '@/graphql/operations';
import type { Platform, VmProvider, VmsQuery } from '@/gql/graphql';
import { act, useQuery, useSubscription } from '@/lib/client';
import { Empty, LiveBadge, LoadError, PageTitle, StatusBadge, time, Head } from '@/components/ui';

type VmRow = VmsQuery['vms'][number];

export function VmsView({ initial }: { initial: VmsQuery }) {
  const q = useQuery(VmsDoc, {}, initial);
  // each VM event carries the VM as it is now: patch its row at once; the pool's counts come with a
  // reload (as does a VM that just appeared)
  const live = useSubscription(VmEventsDoc, {}, ({ vmEvents }) => {
    q.setData((d) => ({ ...d, vms: d.vms.map((v) => (v.id === vmEvents.vm.id ? { ...v, ...vmEvents.vm } : v)) }));
    void q.refetch();
  }, q.refetch);
  const [opened, { open, close }] = useDisclosure(false);
  const [busy, setBusy] = useState<string | null>(null);
  const form = useForm<{ platform: Platform; provider: VmProvider | ''; capacity: number; name: string }>({
    initialValues: { platform: 'WASM', provider: '', capacity: 2, name: '' },
    validate: { capacity: (v) => (v >= 1 && v <= 64 ? null : 'From 1 to 64 sessions') },
  });

  const provision = form.onSubmit(async (v) => {
    setBusy('provision');
    const r = await act(ProvisionVmDoc, { input: { platform: v.platform, capacity: v.capacity, name: v.name.trim() || null, provider: v.provider || null } }, 'VM provisioning started');
    setBusy(null);
    if (r) {
      close();
      form.reset();
      await q.refetch();
    }
  });
  const run = async (id: string, what: 'drain' | 'remove') => {
    setBusy(`${what}:${id}`);
    const r = what === 'drain' ? await act(DrainVmDoc, { id }, 'VM draining: it takes no new sessions') : await act(RemoveVmDoc, { id }, 'VM removed');
    setBusy(null);
    if (r) await q.refetch();
  };

  const vms = q.data?.vms ?? [];
  return (
    <>
      <PageTitle right={<><LiveBadge state={live} /><Button onClick={open}>Provision VM</Button></>}>Virtual machines</PageTitle>
      <LoadError error={q.error} />
      <Table.ScrollContainer minWidth={800}>
        <Table striped highlightOnHover aria-label="Virtual machines" data-testid="vm-table">
          <Head cols={['Name', 'Platform', 'Provider', 'Status', 'Load', 'Why', 'Deployments', 'Heartbeat', 'Actions']} />
          <Table.Tbody>
            {vms.map((vm: VmRow) => (
              <Table.Tr key={vm.id} data-testid={`vm-row-${vm.name}`} data-vm-id={vm.id}>
                <Table.Td>{vm.name}</Table.Td>
                <Table.Td>{vm.platform}</Table.Td>
                <Table.Td>{vm.provider}</Table.Td>
                <Table.Td><StatusBadge status={vm.status} testId="vm-status" /></Table.Td>
                <Table.Td miw={120}>
                  <Text size="xs">{vm.activeSessions} / {vm.capacity} sessions</Text>
                  <Progress value={vm.capacity ? (100 * vm.activeSessions) / vm.capacity : 0} size="sm" aria-label={`Sessions of ${vm.name}`} />
                  {vm.load && (
                    <>
                      <Text size="xs" mt={4} data-testid="vm-cpu">CPU {Math.round(vm.load.cpuLoad * 100)}% · {Math.round(vm.load.rssBytes / 1048576)} MB</Text>
                      <Progress value={100 * vm.load.cpuLoad} size="sm" color={vm.load.cpuLoad >= 0.85 ? 'red' : 'teal'} aria-label={`CPU of ${vm.name}`} />
                    </>
                  )}
                </Table.Td>
                <Table.Td maw={260} data-testid="vm-why">
                  <Text size="xs">{vm.startReason ?? '—'}</Text>
                  {vm.statusReason && <Text size="xs" c="dimmed">{vm.statusReason}</Text>}
                </Table.Td>
                <Table.Td><Text size="xs">{vm.deployments.filter((d) => d.status === 'INSTALLED').map((d) => `${d.ua.name}@${d.version}`).join(', ') || '—'}</Text></Table.Td>
                <Table.Td><Text size="xs">{time(vm.lastHeartbeatAt)}</Text></Table.Td>
                <Table.Td>
                  <Group gap="xs" wrap="nowrap">
                    <Button size="xs" variant="light" color="orange" disabled={vm.status === 'DRAINING' || vm.status === 'OFFLINE'} loading={busy === `drain:${vm.id}`} onClick={() => run(vm.id, 'drain')} aria-label={`Drain ${vm.name}`}>Drain</Button>
                    <Button size="xs" variant="light" color="red" loading={busy === `remove:${vm.id}`} onClick={() => run(vm.id, 'remove')} aria-label={`Remove ${vm.name}`}>Remove</Button>
                  </Group>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {vms.length === 0 && <Empty loading={q.loading}>No VMs yet: provision one.</Empty>}
      <Title order={2} size="h4" mt="lg" mb="xs">Pool</Title>
      <Table.ScrollContainer minWidth={800}>
        <Table striped aria-label="VM pool by platform" data-testid="pool-table">
          <Head cols={['Platform', 'Warm target', 'Idle', 'Busy', 'Starting', 'Hot', 'Free slots', 'Waiting', 'Next']} />
          <Table.Tbody>
            {(q.data?.vmPool ?? []).map((p) => (
              <Table.Tr key={p.platform} data-testid={`pool-${p.platform}`}>
                <Table.Td>{p.platform}</Table.Td>
                <Table.Td>{p.warmTarget}</Table.Td>
                <Table.Td>{p.idleVms}</Table.Td>
                <Table.Td>{p.busyVms}</Table.Td>
                <Table.Td>{p.startingVms}</Table.Td>
                <Table.Td>{p.hotVms}</Table.Td>
                <Table.Td>{p.freeSlots}</Table.Td>
                <Table.Td>{p.waitingRequests}</Table.Td>
                <Table.Td maw={320}>
                  <Text size="xs" c={p.unavailable ? 'red' : undefined} data-testid="pool-next">
                    {p.unavailable ?? (p.wantsMore > 0 ? `starts ${p.wantsMore}: ${p.reason}` : 'nothing to start')}
                  </Text>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      <Modal opened={opened} onClose={close} title="Provision a VM">
        <form onSubmit={provision}>
          <Stack>
            <Select label="Platform" data={['WASM', 'LINUX_X11']} allowDeselect={false} {...form.getInputProps('platform')} />
            <Select label="Provider" data={[{ value: '', label: 'Gateway default' }, { value: 'PROCESS', label: 'PROCESS' }, { value: 'DOCKER', label: 'DOCKER' }]} allowDeselect={false} {...form.getInputProps('provider')} />
            <NumberInput label="Capacity (sessions)" min={1} max={64} {...form.getInputProps('capacity')} />
            <TextInput label="Name (optional)" {...form.getInputProps('name')} />
            <Button type="submit" loading={busy === 'provision'}>Provision</Button>
          </Stack>
        </form>
      </Modal>
    </>
  );
}
