// Restores prepared ahead (vmdata.prepareRestore): while a NO_LOSS session's PLAYER is away, the
// VMM names this VM as the one the reconnection will go to, and the VM downloads the session's VM
// Data and restores it into a UA that waits frozen (no clock, no frames). The reconnection's
// session.prepare then takes that UA: its first frame waits for neither the download nor the
// restore (at 128 MiB ~1 s of both cores here: docs/performance.md, "thirteenth pass"). A hint
// only: anything that does not fit (another snapshot, size, pixel format) is dropped and the
// session restores as usual.
import type { PrepareRestoreCommand } from '@uve/protocol';
import { sessionPixelFormat } from '../encoders/encoder';
import type { Logger } from '../common/log';
import { wallClock } from '../common/clock';
import { errorMessage } from '../common/errors';
import type { InstalledUa, PixelFormat, ResourceAnswer, ResourceBroker, UaInstance, UaRuntime } from '../runtimes/runtime';
import { firstBytesOf, vmDataHead, type FetchedVmData } from '../vmm/vm-data';

/** the longest a VM holds a prepared UA, whatever the command says */
export const MAX_HOLD_MS = 15 * 60_000;

/** what a session gives the UA it takes over (what UaStartOptions gave a UA started for it) */
export interface RestoreAheadBinding {
  resources: ResourceBroker;
  onDamage: () => void;
  onExit: (error?: Error) => void;
}

/** a UA holding the session's state, frozen, and when it was ready */
export interface PreparedRestore {
  instance: UaInstance;
  startedAt: number;
  /** the download's first bytes came */
  firstByteAt: number;
  /** the UA was started (before the restore) */
  uaStartedAt: number;
  /** the snapshot downloaded and its sha256 checked */
  fetchedAt: number;
  readyAt: number;
  /** hands the UA to the session: its callbacks from now on (the UA stays frozen: the session resumes it) */
  bind(to: RestoreAheadBinding): UaInstance;
}

/** what the session to restore asks for; a prepared UA is only taken when all of it matches */
export interface RestoreAheadKey {
  snapshotId: string;
  uaId: string;
  uaVersion: string;
  width: number;
  height: number;
  pixelFormat: PixelFormat;
}

export interface RestoresAheadDeps {
  runtime: UaRuntime;
  /** the installed package (waiting for a deploy under way); rejects when that version is not here */
  resolveUa: (uaId: string, version: string) => Promise<InstalledUa>;
  fetchVmData: (snapshotId: string, onFirstBytes?: (head: Uint8Array) => void) => Promise<FetchedVmData>;
  /** prepared UAs held at most at once (the VM's capacity): a further one drops the oldest */
  max: number;
  /** the session runs on this VM already (its prepare overtook this command): nothing to prepare */
  hosts?: (sessionId: string) => boolean;
  log: Logger;
}

interface Entry {
  key: RestoreAheadKey;
  /** the snapshot's head as the VMM kept it (the command's), or null: the UA prepares by the download's first bytes */
  head: Uint8Array | null;
  /** the prepared UA, or null when it could not be prepared (logged) */
  prepared: Promise<PreparedRestore | null>;
  /** given up (dropped, expired, the VM stops): a UA prepared after this is closed */
  dropped: boolean;
  /** the UA holds the state, waiting to be taken */
  ready: boolean;
  timer: NodeJS.Timeout;
}

export class RestoresAhead {
  private readonly entries = new Map<string, Entry>();
  /** since the agent's start: taken by a reconnection, let go of unused, failed to prepare */
  private readonly outcomes = { taken: 0, dropped: 0, failed: 0 };

  constructor(private readonly deps: RestoresAheadDeps) {}

  /** sessions with a restore prepared or under way */
  get size(): number {
    return this.entries.size;
  }

  /** what is held, for the VM's /healthz: under way, and ready to be taken */
  counts(): { preparing: number; ready: number } {
    const ready = [...this.entries.values()].filter((e) => e.ready).length;
    return { preparing: this.entries.size - ready, ready };
  }

  /** what is held now and what became of the others since the start (the VM's /metrics) */
  stats(): { preparing: number; ready: number; taken: number; dropped: number; failed: number } {
    return { ...this.counts(), ...this.outcomes };
  }

  /** vmdata.prepareRestore: starts preparing (a repeat of the same snapshot is ignored; another replaces it). */
  prepare(cmd: PrepareRestoreCommand): void {
    const log = this.deps.log.child({ session: cmd.sessionId, snapshot: cmd.snapshotId });
    const key: RestoreAheadKey = {
      snapshotId: cmd.snapshotId, uaId: cmd.uaId, uaVersion: cmd.uaVersion, width: cmd.width, height: cmd.height,
      pixelFormat: sessionPixelFormat(cmd.codec, this.deps.runtime.pixelFormats, cmd.width, cmd.height),
    };
    const held = this.entries.get(cmd.sessionId);
    if (held?.key.snapshotId === cmd.snapshotId) return;
    if (this.deps.hosts?.(cmd.sessionId)) {
      log.info('restore ahead not prepared: the session runs here already');
      return;
    }
    if (held) this.drop(cmd.sessionId, 'a newer snapshot of the session is prepared');
    if (this.entries.size >= this.deps.max) this.drop(this.entries.keys().next().value!, `at most ${this.deps.max} restores are prepared ahead`);
    const holdMs = Math.max(0, Math.min(Number.isFinite(cmd.holdMs) ? cmd.holdMs : 0, MAX_HOLD_MS));
    const entry: Entry = {
      key,
      head: vmDataHead(cmd.head),
      prepared: Promise.resolve(null),
      dropped: false,
      ready: false,
      timer: setTimeout(() => this.drop(cmd.sessionId, `not taken within ${Math.round(holdMs / 1000)} s`), holdMs),
    };
    entry.timer.unref();
    entry.prepared = this.run(cmd.sessionId, entry, log);
    this.entries.set(cmd.sessionId, entry);
  }

  /**
   * The session's reconnection takes its prepared UA (waiting for one still under way), or null
   * when there is none for exactly this key (the session then restores as usual).
   */
  take(sessionId: string, key: RestoreAheadKey): Promise<PreparedRestore | null> | null {
    const entry = this.entries.get(sessionId);
    if (!entry) return null;
    const mismatch = (Object.keys(key) as (keyof RestoreAheadKey)[]).find((k) => key[k] !== entry.key[k]);
    if (mismatch) {
      this.drop(sessionId, `the reconnection differs (${mismatch}: ${String(entry.key[mismatch])} prepared, ${String(key[mismatch])} asked)`);
      return null;
    }
    this.entries.delete(sessionId);
    clearTimeout(entry.timer);
    // a restore still under way when taken may fail after all
    return entry.prepared.then((p) => {
      this.outcomes[p ? 'taken' : 'failed']++;
      return p;
    });
  }

  /** vmdata.dropRestore, an expiry, a replacement: the prepared UA (or the one under way) is closed. */
  drop(sessionId: string, reason: string): void {
    const entry = this.entries.get(sessionId);
    if (!entry) return;
    this.entries.delete(sessionId);
    clearTimeout(entry.timer);
    entry.dropped = true;
    this.outcomes.dropped++;
    this.deps.log.info('restore prepared ahead dropped', { session: sessionId, reason });
    void entry.prepared.then((p) => p?.instance.close().catch(() => undefined));
  }

  /** The VM stops: every prepared UA is closed (those under way close when they are done). */
  async close(): Promise<void> {
    const all = [...this.entries.keys()];
    const waits = all.map((id) => this.entries.get(id)!.prepared);
    for (const id of all) this.drop(id, 'the VM stops');
    await Promise.allSettled(waits);
  }

  private async run(sessionId: string, entry: Entry, log: Logger): Promise<PreparedRestore | null> {
    const startedAt = wallClock();
    // the UA's callbacks go to the session that takes it; before that there is none
    let target: RestoreAheadBinding | null = null;
    let bound!: (t: RestoreAheadBinding) => void;
    const binding = new Promise<RestoreAheadBinding>((resolve) => (bound = resolve));
    let instance: UaInstance | null = null;
    const resources: ResourceBroker = {
      // requests the snapshot still waited for go to the reconnecting terminal, once there is one
      request: (kind): Promise<ResourceAnswer> => binding.then((t) => t.resources.request(kind)),
    };
    // the download goes beside the UA's start (as a session's does); the snapshot's head lets the UA
    // make room for the state (prepareRestore) once it is started: the VMM's copy of it at once, else
    // the download's first bytes
    let head = entry.head;
    let firstByteAt = 0;
    const fetching = this.deps.fetchVmData(entry.key.snapshotId, (first) => {
      firstByteAt = wallClock();
      if (head) return;
      head = firstBytesOf(first);
      if (instance && !entry.dropped) instance.prepareRestore?.(head);
    });
    fetching.catch(() => undefined); // awaited below, or moot when the start fails first
    let fetched: FetchedVmData | null = null;
    try {
      // the VMM sends the package first when this VM does not have it yet
      const ua = await this.deps.resolveUa(entry.key.uaId, entry.key.uaVersion);
      if (entry.dropped) throw new Error('dropped meanwhile');
      const started = await this.deps.runtime.start({
        ua, width: entry.key.width, height: entry.key.height, pixelFormat: entry.key.pixelFormat, resources,
        onDamage: () => target?.onDamage(),
        onExit: (error) => {
          if (target) return target.onExit(error);
          // a UA that is gone is no use to the reconnection
          log.warn('UA prepared ahead exited before a reconnection took it', { error: error ? errorMessage(error) : null });
          if (this.entries.get(sessionId) === entry) this.drop(sessionId, 'its UA exited');
        },
        restoreFollows: true,
      });
      instance = started;
      const uaStartedAt = wallClock();
      if (head && !entry.dropped) started.prepareRestore?.(head);
      fetched = await fetching;
      const fetchedAt = wallClock();
      try {
        if (fetched.kind !== 'FULL') throw new Error(`the snapshot is ${fetched.kind}, not FULL`);
        if (entry.dropped) throw new Error('dropped meanwhile');
        await started.restoreFullState(fetched.data);
      } finally {
        fetched.release();
      }
      // frozen until taken: the app clock continues from the drop, not from this restore
      started.suspend();
      if (entry.dropped) throw new Error('dropped meanwhile');
      const readyAt = wallClock();
      entry.ready = true;
      log.info('restore prepared ahead', { ms: Math.round(readyAt - startedAt), downloadMs: Math.round(fetchedAt - startedAt) });
      return {
        instance: started, startedAt, firstByteAt, uaStartedAt, fetchedAt, readyAt,
        bind: (t) => {
          target = t;
          bound(t);
          return started;
        },
      };
    } catch (e) {
      if (!entry.dropped) log.warn('restore ahead not prepared; the reconnection restores as usual', { error: errorMessage(e) });
      // nothing held: a reconnection finds no entry and restores at once
      if (this.entries.get(sessionId) === entry) {
        this.entries.delete(sessionId);
        clearTimeout(entry.timer);
        this.outcomes.failed++;
      }
      // a download that outlived the failure gives its buffer back
      if (!fetched) fetching.then((f) => f.release(), () => undefined);
      await instance?.close().catch(() => undefined);
      return null;
    }
  }
}
