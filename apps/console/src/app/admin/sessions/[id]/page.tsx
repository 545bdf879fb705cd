import { notFound } from 'next/navigation';
import { SessionDoc } from '@/graphql/operations';
import { adminData, requireAdmin } from '@/lib/auth';
import { SessionDetail } from '@/components/admin/SessionDetail';

export const dynamic = 'force-dynamic';

export default async function SessionPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  await requireAdmin(); // outside the catch below: its redirect must not be swallowed
  const data = await adminData(SessionDoc, { id }).catch(() => ({ session: null }));
  if (!data.session) notFound();
  return <SessionDetail initial={data.session} />;
}
