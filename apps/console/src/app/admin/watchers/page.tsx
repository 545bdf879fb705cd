import { WatcherGrantsDoc } from '@/graphql/operations';
import { adminData } from '@/lib/auth';
import { WatchersView } from '@/components/admin/WatchersView';

export const dynamic = 'force-dynamic';

export default async function WatchersPage() {
  return <WatchersView initial={await adminData(WatcherGrantsDoc, {})} />;
}
