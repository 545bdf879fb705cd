import { ProcurementsDoc } from '@/graphql/operations';
import { adminData } from '@/lib/auth';
import { ProcurementsView } from '@/components/admin/ProcurementsView';

export const dynamic = 'force-dynamic';

export default async function ProcurementsPage() {
  return <ProcurementsView initial={await adminData(ProcurementsDoc, {})} />;
}
