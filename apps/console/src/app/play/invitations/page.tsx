import { MyInvitationsDoc } from '@/graphql/operations';
import { userData } from '@/lib/auth';
import { Invitations } from '@/components/play/Invitations';

export const dynamic = 'force-dynamic';

export default async function InvitationsPage() {
  return <Invitations initial={await userData(MyInvitationsDoc, {})} />;
}
