'use client';
import type { ReactNode } from 'react';
import Link from 'next/link';
import { usePathname } from 'next/navigation';
import { ActionIcon, AppShell, Burger, Button, Group, NavLink, Text, Title, useComputedColorScheme, useMantineColorScheme } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';

export interface NavItem {
  href: string;
  label: string;
}

const ADMIN_NAV: NavItem[] = [
  { href: '/admin', label: 'Dashboard' },
  { href: '/admin/vms', label: 'VMs' },
  { href: '/admin/sessions', label: 'Sessions' },
  { href: '/admin/uas', label: 'UAs' },
  { href: '/admin/users', label: 'Users' },
  { href: '/admin/storefronts', label: 'Storefronts' },
  { href: '/admin/procurements', label: 'Procurements' },
  { href: '/admin/watchers', label: 'Watchers' },
  { href: '/admin/vmdata', label: 'VM Data' },
  { href: '/play', label: 'Web client' },
];

const USER_NAV: NavItem[] = [
  { href: '/play', label: 'Applications' },
  { href: '/play/invitations', label: 'Invitations' },
  { href: '/play/monitoring', label: 'Monitoring' },
];

function ColorSchemeToggle() {
  const { setColorScheme } = useMantineColorScheme();
  const scheme = useComputedColorScheme('light', { getInitialValueInEffect: true });
  const next = scheme === 'dark' ? 'light' : 'dark';
  return (
    <ActionIcon variant="default" size="lg" aria-label={`Switch to the ${next} theme`} onClick={() => setColorScheme(next)}>
      <span aria-hidden>{scheme === 'dark' ? '☀' : '☾'}</span>
    </ActionIcon>
  );
}

/** The frame of every signed-in page: header with the user and logout, navigation by role. */
export function Shell({ username, role, children }: { username: string; role: string; children: ReactNode }) {
  const [opened, { toggle, close }] = useDisclosure();
  const pathname = usePathname();
  const nav = role === 'ADMIN' ? ADMIN_NAV : USER_NAV;
  // a section's root is active only on itself when its pages have their own entries
  const active = (href: string) => (href === '/admin' || href === '/play' ? pathname === href : pathname === href || pathname.startsWith(`${href}/`));
  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <Title order={2} size="h4">UVE</Title>
            <Text size="sm" c="dimmed" visibleFrom="xs">{role === 'ADMIN' ? 'admin console' : 'web client'}</Text>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <Text size="sm" data-testid="signed-in-user">{username}</Text>
            <ColorSchemeToggle />
            <form action="/api/logout" method="post">
              <Button type="submit" variant="default" size="xs">Log out</Button>
            </form>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Main">
        {nav.map((n) => (
          <NavLink key={n.href} component={Link} href={n.href} label={n.label} active={active(n.href)} onClick={close} />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>{children}</AppShell.Main>
    </AppShell>
  );
}
