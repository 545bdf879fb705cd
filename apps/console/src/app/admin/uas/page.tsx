import { UasDoc } from '@/graphql/operations';
import { adminData } from '@/lib/auth';
import { UasView } from '@/components/admin/UasView';

export const dynamic = 'force-dynamic';

export default async function UasPage() {
  return <UasView initial={await adminData(UasDoc, {})} />;
}
