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
}

export type Selection = { vm: VmCandidate } | { vm: null; reason: string };

/**
 * Locks the ready VMs of the UA's platform, then counts their sessions, and picks one. Must run
 * inside the transaction that assigns the session. The count is a second statement on purpose:
 * under READ COMMITTED a statement that waited for the lock still sees the snapshot it started
 * with, so counting in the locking statement would miss the session the lock holder just added.
 */
export async function selectVm(em: EntityManager, ua: Ua, codecs: VideoCodec[], o: SelectionOptions): Promise<Selection> {
  const locked: { id: string }[] = await em.query(
    `SELECT v.id FROM vms v
      WHERE v.platform = $1 AND v.status = 'IDLE' AND v.endpoint IS NOT NULL
        AND v.last_heartbeat_at > now() - make_interval(secs => $2::float8 / 1000)
        AND ($3::uuid IS NULL OR v.id <> $3::uuid)
      ORDER BY v.id
        FOR UPDATE OF v`,
    [ua.platform, o.heartbeatTimeoutMs, o.excludeVmId ?? null],
  );
  if (locked.length === 0) return { vm: null, reason: `no ${ua.platform} VM is running` };
  const rows: (Omit<VmCandidate, 'codecs'> & { codecs: string; failed: boolean })[] = await em.query(
    `SELECT v.id, v.endpoint, v.codecs::text[] AS codecs, v.capacity, (v.load->>'cpuLoad')::float8 AS cpu,
            (SELECT count(*)::int FROM sessions s WHERE s.vm_id = v.id AND s.state = ANY($4::session_state[])) AS active,
            EXISTS (SELECT 1 FROM ua_deployments d WHERE d.vm_id = v.id AND d.ua_id = $2 AND d.version = $3 AND d.status = 'INSTALLED') AS deployed,
            EXISTS (SELECT 1 FROM ua_deployments d WHERE d.vm_id = v.id AND d.ua_id = $2 AND d.version = $3 AND d.status = 'FAILED') AS failed
       FROM vms v
      WHERE v.id = ANY($1::uuid[])`,
    [locked.map((r) => r.id), ua.id, ua.currentVersion, SLOT_SESSION_STATES],
  );
  const vms = rows.map((r) => ({ ...r, codecs: parsePgArray(r.codecs) as VideoCodec[] }));
  if (vms.length === 0) return { vm: null, reason: `no ${ua.platform} VM is running` };
  const withCodec = vms.filter((v) => v.codecs.some((c) => codecs.includes(c)));
  if (withCodec.length === 0) return { vm: null, reason: `no ${ua.platform} VM encodes any of ${codecs.join(', ')}` };
  const usable = withCodec.filter((v) => v.deployed || !v.failed);
  if (usable.length === 0) return { vm: null, reason: `${ua.name} ${ua.currentVersion} failed to deploy on every VM that could run it` };
  const free = usable.filter((v) => v.active < v.capacity);
  if (free.length === 0) return { vm: null, reason: `all ${usable.length} ${ua.platform} VMs are full` };
  const [best] = rankCandidates(free, o.cpuHigh);
  const { id, endpoint, codecs: vmCodecs, capacity, active, deployed, cpu } = best!;
  return { vm: { id, endpoint, codecs: vmCodecs, capacity, active, deployed, cpu } };
}

/** A VM is hot when its last heartbeat put its CPU at or above the threshold. */
export const isHot = (cpu: number | null, cpuHigh: number): boolean => cpu !== null && cpu >= cpuHigh;

/** Candidates with a free slot, best first (the order the header comment gives). */
export function rankCandidates<T extends Pick<VmCandidate, 'deployed' | 'active' | 'capacity' | 'cpu'>>(free: T[], cpuHigh: number): T[] {
  return [...free].sort((a, b) =>
    Number(isHot(a.cpu, cpuHigh)) - Number(isHot(b.cpu, cpuHigh))
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
