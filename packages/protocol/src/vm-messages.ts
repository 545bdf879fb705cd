// UVE-2 (VMM -> VM) and UVE-5 (VM -> VMM) messages, carried by @uve/queue.
// Small messages only: VM Data (snapshots) goes over HTTP (see VM_DATA_PATH).
import type { DeploymentStatus, LocalResourceKind, Platform, ReconnectionMethod, SnapshotKind, StreamRole, VideoCodec, VmProvider } from './enums';
import type { StreamParams, TerminalCapabilities } from './terminal';

/** The queue every VM reports to (UVE-5). */
export const VMM_QUEUE = 'uve-vmm';
/** The queue one VM takes its UVE-2 commands from. */
export const vmCommandQueue = (vmId: string): string => `uve-vm-${vmId}`;
/** HTTP path on the gateway where a VM uploads/downloads VM Data, authenticated with its VM secret. */
export const VM_DATA_PATH = '/vmm/vm-data';
/** Header of a VM Data upload: where the save's time went on the VM, a VmDataSaveTiming as JSON. */
export const VM_DATA_SAVE_TIMING_HEADER = 'x-uve-save-timing';

/**
 * One VM Data save by stage, wall clock in ms since the epoch (as SessionStartTiming: one clock when
 * the VMM and the VM share a host). The VM began the save (at a drop or the session's end), had the
 * UA's state copied out, had it encoded (the upload began); the VMM had the upload's request and had
 * it stored (committed). In the SNAPSHOT_SAVED event's data as `timing`.
 */
export interface VmDataSaveTiming {
  startedAt: number;
  capturedAt?: number;
  encodedAt: number;
  receivedAt?: number;
  storedAt?: number;
}

export const HEARTBEAT_INTERVAL_MS = 2_000;

export interface DeployedUa {
  uaId: string;
  version: string;
}

// ---- UVE-2: VMM -> VM -------------------------------------------------------------------------

/**
 * Every UVE-2 command leaves the VMM through its outbox (written in the same transaction as the
 * state change) and carries an id and an expiry: the VM acknowledges the id with `command.ack`
 * (the VMM re-sends until it does), ignores an id it has already handled, and drops a command
 * whose expiry has passed (a stale command is worse than none).
 */
export interface CommandMeta {
  commandId?: string;
  /** ISO time after which the VM must not act on it */
  expiresAt?: string;
  /**
   * VMM wall clock (ms since epoch) of this copy: the transaction that wrote it committed (absent
   * on a re-send), it was handed to the queue. Diagnostics only (a session's start stages).
   */
  trace?: { committedAt?: number; sentAt: number };
}

export interface DeployUaCommand extends CommandMeta {
  type: 'ua.deploy';
  uaId: string;
  version: string;
  platform: Platform;
  /** absolute URL of the package, or a `builtin:` reference to a UA shipped with the agent */
  packageUrl: string;
  sha256: string;
  storefrontId?: string | null;
  /** declared size of a downloaded package: the VM stops reading past it */
  sizeBytes?: number;
  /** the storefront's origin (scheme://host:port): the only origin the VM downloads from, redirects included */
  allowedOrigin?: string;
  /** the VM gives up a download that has not finished after this long */
  downloadTimeoutMs?: number;
}
export interface RemoveUaCommand extends CommandMeta { type: 'ua.remove'; uaId: string }
export interface UpdateUaCommand extends Omit<DeployUaCommand, 'type'> { type: 'ua.update' }

export interface PrepareSessionCommand extends CommandMeta {
  type: 'session.prepare';
  sessionId: string;
  userId: string;
  uaId: string;
  uaVersion: string;
  reconnectionMethod: ReconnectionMethod;
  terminal: TerminalCapabilities;
  stream: StreamParams;
  /** VM Data to restore before the UA starts (reconnection), fetched over HTTP */
  restoreSnapshotId?: string | null;
  /** that VM Data's head (base64, VM_DATA_HEAD_BYTES at most) when the VMM kept it: the UA prepares for the state by it while the download begins */
  restoreHead?: string;
  /**
   * how long (ms) the session keeps its slot after an unexpected disconnect; the VM ends it by
   * itself when no PLAYER is back by then (the VMM ends it too: whichever comes first)
   */
  reconnectWindowMs?: number;
  /**
   * NO_LOSS where the VMM keeps staged VM Data: the VM stages the UA's FULL state with the VMM this
   * often (ms) while the session runs (vm-data-delta.ts), so that its save at a drop or at the end
   * sends only the chunks that changed since; absent or 0: never
   */
  vmDataStageMs?: number;
  /**
   * NO_LOSS with VM Data to restore, where the VMM keeps staged VM Data: that snapshot is what the
   * session has staged from the start, by the sha256s (hex) of its chunks in order. The VM names
   * them in its first staging and its saves, which then send only what changed since the restore.
   */
  vmDataStaged?: string[];
  /**
   * a session suspended by a watcher, moved here by its reconnection: the UA starts suspended, as
   * it was on the VM it left, until session.resume (a drop is no way out of a suspension)
   */
  suspended?: { byUserId: string | null; reason: string | null } | null;
}
/**
 * UVE-2 monitoring notification: the VM admits this user to the session. `privileges` holds
 * `PLAY` for an invited PLAYER (whose input is executed); anything else (VIEW, SUSPEND) is a
 * view-only watcher or guest.
 */
export interface MonitoringNotification extends CommandMeta {
  type: 'monitoring.notify';
  sessionId: string;
  watcherId: string;
  privileges: string[];
}
/** The user's access ended (grant revoked, monitoring stopped, guest left): the VM closes their connections with `reason`. */
export interface MonitoringEnd extends CommandMeta { type: 'monitoring.end'; sessionId: string; watcherId: string; reason: string }
export interface SuspendSessionCommand extends CommandMeta { type: 'session.suspend'; sessionId: string; byUserId: string | null; reason?: string | null }
export interface ResumeSessionCommand extends CommandMeta { type: 'session.resume'; sessionId: string; byUserId: string | null }
/**
 * `moved`: the session goes on on another VM (its reconnection went there) and may come back here
 * later, with a session.prepare of its own: the VM does not hold its end against that prepare, nor
 * against a UC whose token was issued after it.
 */
export interface TerminateSessionCommand extends CommandMeta { type: 'session.terminate'; sessionId: string; reason: string; saveVmData: boolean; moved?: boolean }
/**
 * Restore ahead (NO_LOSS, a FULL snapshot that moves to any VM): the session's PLAYER is away; the
 * VMM names this VM as the one its reconnection will go to. The VM downloads the VM Data and
 * restores it into a UA of the session's stream size and codec, frozen (no clock) until the
 * session.prepare of the reconnection takes it; the reconnection's first frame then waits for
 * neither the download nor the restore. Dropped at `holdMs`, at vmdata.dropRestore, or when a
 * prepare takes another snapshot. A hint only: without it the reconnection restores as usual.
 */
export interface PrepareRestoreCommand extends CommandMeta {
  type: 'vmdata.prepareRestore';
  sessionId: string;
  snapshotId: string;
  uaId: string;
  uaVersion: string;
  /** the session's stream as it was (the snapshot's screen size; the codec decides the pixel format) */
  width: number;
  height: number;
  codec: VideoCodec;
  /** how long (ms) the VM holds the prepared UA when no reconnection takes it: the rest of the reconnect window */
  holdMs: number;
  /** the snapshot's head (base64, VM_DATA_HEAD_BYTES at most) when the VMM kept it: the UA prepares for the state by it while the download begins */
  head?: string;
}
/** the restore prepared ahead for a session is of no more use (the session ended, or went elsewhere) */
export interface DropRestoreCommand extends CommandMeta { type: 'vmdata.dropRestore'; sessionId: string; reason: string }
export interface DrainVmCommand extends CommandMeta { type: 'vm.drain' }
export interface ShutdownVmCommand extends CommandMeta { type: 'vm.shutdown' }

export type VmCommand =
  | DeployUaCommand
  | RemoveUaCommand
  | UpdateUaCommand
  | PrepareSessionCommand
  | MonitoringNotification
  | MonitoringEnd
  | SuspendSessionCommand
  | ResumeSessionCommand
  | TerminateSessionCommand
  | PrepareRestoreCommand
  | DropRestoreCommand
  | DrainVmCommand
  | ShutdownVmCommand;

// ---- UVE-5: VM -> VMM -------------------------------------------------------------------------

/**
 * Every report is signed by the VM that sends it (see @uve/queue report-auth): `nonce` is random
 * per report, `sig` an HMAC-SHA256 of the canonical report with the key sha256(VM secret). The VMM
 * refuses a report that is unsigned, signed with another key, from a VM it did not provision or
 * removed, older than its window (VM reports) or whose nonce it has seen.
 */
interface FromVm { vmId: string; at: string; nonce?: string; sig?: string }

export interface VmRegistered extends FromVm {
  type: 'vm.register';
  name: string;
  platform: Platform;
  provider: VmProvider;
  /** base WebSocket URL of the VM's UVE-3 endpoint */
  endpoint: string;
  codecs: VideoCodec[];
  capacity: number;
  agentVersion: string;
  deployed: DeployedUa[];
}
export const LOAD_SOURCES = ['cgroup', 'process-tree'] as const;
export type LoadSource = (typeof LOAD_SOURCES)[number];
export interface VmHeartbeat extends FromVm {
  type: 'vm.heartbeat';
  activeSessions: number;
  capacity: number;
  codecs: VideoCodec[];
  /** 0..1 share of the VM's CPU budget used since the last heartbeat, by everything the VM runs (encoders, X servers, UAs) */
  cpuLoad: number;
  /** memory of everything the VM runs */
  rssBytes: number;
  /** where the figures come from: the container's cgroup, or the agent's process tree */
  loadSource?: LoadSource;
  deployed: DeployedUa[];
}
export interface VmStopping extends FromVm { type: 'vm.stopping'; reason: string }

/**
 * Reports about one session carry `seq`, counted by the VM per session from 1 in the order the VM
 * emitted them: the VMM applies them in that order, exactly once, whatever order the queue hands
 * them over in and however often.
 */
interface SessionRef extends FromVm { sessionId: string; userId: string; uaId: string; seq: number }

export interface SessionConnected extends SessionRef { type: 'session.connected'; role: StreamRole }
/** The UC went away without ending the session (seed B.1 step 2: exception notice). */
export interface SessionDisconnected extends SessionRef { type: 'session.disconnected'; reason: string; unexpected: boolean }
export interface SessionResourceRequested extends SessionRef { type: 'session.resourceRequested'; kind: LocalResourceKind }
export interface SessionFailed extends SessionRef { type: 'session.failed'; error: string }
/** The UA finished by itself (the user quit it): a normal end, not a failure. */
export interface SessionEnded extends SessionRef { type: 'session.ended'; reason: string }
export interface SessionSuspended extends SessionRef { type: 'session.suspended'; suspended: boolean }
export interface VmDataUpdated extends SessionRef {
  type: 'vmdata.updated';
  snapshotId: string;
  kind: SnapshotKind;
  sizeBytes: number;
  sha256: string;
}
/**
 * The outcome of a session.prepare's restoreSnapshotId, before the first frame: the VM Data was
 * restored, or (checksum mismatch, unusable state) the UA started fresh and `reason` says why.
 */
export interface VmDataRestored extends SessionRef {
  type: 'vmdata.restored';
  snapshotId: string;
  restored: boolean;
  kind: SnapshotKind | null;
  reason?: string | null;
}
export interface DeploymentChanged extends FromVm {
  type: 'deployment.changed';
  uaId: string;
  version: string;
  status: DeploymentStatus;
  error?: string | null;
}

export const ACK_OUTCOMES = ['done', 'expired', 'failed'] as const;
/** The VM took a UVE-2 command (or dropped it as expired): the VMM stops re-sending it. */
export interface CommandAck extends FromVm {
  type: 'command.ack';
  commandId: string;
  outcome: (typeof ACK_OUTCOMES)[number];
  error?: string | null;
}

export type VmEventMessage =
  | CommandAck
  | VmRegistered
  | VmHeartbeat
  | VmStopping
  | SessionConnected
  | SessionDisconnected
  | SessionResourceRequested
  | SessionFailed
  | SessionEnded
  | SessionSuspended
  | VmDataUpdated
  | VmDataRestored
  | DeploymentChanged;
