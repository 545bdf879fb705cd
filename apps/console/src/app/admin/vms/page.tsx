import { VmsDoc } from '@/graphql/operations';
import { adminData } from '@/lib/auth';
import { VmsView } from '@/components/admin/VmsView';

export const dynamic = 'force-dynamic';

export default async function VmsPage() {
  return <VmsView initial={await adminData(VmsDoc, {})} />;
}
