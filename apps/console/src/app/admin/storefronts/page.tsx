import { StorefrontsDoc } from '@/graphql/operations';
import { adminData } from '@/lib/auth';
import { StorefrontsView } from '@/components/admin/StorefrontsView';

export const dynamic = 'force-dynamic';

export default async function StorefrontsPage() {
  return <StorefrontsView initial={await adminData(StorefrontsDoc, {})} />;
}
