import { SessionsDoc } from '@/graphql/operations';
import { adminData } from '@/lib/auth';
import { SessionsView } from '@/components/admin/SessionsView';

export const dynamic = 'force-dynamic';

export default async function SessionsPage() {
  return <SessionsView initial={await adminData(SessionsDoc, { limit: 50, offset: 0 })} />;
}
