'use client';
import { Button, Checkbox, Group, Modal, Select, Stack, Table, Text } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useDisclosure } from '@mantine/hooks';
import { AssignWatcherDoc, RevokeWatcherDoc, UpdateWatcherPrivilegesDoc, WatcherGrantsDoc } from '@/graphql/operations';
import type { WatcherGrantsQuery, WatcherPrivilege } from '@/gql/graphql';
import { act, useQuery } from '@/lib/client';
import { Empty, LoadError, NotYet, PageTitle, time, Head } from '@/components/ui';

const PRIVILEGES: Array<{ value: WatcherPrivilege; label: string }> = [
  { value: 'VIEW', label: 'View the stream' },
  { value: 'SUSPEND', label: 'Suspend and resume' },
];

export function WatchersView({ initial }: { initial: WatcherGrantsQuery }) {
  const q = useQuery(WatcherGrantsDoc, {}, initial);
  const [opened, { open, close }] = useDisclosure(false);
  const form = useForm<{ watcherId: string; watcheeId: string; privileges: WatcherPrivilege[] }>({
    initialValues: { watcherId: '', watcheeId: '', privileges: ['VIEW'] },
    validate: {
      watcherId: (v) => (v ? null : 'Choose the watcher'),
      watcheeId: (v, all) => (!v ? 'Choose whom they watch' : v === all.watcherId ? 'A user cannot watch themselves' : null),
      privileges: (v) => (v.length ? null : 'Give at least one privilege'),
    },
  });
  const assign = form.onSubmit(async (v) => {
    if (await act(AssignWatcherDoc, v, 'Watcher assigned')) {
      close();
      form.reset();
      await q.refetch();
    }
  });
  const update = async (grantId: string, privileges: WatcherPrivilege[]) => {
    if (!privileges.length) return;
    if (await act(UpdateWatcherPrivilegesDoc, { grantId, privileges }, 'Privileges changed')) await q.refetch();
  };
  const revoke = async (grantId: string) => {
    if (await act(RevokeWatcherDoc, { grantId }, 'Watcher revoked')) await q.refetch();
  };
  const users = (q.data?.users ?? []).map((u) => ({ value: u.id, label: u.username }));
  const grants = q.data?.watcherGrants ?? [];
  return (
    <>
      <PageTitle right={<Button onClick={open}>Assign watcher</Button>}>Watchers</PageTitle>
      <LoadError error={q.error} />
      <Table.ScrollContainer minWidth={700}>
        <Table striped aria-label="Watcher grants">
          <Head cols={['Watcher', 'Watches', 'Privileges', 'Changed', '']} />
          <Table.Tbody>
            {grants.map((g) => (
              <Table.Tr key={g.id} data-testid="watcher-grant">
                <Table.Td>{g.watcher.username}</Table.Td>
                <Table.Td>{g.watchee.username}</Table.Td>
                <Table.Td>
                  <Checkbox.Group value={g.privileges} onChange={(v) => void update(g.id, v as WatcherPrivilege[])} aria-label={`Privileges of ${g.watcher.username} over ${g.watchee.username}`}>
                    <Group gap="md">{PRIVILEGES.map((p) => <Checkbox key={p.value} value={p.value} label={p.label} />)}</Group>
                  </Checkbox.Group>
                </Table.Td>
                <Table.Td><Text size="xs">{time(g.updatedAt)}</Text></Table.Td>
                <Table.Td><Button size="xs" color="red" variant="light" onClick={() => void revoke(g.id)}>Revoke</Button></Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {grants.length === 0 && <Empty loading={q.loading}>No watcher grants.</Empty>}
      <NotYet title="Monitoring is not available yet">
        Watchers can be assigned now; starting a monitoring view (watching the stream, suspend and resume) arrives with the gateway&apos;s
        monitoring flow, which answers UNAVAILABLE today.
      </NotYet>
      <Modal opened={opened} onClose={close} title="Assign a watcher">
        <form onSubmit={assign}>
          <Stack>
            <Select label="Watcher" searchable data={users} {...form.getInputProps('watcherId')} />
            <Select label="Watches (watchee)" searchable data={users} {...form.getInputProps('watcheeId')} />
            <Checkbox.Group label="Privileges" {...form.getInputProps('privileges')}>
              <Group mt="xs">{PRIVILEGES.map((p) => <Checkbox key={p.value} value={p.value} label={p.label} />)}</Group>
            </Checkbox.Group>
            <Button type="submit">Assign</Button>
          </Stack>
        </form>
      </Modal>
    </>
  );
}
