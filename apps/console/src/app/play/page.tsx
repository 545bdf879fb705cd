import { CatalogDoc } from '@/graphql/operations';
import { userData } from '@/lib/auth';
import { Catalog } from '@/components/play/Catalog';

export const dynamic = 'force-dynamic';

export default async function CatalogPage({ searchParams }: { searchParams: Promise<{ denied?: string }> }) {
  const { denied } = await searchParams;
  return <Catalog uas={(await userData(CatalogDoc, {})).uas} denied={!!denied} />;
}
