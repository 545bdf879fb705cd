// VM selection (seed 7.3.1.2.1): the platform of the UA, a codec the terminal decodes, the UA
// deployed (preferred) or deployable, a free slot (the same count the VM keeps), then CPU headroom:
// a VM whose last heartbeat put its CPU at or above `cpuHigh` is taken only when every VM with a
// free slot is that busy (the pool then starts another, see vm-pool.ts); then the UA already
// deployed; then the fewest sessions for the capacity; then the lowest CPU.
import type { EntityManager } from 'typeorm';
import { SLOT_SESSION_STATES, type VideoCodec } from '@uve/protocol';
import type { Ua } from '../uas/uas.entity';

export interface VmCandidate {
  id: string;
  endpoint: string;
  codecs: VideoCodec[];
  capacity: number;
  active: number;
  deployed: boolean;
  /** CPU load from the last heartbeat, 0..1 (null before the first) */
  cpu: number | null;
}

export interface SelectionOptions {
  heartbeatTimeoutMs: number;
  /** CPU load from which a VM is hot (UVE_VM_CPU_HIGH) */
  cpuHigh: number;
  /** a reconnecting session moves off the VM it was on (that VM still counts it) */
  excludeVmId?: string | null;
  /** ranked first when it has a free slot and is not hot: the VM a restore was prepared ahead on */
  preferVmId?: string | null;
}

export type Selection = { vm: VmCandidate } | { vm: null; reason: string };

type CandidateRow = Omit<VmCandidate, 'codecs'> & { codecs: string; failed: boolean };

/** The ready VMs of the UA's platform with what selection weighs (not locked). */
const CANDIDATES = `SELECT v.id, v.endpoint, v.codecs::text[] AS codecs, v.capacity, (v.load->>'cpuLoad')::float8 AS cpu,
            (SELECT count(*)::int FROM sessions s WHERE s.vm_id = v.id AND s.state = ANY($4::session_state[])) AS active,
            EXISTS (SELECT 1 FROM ua_deployments d WHERE d.vm_id = v.id AND d.ua_id = $2 AND d.version = $3 AND d.status = 'INSTALLED') AS deployed,
            EXISTS (SELECT 1 FROM ua_deployments d WHERE d.vm_id = v.id AND d.ua_id = $2 AND d.version = $3 AND d.status = 'FAILED') AS failed
       FROM vms v`;

/** A VM that takes sessions; `$n`: the parameter holding the heartbeat timeout (ms). */
const ready = (n: number) => `v.status = 'IDLE' AND v.endpoint IS NOT NULL AND v.last_heartbeat_at > now() - make_interval(secs => $${n}::float8 / 1000)`;

/**
 * Picks a VM for the UA and locks it until the caller's transaction ends; must run inside the
 * transaction that assigns the session.
 *
 * Only the chosen VM is locked, and FOR NO KEY UPDATE: placements on one VM still go one at a time
 * (so its slots are never over-counted), but placements on other VMs, and the rows that only refer to
 * a VM (an endSession's outbox command, a session's vm_id; their foreign-key checks take KEY SHARE),
 * do not queue behind it. Locking every VM of the platform FOR UPDATE made every requestApplication
 * and endSession of the platform wait for each other (issue 13's gateway bench).
 *
 * The slots are counted again after the lock, by a second statement: under READ COMMITTED a
 * statement sees the snapshot it started with, so a count taken before the lock would miss the
 * session the previous holder just added.
 */
export async function selectVm(em: EntityManager, ua: Ua, codecs: VideoCodec[], o: SelectionOptions): Promise<Selection> {
  const rows: CandidateRow[] = await em.query(
    `${CANDIDATES} WHERE v.platform = $1 AND ${ready(5)} AND ($6::uuid IS NULL OR v.id <> $6::uuid)`,
    [ua.platform, ua.id, ua.currentVersion, SLOT_SESSION_STATES, o.heartbeatTimeoutMs, o.excludeVmId ?? null],
  );
  if (rows.length === 0) return { vm: null, reason: await noneReady(em, ua, o) };
  const picked = pick(rows, ua, codecs, o.cpuHigh, o.preferVmId ?? null);
  if (!('ranked' in picked)) return picked;
  // the best VM that no other placement holds right now (one statement over all of them, in rank
  // order), then (all held) the best one, waiting for it; a VM filled meanwhile is let go and the
  // next one waited for
  const byId = new Map(picked.ranked.map((c) => [c.id, c]));
  await em.query('SAVEPOINT vm_selection');
  const [free]: { id: string }[] = await em.query(
    `SELECT v.id FROM vms v JOIN unnest($1::uuid[]) WITH ORDINALITY AS r(id, n) ON r.id = v.id
      WHERE ${ready(2)} ORDER BY r.n LIMIT 1 FOR NO KEY UPDATE OF v SKIP LOCKED`,
    [picked.ranked.map((c) => c.id), o.heartbeatTimeoutMs],
  );
  const held = await slotsAfterLock(em, free ? byId.get(free.id)! : null);
  if (held) return { vm: held };
  for (const c of picked.ranked) {
    if (c.id === free?.id) continue;
    const locked: unknown[] = await em.query(`SELECT v.id FROM vms v WHERE v.id = $1 AND ${ready(2)} FOR NO KEY UPDATE OF v`, [c.id, o.heartbeatTimeoutMs]);
    const vm = locked.length ? await slotsAfterLock(em, c) : null;
    if (vm) return { vm };
  }
  return { vm: null, reason: `all ${picked.ranked.length} ${ua.platform} VMs that had a free slot are full now (filled by requests placed meanwhile)` };
}

/**
 * Why no VM of the platform takes sessions: none runs, or those that run are starting, draining,
 * or silent past the heartbeat timeout (the `vms` query still lists such a VM IDLE until the
 * watchdog marks it OFFLINE).
 */
async function noneReady(em: EntityManager, ua: Ua, o: SelectionOptions): Promise<string> {
  const vms: { status: string; endpoint: boolean; silent_ms: number | null }[] = await em.query(
    `SELECT status, endpoint IS NOT NULL AS endpoint, (extract(epoch FROM now() - last_heartbeat_at) * 1000)::float8 AS silent_ms
       FROM vms WHERE platform = $1 AND status IN ('PROVISIONING', 'IDLE', 'DRAINING') AND ($2::uuid IS NULL OR id <> $2::uuid)`,
    [ua.platform, o.excludeVmId ?? null],
  );
  const other = o.excludeVmId ? ' other than the one the session was on' : '';
  if (vms.length === 0) return `no ${ua.platform} VM${other} is running`;
  const why = vms.map((v) =>
    v.status !== 'IDLE' ? v.status
      : !v.endpoint ? 'IDLE without an endpoint'
        : `IDLE, silent for ${((v.silent_ms ?? Infinity) / 1000).toFixed(1)} s (heartbeat timeout ${(o.heartbeatTimeoutMs / 1000).toFixed(1)} s)`);
  return `no ${ua.platform} VM${other} is ready: ${why.join('; ')}`;
}

/**
 * The locked candidate with its slots counted again (a second statement: see selectVm), or null
 * when it has none left (filled meanwhile: let go of, so no two placements wait for each other).
 */
async function slotsAfterLock(em: EntityManager, c: VmCandidate | null): Promise<VmCandidate | null> {
  if (!c) return null;
  const [{ active }] = await em.query(`SELECT count(*)::int AS active FROM sessions WHERE vm_id = $1 AND state = ANY($2::session_state[])`, [c.id, SLOT_SESSION_STATES]);
  if (active < c.capacity) return { ...c, active };
  await em.query('ROLLBACK TO SAVEPOINT vm_selection');
  return null;
}

/** The free candidates best first, or why there is none. */
function pick(rows: CandidateRow[], ua: Ua, codecs: VideoCodec[], cpuHigh: number, preferVmId: string | null): { ranked: VmCandidate[] } | { vm: null; reason: string } {
  const vms = rows.map((r) => ({ ...r, codecs: parsePgArray(r.codecs) as VideoCodec[] }));
  const withCodec = vms.filter((v) => v.codecs.some((c) => codecs.includes(c)));
  if (withCodec.length === 0) return { vm: null, reason: `no ${ua.platform} VM encodes any of ${codecs.join(', ')}` };
  const usable = withCodec.filter((v) => v.deployed || !v.failed);
  if (usable.length === 0) return { vm: null, reason: `${ua.name} ${ua.currentVersion} failed to deploy on every VM that could run it` };
  const free = usable.filter((v) => v.active < v.capacity);
  if (free.length === 0) return { vm: null, reason: `all ${usable.length} ${ua.platform} VMs are full` };
  return { ranked: rankCandidates(free, cpuHigh, preferVmId).map(({ id, endpoint, codecs: vmCodecs, capacity, active, deployed, cpu }) => ({ id, endpoint, codecs: vmCodecs, capacity, active, deployed, cpu })) };
}

/** A VM is hot when its last heartbeat put its CPU at or above the threshold. */
export const isHot = (cpu: number | null, cpuHigh: number): boolean => cpu !== null && cpu >= cpuHigh;

/**
 * Candidates with a free slot, best first (the order the header comment gives; `preferId`, a VM
 * holding a restore prepared for the session, comes before the others that are not hot).
 */
export function rankCandidates<T extends Pick<VmCandidate, 'id' | 'deployed' | 'active' | 'capacity' | 'cpu'>>(free: T[], cpuHigh: number, preferId: string | null = null): T[] {
  return [...free].sort((a, b) =>
    Number(isHot(a.cpu, cpuHigh)) - Number(isHot(b.cpu, cpuHigh))
    || Number(b.id === preferId) - Number(a.id === preferId)
    || Number(b.deployed) - Number(a.deployed)
    || a.active / a.capacity - b.active / b.capacity
    || (a.cpu ?? 0) - (b.cpu ?? 0));
}

/** pg returns enum arrays as '{A,B}' text. */
export function parsePgArray(v: string | string[]): string[] {
  if (Array.isArray(v)) return v;
  const inner = v.replace(/^\{|\}$/g, '');
  return inner ? inner.split(',') : [];
}
