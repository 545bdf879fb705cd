'use client';
// Sessions open over the last hour, in 5-minute steps, from the sessions' own created/ended times.
// @mantine/charts would bring recharts for one small chart; a few SVG bars in the theme's colour do.
import { Card, Group, Text, Title, useMantineTheme } from '@mantine/core';

const STEP_MS = 5 * 60_000;
const STEPS = 12;

export interface SessionSpan {
  createdAt: string;
  endedAt?: string | null;
}

/** How many sessions were open at the end of each 5-minute step of the hour before `now`. */
export function openPerStep(sessions: SessionSpan[], now: number): Array<{ at: number; open: number }> {
  return Array.from({ length: STEPS }, (_, i) => {
    const at = now - (STEPS - 1 - i) * STEP_MS;
    const from = at - STEP_MS;
    // open during the step: started before its end, not ended before its start
    const open = sessions.filter((s) => Date.parse(s.createdAt) <= at && (!s.endedAt || Date.parse(s.endedAt) > from)).length;
    return { at, open };
  });
}

export function SessionsChart({ sessions, now }: { sessions: SessionSpan[]; now: number }) {
  const theme = useMantineTheme();
  const steps = openPerStep(sessions, now);
  const max = Math.max(1, ...steps.map((s) => s.open));
  const W = 24;
  const H = 80;
  const clock = (t: number) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const summary = `Sessions open over the last hour, per 5 minutes: ${steps.map((s) => `${clock(s.at)} ${s.open}`).join(', ')}`;
  return (
    <Card withBorder mb="lg">
      <Group justify="space-between" mb="xs">
        <Title order={2} size="h4">Sessions, last hour</Title>
        <Text size="xs" c="dimmed">peak {Math.max(...steps.map((s) => s.open))}</Text>
      </Group>
      <svg role="img" aria-label={summary} viewBox={`0 0 ${STEPS * W} ${H + 14}`} width="100%" height={110} preserveAspectRatio="none" data-testid="sessions-chart" data-points={steps.map((s) => s.open).join(',')}>
        {steps.map((s, i) => {
          const h = (H * s.open) / max;
          return (
            <g key={s.at}>
              <title>{`${clock(s.at)}: ${s.open} session(s)`}</title>
              <rect x={i * W + 3} y={H - h} width={W - 6} height={Math.max(h, 1)} rx={2} fill={theme.colors[theme.primaryColor]![6]} />
            </g>
          );
        })}
        <line x1={0} x2={STEPS * W} y1={H + 0.5} y2={H + 0.5} stroke="currentColor" strokeOpacity={0.3} />
      </svg>
      <Group justify="space-between">
        <Text size="xs" c="dimmed">{clock(steps[0]!.at - STEP_MS)}</Text>
        <Text size="xs" c="dimmed">now</Text>
      </Group>
    </Card>
  );
}
