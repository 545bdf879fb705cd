'use client';
// Procure a UA from a registered storefront's catalog (procureApplication) and follow each
// procurement live (procurementUpdates): REQUESTED → VM_SELECTED → DOWNLOADING → DEPLOYED | FAILED.
import { useEffect, useState } from 'react';
import { Alert, Button, Card, Group, Progress, Select, Stack, Table, Text } from '@mantine/core';
import { ProcureApplicationDoc, ProcurementUpdatesDoc, ProcurementsDoc } from '@/graphql/operations';
import type { ProcurementFieldsFragment, ProcurementsQuery, ProvideApplicationInput } from '@/gql/graphql';
import { act, useQuery, useSubscription } from '@/lib/client';
import { Empty, Head, LiveBadge, LoadError, PageTitle, StatusBadge, time } from '@/components/ui';

/** A catalog entry as the storefront lists it (its GET /catalog), with a download URL. */
interface CatalogEntry extends Omit<ProvideApplicationInput, 'packageUrl'> {
  packageUrl: string;
  file?: string;
}

const STEPS = ['REQUESTED', 'VM_SELECTED', 'DOWNLOADING', 'DEPLOYED'];
const progress = (status: string) => (status === 'FAILED' ? 100 : ((STEPS.indexOf(status) + 1) / STEPS.length) * 100);

export function ProcurementsView({ initial }: { initial: ProcurementsQuery }) {
  const q = useQuery(ProcurementsDoc, {}, initial);
  const live = useSubscription(ProcurementUpdatesDoc, {}, ({ procurementUpdates: p }) => {
    q.setData((d) => ({ ...d, procurements: upsert(d.procurements, p) }));
  }, q.refetch);
  const storefronts = (q.data?.storefronts ?? []).filter((s) => s.enabled);
  const [storefrontId, setStorefrontId] = useState<string | null>(null);
  const [catalog, setCatalog] = useState<CatalogEntry[] | null>(null);
  const [catalogError, setCatalogError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  useEffect(() => {
    setCatalog(null);
    setCatalogError(null);
    if (!storefrontId) return;
    let gone = false;
    void (async () => {
      try {
        const res = await fetch(`/api/storefronts/${encodeURIComponent(storefrontId)}/catalog`, { cache: 'no-store' });
        const body = (await res.json()) as { packages?: CatalogEntry[]; error?: string };
        if (gone) return;
        if (!res.ok || !body.packages) setCatalogError(body.error ?? `The catalog could not be loaded (${res.status}).`);
        else setCatalog(body.packages);
      } catch (e) {
        if (!gone) setCatalogError(`The console does not answer (${(e as Error).message}).`);
      }
    })();
    return () => {
      gone = true;
    };
  }, [storefrontId]);

  const procure = async (e: CatalogEntry) => {
    if (!storefrontId) return;
    setBusy(e.storefrontAppId);
    const input: ProvideApplicationInput = {
      storefrontAppId: e.storefrontAppId, name: e.name, version: e.version, platform: e.platform, packageUrl: e.packageUrl,
      sha256: e.sha256, sizeBytes: e.sizeBytes, requiredResources: e.requiredResources ?? [], minScreenWidth: e.minScreenWidth ?? null, minScreenHeight: e.minScreenHeight ?? null,
    };
    const r = await act(ProcureApplicationDoc, { storefrontId, input }, `Procuring ${e.name} ${e.version}`);
    setBusy(null);
    if (r) q.setData((d) => ({ ...d, procurements: upsert(d.procurements, r.procureApplication) }));
  };

  const rows = q.data?.procurements ?? [];
  return (
    <>
      <PageTitle right={<LiveBadge state={live} />}>Procurements</PageTitle>
      <LoadError error={q.error} />
      <Card withBorder mb="md">
        <Stack>
          <Select
            label="Storefront"
            placeholder={storefronts.length ? 'Choose a storefront' : 'No enabled storefront: register one first'}
            data={storefronts.map((s) => ({ value: s.id, label: s.name }))}
            value={storefrontId}
            onChange={setStorefrontId}
            maw={360}
          />
          {catalogError && <Alert color="red" role="alert" title="The catalog could not be loaded">{catalogError}</Alert>}
          {catalog && (
            <Table.ScrollContainer minWidth={600}>
              <Table aria-label="Storefront catalog">
                <Head cols={['Application', 'Version', 'Platform', 'Size', '']} />
                <Table.Tbody>
                  {catalog.map((e) => (
                    <Table.Tr key={`${e.storefrontAppId}@${e.version}`} data-testid={`catalog-${e.storefrontAppId}`}>
                      <Table.Td>{e.name} <Text span size="xs" c="dimmed">({e.storefrontAppId})</Text></Table.Td>
                      <Table.Td>{e.version}</Table.Td>
                      <Table.Td>{e.platform}</Table.Td>
                      <Table.Td>{Math.ceil(e.sizeBytes / 1024)} KiB</Table.Td>
                      <Table.Td><Button size="xs" loading={busy === e.storefrontAppId} onClick={() => void procure(e)} aria-label={`Procure ${e.name} ${e.version}`}>Procure</Button></Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          )}
          {catalog && catalog.length === 0 && <Text c="dimmed" size="sm">This storefront&apos;s catalog is empty.</Text>}
        </Stack>
      </Card>
      <Table.ScrollContainer minWidth={700}>
        <Table striped aria-label="Procurements">
          <Head cols={['Application', 'Storefront', 'Status', 'Progress', 'VM', 'Updated']} />
          <Table.Tbody>
            {rows.map((p) => (
              <Table.Tr key={p.id} data-testid={`procurement-${p.storefrontAppId}`} data-procurement-id={p.id}>
                <Table.Td>{p.ua?.name ?? p.storefrontAppId} {p.version}</Table.Td>
                <Table.Td>{p.storefront.name}</Table.Td>
                <Table.Td>
                  <StatusBadge status={p.status} testId="procurement-status" />
                  {p.error && <Text size="xs" c="red">{p.error}</Text>}
                </Table.Td>
                <Table.Td miw={120}><Progress.Root><Progress.Section value={progress(p.status)} color={p.status === 'FAILED' ? 'red' : p.status === 'DEPLOYED' ? 'green' : 'blue'} aria-label={`Progress of ${p.storefrontAppId}: ${p.status}`} /></Progress.Root></Table.Td>
                <Table.Td>{p.vm?.name ?? '—'}</Table.Td>
                <Table.Td><Text size="xs">{time(p.updatedAt)}</Text></Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {rows.length === 0 && <Empty loading={q.loading}>No procurements yet.</Empty>}
    </>
  );
}

/** the list with `p` replaced (or added first), keeping the newest update of each procurement */
function upsert(list: ProcurementFieldsFragment[], p: ProcurementFieldsFragment): ProcurementFieldsFragment[] {
  const old = list.find((x) => x.id === p.id);
  if (old && old.updatedAt > p.updatedAt) return list;
  return old ? list.map((x) => (x.id === p.id ? p : x)) : [p, ...list];
}
