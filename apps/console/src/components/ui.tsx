'use client';
// Small presentational pieces shared by the pages (badges, live indicator, empty states).
import type { ReactNode } from 'react';
import { Alert, Badge, Button, Group, Loader, Select, Table, Text, Title } from '@mantine/core';
import type { LiveState } from '@/lib/client';

const STATUS_COLORS: Record<string, string> = {
  IDLE: 'green',
  BUSY: 'blue',
  PROVISIONING: 'yellow',
  DRAINING: 'orange',
  OFFLINE: 'gray',
  FAILED: 'red',
  ACTIVE: 'green',
  ASSIGNED: 'cyan',
  REQUESTED: 'yellow',
  DISCONNECTED: 'orange',
  SUSPENDED: 'violet',
  ENDED: 'gray',
  INSTALLED: 'green',
  PENDING: 'yellow',
  DOWNLOADING: 'blue',
  REMOVING: 'orange',
  REMOVED: 'gray',
  ADMIN: 'grape',
  USER: 'blue',
  ACCEPTED: 'green',
  REJECTED: 'red',
  EXPIRED: 'gray',
  REVOKED: 'gray',
};

/** The session state a session event leads to (events that change none are absent). */
export const STATE_AFTER: Record<string, string> = { ASSIGNED: 'ASSIGNED', CONNECTED: 'ACTIVE', RECONNECTED: 'ACTIVE', DISCONNECTED: 'DISCONNECTED', SUSPENDED: 'SUSPENDED', RESUMED: 'ACTIVE', ENDED: 'ENDED', FAILED: 'FAILED' };

export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <Badge color={STATUS_COLORS[status] ?? 'gray'} variant="light" data-testid={testId} data-status={status}>
      {status}
    </Badge>
  );
}

export function LiveBadge({ state }: { state: LiveState }) {
  const label = state === 'live' ? 'live' : state === 'error' ? 'updates stopped' : 'connecting…';
  return (
    <Badge color={state === 'live' ? 'green' : state === 'error' ? 'red' : 'gray'} variant="dot" data-testid="live-state" data-state={state} aria-live="polite">
      {label}
    </Badge>
  );
}

export function PageTitle({ children, right }: { children: ReactNode; right?: ReactNode }) {
  return (
    <Group justify="space-between" mb="md" wrap="wrap">
      <Title order={1} size="h2">{children}</Title>
      {right && <Group gap="sm">{right}</Group>}
    </Group>
  );
}

export function LoadError({ error }: { error: Error | null }) {
  if (!error) return null;
  return <Alert color="red" title="Could not load" role="alert" mb="md">{error.message}</Alert>;
}

export function Empty({ loading, children }: { loading?: boolean; children: ReactNode }) {
  return loading ? <Loader size="sm" aria-label="Loading" /> : <Text c="dimmed" size="sm">{children}</Text>;
}

/** An action the API does not offer yet: shown, but disabled with the reason. */
export function NotYet({ title, children }: { title: string; children: ReactNode }) {
  return (
    <Alert color="gray" variant="light" title={title} mt="md">
      {children}
    </Alert>
  );
}

export function bytes(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

/** A clearable, searchable filter over things picked by id (a user, a UA, a VM). */
export function IdFilter({ label, items, value, onChange }: { label: string; items: Array<{ id: string; name: string }> | undefined; value: string | null; onChange: (id: string | null) => void }) {
  return (
    <Select
      label={label}
      placeholder={`any ${label.toLowerCase()}`}
      clearable
      searchable
      data={(items ?? []).map((i) => ({ value: i.id, label: i.name }))}
      value={value}
      onChange={onChange}
      w={200}
    />
  );
}

export function time(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

/** The header row of a table. */
export function Head({ cols }: { cols: string[] }) {
  return (
    <Table.Thead>
      <Table.Tr>
        {cols.map((c, i) => <Table.Th key={i}>{c}</Table.Th>)}
      </Table.Tr>
    </Table.Thead>
  );
}

/** Previous/next over a list the server pages with limit/offset. */
export function Pager({ offset, size, shown, onChange }: { offset: number; size: number; shown: number; onChange: (offset: number) => void }) {
  return (
    <Group mt="md">
      <Button variant="default" size="xs" disabled={offset === 0} onClick={() => onChange(Math.max(0, offset - size))}>Previous</Button>
      <Button variant="default" size="xs" disabled={shown < size} onClick={() => onChange(offset + size)}>Next</Button>
    </Group>
  );
}
