import { notFound } from 'next/navigation';
import { SessionDoc } from '@/graphql/operations';
import { adminData } from '@/lib/auth';
import { SessionDetail } from '@/components/admin/SessionDetail';

export const dynamic = 'force-dynamic';

export default async function SessionPage({ params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const data = await adminData(SessionDoc, { id }).catch(() => ({ session: null }));
  if (!data.session) notFound();
  return <SessionDetail initial={data.session} />;
}
