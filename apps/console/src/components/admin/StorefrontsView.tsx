'use client';
import Link from 'next/link';
import { useState } from 'react';
import { Alert, Anchor, Button, Code, CopyButton, Group, Modal, Stack, Switch, Table, Text, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useDisclosure } from '@mantine/hooks';
import { RegisterStorefrontDoc, SetStorefrontEnabledDoc, StorefrontsDoc } from '@/graphql/operations';
import type { StorefrontsQuery } from '@/gql/graphql';
import { act, useQuery } from '@/lib/client';
import { Empty, LoadError, PageTitle, time, Head } from '@/components/ui';

export function StorefrontsView({ initial }: { initial: StorefrontsQuery }) {
  const q = useQuery(StorefrontsDoc, {}, initial);
  const [opened, { open, close }] = useDisclosure(false);
  const [apiKey, setApiKey] = useState<{ name: string; key: string } | null>(null);
  const form = useForm({
    initialValues: { name: '', baseUrl: '' },
    validate: {
      name: (v) => (v.trim() ? null : 'Enter a name'),
      baseUrl: (v) => (/^https?:\/\/\S+$/.test(v.trim()) ? null : 'An http(s) URL, e.g. https://store.example.com/'),
    },
  });
  const register = form.onSubmit(async (v) => {
    const r = await act(RegisterStorefrontDoc, { name: v.name.trim(), baseUrl: v.baseUrl.trim() });
    if (r) {
      form.reset();
      setApiKey({ name: r.registerStorefront.storefront.name, key: r.registerStorefront.apiKey });
      await q.refetch();
    }
  });
  const closeModal = () => {
    setApiKey(null);
    close();
  };
  const setEnabled = async (id: string, enabled: boolean) => {
    if (await act(SetStorefrontEnabledDoc, { id, enabled }, enabled ? 'Storefront enabled' : 'Storefront disabled: its key is refused')) await q.refetch();
  };
  const rows = q.data?.storefronts ?? [];
  return (
    <>
      <PageTitle right={<Button onClick={open}>Register storefront</Button>}>Storefronts</PageTitle>
      <LoadError error={q.error} />
      <Table.ScrollContainer minWidth={600}>
        <Table striped aria-label="Storefronts">
          <Head cols={['Name', 'Base URL', 'Registered', 'Enabled']} />
          <Table.Tbody>
            {rows.map((s) => (
              <Table.Tr key={s.id} data-testid={`storefront-${s.name}`}>
                <Table.Td>{s.name}</Table.Td>
                <Table.Td><Text size="sm" ff="monospace">{s.baseUrl}</Text></Table.Td>
                <Table.Td><Text size="xs">{time(s.createdAt)}</Text></Table.Td>
                <Table.Td><Switch checked={s.enabled} onChange={(e) => void setEnabled(s.id, e.currentTarget.checked)} aria-label={`${s.name} enabled`} /></Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {rows.length === 0 && <Empty loading={q.loading}>No storefronts registered.</Empty>}
      <Text size="sm" mt="md">Procure an application from a storefront&apos;s catalog on the <Anchor component={Link} href="/admin/procurements">Procurements</Anchor> page.</Text>
      <Modal opened={opened} onClose={closeModal} title={apiKey ? 'Storefront registered' : 'Register a storefront'}>
        {apiKey ? (
          <Stack>
            <Alert color="yellow" title="Copy the API key now">It is shown only this once; the gateway keeps only a hash of it.</Alert>
            <Text size="sm">API key of {apiKey.name}:</Text>
            <Code block data-testid="storefront-api-key" tabIndex={0} aria-label="API key">{apiKey.key}</Code>
            <Group>
              <CopyButton value={apiKey.key}>{({ copied, copy }) => <Button color={copied ? 'teal' : undefined} onClick={copy}>{copied ? 'Copied' : 'Copy key'}</Button>}</CopyButton>
              <Button variant="default" onClick={closeModal}>Done</Button>
            </Group>
          </Stack>
        ) : (
          <form onSubmit={register}>
            <Stack>
              <TextInput label="Name" {...form.getInputProps('name')} />
              <TextInput label="Base URL" description="where VMs download its packages" {...form.getInputProps('baseUrl')} />
              <Button type="submit">Register</Button>
            </Stack>
          </form>
        )}
      </Modal>
    </>
  );
}
