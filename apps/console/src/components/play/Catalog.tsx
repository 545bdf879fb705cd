'use client';
import Link from 'next/link';
import { Alert, Badge, Button, Card, Group, SimpleGrid, Text } from '@mantine/core';
import type { CatalogQuery } from '@/gql/graphql';
import { PageTitle } from '@/components/ui';

export function Catalog({ uas, denied }: { uas: CatalogQuery['uas']; denied: boolean }) {
  return (
    <>
      <PageTitle>Applications</PageTitle>
      {denied && (
        <Alert color="orange" mb="md" role="alert" data-testid="denied">
          The admin console is for admins only; you were brought to your applications.
        </Alert>
      )}
      <SimpleGrid cols={{ base: 1, xs: 2, md: 3 }}>
        {uas.map((ua) => (
          <Card key={ua.id} withBorder data-testid={`catalog-${ua.name}`}>
            <Group justify="space-between" mb="xs">
              <Text fw={600}>{ua.name}</Text>
              <Badge variant="light">{ua.platform}</Badge>
            </Group>
            <Text size="sm" c="dimmed" mb="md">
              version {ua.currentVersion}
              {ua.requiredResources.length ? ` · uses ${ua.requiredResources.join(', ').toLowerCase()}` : ''}
            </Text>
            <Button component={Link} href={`/play/${ua.id}`} aria-label={`Play ${ua.name}`}>Play</Button>
          </Card>
        ))}
      </SimpleGrid>
      {uas.length === 0 && <Text c="dimmed">No applications are available yet.</Text>}
    </>
  );
}
