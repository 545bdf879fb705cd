'use client';
import { Accordion, Badge, Group, Table, Text } from '@mantine/core';
import { UasDoc } from '@/graphql/operations';
import type { UasQuery } from '@/gql/graphql';
import { useQuery } from '@/lib/client';
import { Empty, LoadError, PageTitle, StatusBadge, time, Head } from '@/components/ui';

function size(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

export function UasView({ initial }: { initial: UasQuery }) {
  const q = useQuery(UasDoc, {}, initial);
  const uas = q.data?.uas ?? [];
  return (
    <>
      <PageTitle>UAs</PageTitle>
      <LoadError error={q.error} />
      <Accordion variant="separated" multiple>
        {uas.map((ua) => (
          <Accordion.Item key={ua.id} value={ua.id} data-testid={`ua-${ua.name}`}>
            <Accordion.Control>
              <Group gap="sm">
                <Text fw={600}>{ua.name}</Text>
                <Badge variant="light">{ua.platform}</Badge>
                <Text size="sm" c="dimmed">current {ua.currentVersion}</Text>
                <Text size="sm" c="dimmed">· {ua.deployments.filter((d) => d.status === 'INSTALLED').length} VM(s)</Text>
              </Group>
            </Accordion.Control>
            <Accordion.Panel>
              <Text size="sm" mb="xs">
                {ua.storefront ? `From storefront ${ua.storefront.name}. ` : 'Registered by the platform. '}
                {ua.minScreenWidth ? `Needs a screen of at least ${ua.minScreenWidth}×${ua.minScreenHeight ?? '?'}. ` : ''}
                {ua.requiredResources.length ? `Uses ${ua.requiredResources.join(', ').toLowerCase()}.` : ''}
              </Text>
              <Table aria-label={`Versions of ${ua.name}`} mb="sm">
                <Head cols={['Version', 'Size', 'SHA-256', 'Added']} />
                <Table.Tbody>
                  {ua.versions.map((v) => (
                    <Table.Tr key={v.version}>
                      <Table.Td>{v.version}{v.version === ua.currentVersion && <Badge ml="xs" size="xs">current</Badge>}</Table.Td>
                      <Table.Td>{size(v.sizeBytes)}</Table.Td>
                      <Table.Td><Text ff="monospace" size="xs">{v.sha256.slice(0, 16)}…</Text></Table.Td>
                      <Table.Td><Text size="xs">{time(v.createdAt)}</Text></Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
              <Table aria-label={`Deployments of ${ua.name}`}>
                <Head cols={['VM', 'Version', 'Status']} />
                <Table.Tbody>
                  {ua.deployments.map((d) => (
                    <Table.Tr key={d.id}>
                      <Table.Td>{d.vm.name}</Table.Td>
                      <Table.Td>{d.version}</Table.Td>
                      <Table.Td><StatusBadge status={d.status} />{d.error && <Text size="xs" c="red">{d.error}</Text>}</Table.Td>
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
    </>
  );
}
