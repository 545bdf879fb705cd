import { notFound } from 'next/navigation';
import { CatalogDoc } from '@/graphql/operations';
import { userData } from '@/lib/auth';
import { PlayerLoader } from '@/components/play/PlayerLoader';

export const dynamic = 'force-dynamic';

export default async function PlayPage({ params }: { params: Promise<{ uaId: string }> }) {
  const { uaId } = await params;
  const ua = (await userData(CatalogDoc, {})).uas.find((u) => u.id === uaId);
  if (!ua) notFound();
  return <PlayerLoader ua={ua} />;
}
