import type { ReactNode } from 'react';
import { requireAdmin } from '@/lib/auth';
import { Shell } from '@/components/Shell';

export const dynamic = 'force-dynamic';

export default async function AdminLayout({ children }: { children: ReactNode }) {
  const me = await requireAdmin();
  return (
    <Shell username={me.username} role={me.role}>
      {children}
    </Shell>
  );
}
