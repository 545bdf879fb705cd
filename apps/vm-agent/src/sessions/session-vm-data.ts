// A session's VM Data (seed 7.2, UVE-5): the snapshot to restore downloads while the UA starts and
// goes into it before the first frame (Annex B.1); at a drop or at the end the UA's state is saved
// per the session's Reconnection Method and stored with the VMM.
import type { ReconnectionMethod, SessionStartTiming, SnapshotKind, VmDataSaveTiming, WelcomeVmData } from '@uve/protocol';
import type { UaInstance } from '../runtimes/runtime';
import type { Logger } from '../common/log';
import { wallClock } from '../common/clock';
import { errorMessage } from '../common/errors';
import { firstBytesOf, type FetchedVmData, type HeldBuffer, type StagedHashes, type StoredVmData } from '../vmm/vm-data';
import type { SessionDeps, SessionReport } from './session';

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** a FULL save that did not fit the kept buffer: it grows for the next one (VmDataBuffer) */
function outgrown(held: HeldBuffer | null, instance: UaInstance): void {
  const needed = instance.fullStateBytes;
  if (held && needed && needed > held.data.byteLength) held.outgrown(needed);
}

/** the start's stamps this part writes (the session's own object, shared) */
type VmDataStamps = Pick<SessionStartTiming, 'vmDataRequestedAt' | 'vmDataFirstByteAt' | 'vmDataFetchedAt' | 'vmDataRestoredAt'>;

export interface RestoreDownload {
  fetched: Promise<FetchedVmData>;
  /** the first bytes that came (a FULL snapshot's header); never settles when the download failed before */
  head: Promise<Uint8Array>;
}

export class SessionVmData {
  /** what became of the VM Data to restore (told to UCs in their welcome) */
  outcome: WelcomeVmData | null = null;
  private saving: Promise<StoredVmData | null> | null = null;
  /** the sha256s of the chunks the VMM holds staged for this session; null: not known (none, or a staging that failed) */
  private staged: StagedHashes | null = null;
  /** the staging under way, if any */
  private staging: { done: Promise<void>; abort: AbortController } | null = null;
  private stageTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly sessionId: string,
    private readonly deps: Pick<SessionDeps, 'storeVmData' | 'fetchVmData' | 'vmDataBuffer' | 'vmDataDeltas'>,
    private readonly stamps: VmDataStamps,
    private readonly report: (event: SessionReport) => void,
    private readonly log: Logger,
    /** what the VMM holds staged for the session from the start: the VM Data it restores (session.prepare) */
    stagedAtStart?: readonly string[],
  ) {
    if (Array.isArray(stagedAtStart) && stagedAtStart.length > 0 && stagedAtStart.every((h) => typeof h === 'string' && SHA256_HEX.test(h))) {
      this.staged = new Set(stagedAtStart);
    }
  }

  /** Starts the download of the VM Data to restore (UVE-5 retrieve); its failure is kept for restore(). */
  download(snapshotId: string, knownHead: Uint8Array | null = null): RestoreDownload {
    const t = this.stamps;
    t.vmDataRequestedAt = wallClock();
    let gotHead!: (head: Uint8Array) => void;
    // the head the VMM kept with the snapshot (session.prepare's restoreHead) spares the wait for the first bytes
    const head = knownHead ? Promise.resolve(knownHead) : new Promise<Uint8Array>((resolve) => (gotHead = resolve));
    const fetched = this.deps.fetchVmData
      ? this.deps.fetchVmData(snapshotId, (first) => {
          t.vmDataFirstByteAt = wallClock();
          if (!knownHead) gotHead(firstBytesOf(first));
        }).then((d) => {
          t.vmDataFetchedAt = wallClock();
          return d;
        })
      : Promise.reject(new Error('this VM has no VMM to fetch VM Data from'));
    fetched.catch(() => undefined); // observed by restore(), or moot when the session fails first
    return { fetched, head };
  }

  /**
   * Restores the downloaded VM Data into the just started UA: FULL (memory, globals, app clock) or
   * APP_DATA. Reports the outcome (vmdata.restored); false when the UA must start again fresh.
   */
  async restore(instance: UaInstance, snapshotId: string, fetched: Promise<FetchedVmData>): Promise<boolean> {
    let release = (): void => undefined;
    try {
      const { kind, data, release: done } = await fetched;
      release = done;
      const bytes = data.byteLength; // a FULL restore moves the blob to the guest's thread
      if (kind === 'FULL') await instance.restoreFullState(data);
      else await instance.restoreAppData(data);
      this.stamps.vmDataRestoredAt = wallClock();
      this.log.info('VM Data restored', { snapshot: snapshotId, kind, bytes });
      this.report({ type: 'vmdata.restored', snapshotId, restored: true, kind });
      this.outcome = { snapshotId, restored: true, kind };
      return true;
    } catch (e) {
      const reason = errorMessage(e);
      this.log.warn('VM Data not restored; the UA starts fresh', { snapshot: snapshotId, reason });
      this.report({ type: 'vmdata.restored', snapshotId, restored: false, kind: null, reason });
      this.outcome = { snapshotId, restored: false, reason };
      return false;
    } finally {
      release();
    }
  }

  /** The state is in the UA already: a restore prepared ahead on this VM (RestoresAhead) was taken. */
  restoredAhead(snapshotId: string): void {
    this.stamps.vmDataRestoredAt = wallClock();
    this.log.info('VM Data restored ahead taken', { snapshot: snapshotId });
    this.report({ type: 'vmdata.restored', snapshotId, restored: true, kind: 'FULL' });
    this.outcome = { snapshotId, restored: true, kind: 'FULL', preparedAhead: true };
  }

  /**
   * Stages the UA's FULL state with the VMM every `everyMs` while `live()` gives the UA (NO_LOSS,
   * session.prepare's vmDataStageMs): the save at a drop or at the end then sends only the chunks
   * that changed since. Each staging copies the state out between two guest calls, as a save does.
   */
  startStaging(live: () => UaInstance | null, everyMs: number | undefined): void {
    if (!this.deps.vmDataDeltas || !everyMs || everyMs <= 0 || this.stageTimer) return;
    this.stageTimer = setInterval(() => {
      const instance = live();
      if (instance && !this.saving && !this.staging) this.stage(instance);
    }, everyMs);
    this.stageTimer.unref();
  }

  /** No more staging; one under way is given up (the session ends). */
  stopStaging(): void {
    if (this.stageTimer) clearInterval(this.stageTimer);
    this.stageTimer = null;
    this.staging?.abort.abort();
  }

  private stage(instance: UaInstance): void {
    const abort = new AbortController();
    const done = (async () => {
      const held = this.deps.vmDataBuffer?.() ?? null;
      try {
        let data: Uint8Array;
        try {
          data = await instance.saveFullState(undefined, held?.data);
          outgrown(held, instance);
        } catch (e) {
          // a UA whose full state cannot be captured here is not asked again
          this.log.warn('full state not capturable here; no more staging', { error: errorMessage(e) });
          this.stopStaging();
          return;
        }
        if (abort.signal.aborted) return;
        // unknown until the VMM answers: a staging cut short may or may not have replaced the last one
        const before = this.staged ?? new Set<string>();
        this.staged = null;
        const r = await this.deps.vmDataDeltas!.stage(this.sessionId, data, before, abort.signal);
        this.staged = r.staged;
        this.log.debug('VM Data staged', { chunks: r.chunks, sent: r.sent });
      } catch (e) {
        if (!abort.signal.aborted) this.log.warn('VM Data not staged', { error: errorMessage(e) });
      } finally {
        held?.release();
        this.staging = null;
      }
    })();
    this.staging = { done, abort };
  }

  /**
   * Saves the UA's VM Data per the Reconnection Method (NORMAL: the UA's own data; NO_LOSS: the full
   * state, or the UA's data where the runtime cannot capture more) and stores it with the VMM. One
   * save at a time: a disconnect during the save at termination does not save again. Never throws:
   * a failed save is logged, the session goes on.
   */
  save(instance: UaInstance | null, method: ReconnectionMethod): Promise<StoredVmData | null> {
    this.saving ??= this.doSave(instance, method).finally(() => (this.saving = null));
    return this.saving;
  }

  /** the VM Data as a delta against what the session staged when there is some, else (or when the VMM refuses the delta) whole */
  private async upload(kind: SnapshotKind, data: Uint8Array, timing: VmDataSaveTiming): Promise<StoredVmData> {
    const staged = kind === 'FULL' ? this.staged : null;
    if (staged && this.deps.vmDataDeltas) {
      try {
        return await this.deps.vmDataDeltas.uploadDelta(this.sessionId, kind, data, staged, timing);
      } catch (e) {
        this.staged = null;
        this.log.warn('VM Data delta not stored; sending the whole', { error: errorMessage(e) });
      }
    }
    return this.deps.storeVmData!(this.sessionId, kind, data, timing);
  }

  private async doSave(instance: UaInstance | null, method: ReconnectionMethod): Promise<StoredVmData | null> {
    if (!instance || !this.deps.storeVmData) return null;
    // a staging under way finishes first (it uses the kept buffer; and what it stages, this save need not send)
    await this.staging?.done;
    // a FULL state is written into the VM's kept buffer when it is free and large enough (no fresh
    // memory of the state's size), held until the upload is done
    const held = method === 'NO_LOSS' ? (this.deps.vmDataBuffer?.() ?? null) : null;
    try {
      const timing: VmDataSaveTiming = { startedAt: wallClock(), encodedAt: 0 };
      let kind: SnapshotKind = 'APP_DATA';
      let data: Uint8Array | null = null;
      if (method === 'NO_LOSS') {
        try {
          data = await instance.saveFullState(timing, held?.data);
          outgrown(held, instance);
          kind = 'FULL';
        } catch (e) {
          this.log.warn('full state not capturable here; saving the application data', { error: errorMessage(e) });
        }
      }
      data ??= await instance.saveAppData();
      if (data.byteLength === 0) return null; // the UA keeps nothing
      timing.encodedAt = wallClock();
      const stored = await this.upload(kind, data, timing);
      this.report({ type: 'vmdata.updated', snapshotId: stored.snapshotId, kind: stored.kind, sizeBytes: stored.sizeBytes, sha256: stored.sha256 });
      const ms = (t: number) => Math.round(t - timing.startedAt);
      this.log.info('VM Data saved', { kind, bytes: data.byteLength, snapshot: stored.snapshotId, encodedAfterMs: ms(timing.encodedAt), storedAfterMs: ms(wallClock()) });
      return stored;
    } catch (e) {
      this.log.warn('VM Data not saved', { error: errorMessage(e) });
      return null;
    } finally {
      held?.release();
    }
  }
}
