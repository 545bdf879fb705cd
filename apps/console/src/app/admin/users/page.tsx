import { UsersDoc } from '@/graphql/operations';
import { adminData } from '@/lib/auth';
import { UsersView } from '@/components/admin/UsersView';

export const dynamic = 'force-dynamic';

export default async function UsersPage() {
  return <UsersView initial={await adminData(UsersDoc, { limit: 50, offset: 0 })} />;
}
