import { SnapshotsDoc } from '@/graphql/operations';
import { adminData } from '@/lib/auth';
import { SnapshotsView } from '@/components/admin/SnapshotsView';

export const dynamic = 'force-dynamic';

export default async function VmDataPage() {
  return <SnapshotsView initial={await adminData(SnapshotsDoc, { limit: 50, offset: 0 })} />;
}
