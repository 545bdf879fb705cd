import { redirect } from 'next/navigation';
import { requireUser } from '@/lib/auth';

export const dynamic = 'force-dynamic';

export default async function Home() {
  const me = await requireUser();
  redirect(me.role === 'ADMIN' ? '/admin' : '/play');
}
