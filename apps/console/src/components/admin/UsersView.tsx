'use client';
import { useState } from 'react';
import { Button, Group, Modal, PasswordInput, Select, Stack, Table, Text, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useDebouncedValue, useDisclosure } from '@mantine/hooks';
import { CreateUserDoc, SetUserRoleDoc, UsersDoc } from '@/graphql/operations';
import type { EquipmentFragment, Role, UsersQuery } from '@/gql/graphql';
import { act, useQuery } from '@/lib/client';
import { Empty, LoadError, PageTitle, time, Head, Pager } from '@/components/ui';

const PAGE = 50;

/** The user's last declared terminal (user equipment information) and access network, in a line. */
function equipment(e: EquipmentFragment | null | undefined): string {
  if (!e) return '—';
  const n = e.network;
  const net = n ? [n.type.toLowerCase().replace('_', ' '), n.downlinkKbps != null && `${n.downlinkKbps} kbit/s`, n.rttMs != null && `${n.rttMs} ms RTT`].filter(Boolean).join(', ') : 'network unknown';
  return [`${e.screenWidth}×${e.screenHeight}${e.touch ? ' touch' : ''}`, e.platform, e.codecs.join('/'), e.localResources.length ? e.localResources.join(', ').toLowerCase() : null, net].filter(Boolean).join(' · ');
}

export function UsersView({ initial }: { initial: UsersQuery }) {
  const [search, setSearch] = useState('');
  const [debounced] = useDebouncedValue(search.trim(), 300);
  const [offset, setOffset] = useState(0);
  const q = useQuery(UsersDoc, { search: debounced || null, limit: PAGE, offset }, initial);
  const [opened, { open, close }] = useDisclosure(false);
  const form = useForm<{ username: string; displayName: string; password: string; role: Role }>({
    initialValues: { username: '', displayName: '', password: '', role: 'USER' },
    validate: { username: (v) => (v.trim() ? null : 'Enter a username'), password: (v) => (v.length >= 8 ? null : 'At least 8 characters') },
  });
  const create = form.onSubmit(async (v) => {
    const r = await act(CreateUserDoc, { input: { username: v.username.trim(), displayName: v.displayName.trim() || null, password: v.password }, role: v.role }, `User ${v.username} created`);
    if (r) {
      close();
      form.reset();
      await q.refetch();
    }
  });
  const setRole = async (userId: string, role: Role) => {
    if (await act(SetUserRoleDoc, { userId, role }, `Role changed to ${role}`)) await q.refetch();
  };
  const users = q.data?.users ?? [];
  return (
    <>
      <PageTitle right={<Button onClick={open}>Create user</Button>}>Users</PageTitle>
      <TextInput label="Search" placeholder="username" value={search} onChange={(e) => { setOffset(0); setSearch(e.currentTarget.value); }} mb="md" maw={320} />
      <LoadError error={q.error} />
      <Table.ScrollContainer minWidth={600}>
        <Table striped aria-label="Users">
          <Head cols={['Username', 'Display name', 'Role', 'Equipment and access network', 'Created']} />
          <Table.Tbody>
            {users.map((u) => (
              <Table.Tr key={u.id} data-testid={`user-${u.username}`}>
                <Table.Td>{u.username}</Table.Td>
                <Table.Td>{u.displayName ?? '—'}</Table.Td>
                <Table.Td>
                  <Select aria-label={`Role of ${u.username}`} data={['USER', 'ADMIN']} value={u.role} allowDeselect={false} onChange={(v) => v && v !== u.role && void setRole(u.id, v as Role)} w={120} size="xs" />
                </Table.Td>
                <Table.Td><Text size="xs" data-testid="user-equipment">{equipment(u.equipment)}</Text></Table.Td>
                <Table.Td><Text size="xs">{time(u.createdAt)}</Text></Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {users.length === 0 && <Empty loading={q.loading}>No users match.</Empty>}
      <Pager offset={offset} size={PAGE} shown={users.length} onChange={setOffset} />
      <Modal opened={opened} onClose={close} title="Create a user">
        <form onSubmit={create}>
          <Stack>
            <TextInput label="Username" {...form.getInputProps('username')} />
            <TextInput label="Display name" {...form.getInputProps('displayName')} />
            <PasswordInput label="Password" {...form.getInputProps('password')} />
            <Select label="Role" data={['USER', 'ADMIN']} allowDeselect={false} {...form.getInputProps('role')} />
            <Button type="submit">Create</Button>
          </Stack>
        </form>
      </Modal>
    </>
  );
}
