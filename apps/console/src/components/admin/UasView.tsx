'use client';
import { useState } from 'react';
import { Accordion, Badge, Button, Group, Modal, Select, Stack, Table, Text } from '@mantine/core';
import { DeployUaDoc, RemoveUaDoc, UasDoc, UpdateUaDoc, VmEventsDoc } from '@/graphql/operations';
import type { UasQuery } from '@/gql/graphql';
import { act, useQuery, useSubscription } from '@/lib/client';
import { Empty, LiveBadge, LoadError, PageTitle, StatusBadge, bytes, time, Head } from '@/components/ui';

type Ua = UasQuery['uas'][number];
type Vm = UasQuery['vms'][number];
/** What the dialog does: deploy (one VM or all of the platform), update every VM, remove the UA. */
type Action = { kind: 'deploy' | 'update' | 'remove'; ua: Ua };
const RUNNING = new Set(['IDLE', 'BUSY', 'DRAINING']);
const ALL = '';

function ActionDialog({ action, vms, onClose, onDone }: { action: Action | null; vms: Vm[]; onClose: () => void; onDone: () => Promise<void> }) {
  const [vmId, setVmId] = useState<string>(ALL);
  const [version, setVersion] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  if (!action) return null;
  const { ua, kind } = action;
  const v = version ?? ua.currentVersion;
  const targets = vms.filter((vm) => vm.platform === ua.platform && RUNNING.has(vm.status));
  const run = async () => {
    setBusy(true);
    const r =
      kind === 'deploy'
        ? await act(DeployUaDoc, { uaId: ua.id, vmId: vmId || null, version: v }, `Deploying ${ua.name} ${v}`)
        : kind === 'update'
          ? await act(UpdateUaDoc, { uaId: ua.id, version: v }, `Updating ${ua.name} to ${v}`)
          : await act(RemoveUaDoc, { uaId: ua.id, vmId: null }, `${ua.name} removed: VMs drop it once no session runs it`);
    setBusy(false);
    if (r) {
      onClose();
      await onDone();
    }
  };
  const title = kind === 'deploy' ? `Deploy ${ua.name}` : kind === 'update' ? `Update ${ua.name}` : `Remove ${ua.name}`;
  return (
    <Modal opened onClose={onClose} title={title}>
      <Stack>
        {kind === 'remove' ? (
          <Text size="sm">No new session gets {ua.name}; each VM drops it once no session of it runs there. Running sessions go on.</Text>
        ) : (
          <Select label="Version" data={ua.versions.map((x) => ({ value: x.version, label: `${x.version} (${x.status.toLowerCase()})` }))} value={v} onChange={setVersion} allowDeselect={false} />
        )}
        {kind === 'deploy' && (
          <Select label="VM" data={[{ value: ALL, label: `every running ${ua.platform} VM` }, ...targets.map((vm) => ({ value: vm.id, label: vm.name }))]} value={vmId} onChange={(x) => setVmId(x ?? ALL)} allowDeselect={false} />
        )}
        {kind === 'update' && <Text size="sm">Every VM that has {ua.name} moves to this version; running sessions keep theirs until they end.</Text>}
        <Button color={kind === 'remove' ? 'red' : undefined} onClick={run} loading={busy}>{title}</Button>
      </Stack>
    </Modal>
  );
}

export function UasView({ initial }: { initial: UasQuery }) {
  const q = useQuery(UasDoc, {}, initial);
  const { setData, refetch } = q;
  // each VM tells its deployments' progress (DEPLOYMENT_CHANGED): shown at once, a new one fetched
  const live = useSubscription(VmEventsDoc, {}, ({ vmEvents: e }) => {
    if (e.type !== 'DEPLOYMENT_CHANGED') return;
    const d = e.data as { uaId: string; version: string; status: string; error: string | null };
    const known = q.data?.uas.some((ua) => ua.id === d.uaId && ua.deployments.some((x) => x.vm.id === e.vm.id));
    if (!known) return void refetch();
    setData((data) => ({
      ...data,
      uas: data.uas.map((ua) => (ua.id !== d.uaId ? ua : { ...ua, deployments: ua.deployments.map((x) => (x.vm.id === e.vm.id ? { ...x, status: d.status as typeof x.status, version: d.version, error: d.error } : x)) })),
    }));
  }, q.refetch);
  const [action, setAction] = useState<Action | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const removeFrom = async (ua: Ua, vm: { id: string; name: string }) => {
    setBusy(`${ua.id}:${vm.id}`);
    const r = await act(RemoveUaDoc, { uaId: ua.id, vmId: vm.id }, `Removing ${ua.name} from ${vm.name}`);
    setBusy(null);
    if (r) await refetch();
  };
  const uas = q.data?.uas ?? [];
  return (
    <>
      <PageTitle right={<LiveBadge state={live} />}>UAs</PageTitle>
      <LoadError error={q.error} />
      <Accordion variant="separated" multiple>
        {uas.map((ua) => (
          <Accordion.Item key={ua.id} value={ua.id} data-testid={`ua-${ua.name}`}>
            <Accordion.Control>
              <Group gap="sm">
                <Text fw={600}>{ua.name}</Text>
                <Badge variant="light">{ua.platform}</Badge>
                {ua.removedAt && <Badge color="gray">removed</Badge>}
                <Text size="sm" c="dimmed">current {ua.currentVersion}</Text>
                <Text size="sm" c="dimmed">· {ua.deployments.filter((d) => d.status === 'INSTALLED').length} VM(s)</Text>
              </Group>
            </Accordion.Control>
            <Accordion.Panel>
              <Text size="sm" mb="xs">
                {ua.storefront ? `From storefront ${ua.storefront.name}. ` : 'Registered by the platform. '}
                {ua.minScreenWidth ? `Needs a screen of at least ${ua.minScreenWidth}×${ua.minScreenHeight ?? '?'}. ` : ''}
                {ua.requiredResources.length ? `Uses ${ua.requiredResources.join(', ').toLowerCase()}.` : ''}
                {ua.removedAt ? ` Removed ${time(ua.removedAt)}.` : ''}
              </Text>
              <Group gap="xs" mb="sm">
                <Button size="xs" onClick={() => setAction({ kind: 'deploy', ua })} disabled={!!ua.removedAt}>Deploy</Button>
                <Button size="xs" variant="light" onClick={() => setAction({ kind: 'update', ua })} disabled={!!ua.removedAt}>Update</Button>
                <Button size="xs" variant="light" color="red" onClick={() => setAction({ kind: 'remove', ua })} disabled={!!ua.removedAt}>Remove</Button>
              </Group>
              <Table aria-label={`Versions of ${ua.name}`} mb="sm">
                <Head cols={['Version', 'Status', 'Size', 'SHA-256', 'Added']} />
                <Table.Tbody>
                  {ua.versions.map((v) => (
                    <Table.Tr key={v.version}>
                      <Table.Td>{v.version}{v.version === ua.currentVersion && <Badge ml="xs" size="xs">current</Badge>}</Table.Td>
                      <Table.Td><Text size="xs">{v.status}</Text></Table.Td>
                      <Table.Td>{bytes(v.sizeBytes)}</Table.Td>
                      <Table.Td><Text ff="monospace" size="xs">{v.sha256.slice(0, 16)}…</Text></Table.Td>
                      <Table.Td><Text size="xs">{time(v.createdAt)}</Text></Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
              <Table aria-label={`Deployments of ${ua.name}`}>
                <Head cols={['VM', 'Version', 'Status', '']} />
                <Table.Tbody>
                  {ua.deployments.map((d) => (
                    <Table.Tr key={d.id} data-testid={`deployment-${ua.name}-${d.vm.name}`}>
                      <Table.Td>{d.vm.name}</Table.Td>
                      <Table.Td>{d.version}</Table.Td>
                      <Table.Td><StatusBadge status={d.status} testId="deployment-status" />{d.error && <Text size="xs" c="red">{d.error}</Text>}</Table.Td>
                      <Table.Td>
                        {d.status !== 'REMOVED' && d.status !== 'REMOVING' && (
                          <Button size="xs" variant="subtle" color="red" loading={busy === `${ua.id}:${d.vm.id}`} onClick={() => void removeFrom(ua, d.vm)} aria-label={`Remove ${ua.name} from ${d.vm.name}`}>Remove</Button>
                        )}
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
              {ua.deployments.length === 0 && <Empty>Not deployed on any VM yet (it is deployed when a session needs it).</Empty>}
            </Accordion.Panel>
          </Accordion.Item>
        ))}
      </Accordion>
      {uas.length === 0 && <Empty loading={q.loading}>No UAs registered.</Empty>}
      <ActionDialog key={action ? `${action.kind}:${action.ua.id}` : 'none'} action={action} vms={q.data?.vms ?? []} onClose={() => setAction(null)} onDone={refetch} />
    </>
  );
}
