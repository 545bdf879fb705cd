import { MyWatcherGrantsDoc } from '@/graphql/operations';
import { userData } from '@/lib/auth';
import { Monitoring } from '@/components/play/Monitoring';

export const dynamic = 'force-dynamic';

export default async function MonitoringPage() {
  return <Monitoring initial={await userData(MyWatcherGrantsDoc, {})} />;
}
