import type { ReactNode } from 'react';
import { requireUser } from '@/lib/auth';
import { Shell } from '@/components/Shell';

export const dynamic = 'force-dynamic';

export default async function PlayLayout({ children }: { children: ReactNode }) {
  const me = await requireUser();
  return (
    <Shell username={me.username} role={me.role}>
      {children}
    </Shell>
  );
}
