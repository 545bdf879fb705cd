import { DashboardDoc } from '@/graphql/operations';
import { adminData } from '@/lib/auth';
import { Dashboard } from '@/components/admin/Dashboard';

export const dynamic = 'force-dynamic';

export default async function DashboardPage() {
  return <Dashboard initial={await adminData(DashboardDoc, {})} />;
}
