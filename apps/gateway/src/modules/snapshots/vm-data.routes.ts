// UVE-5 VM Data over HTTP (large state does not belong in Redis): a VM uploads a session's VM Data
// and fetches a snapshot to restore, authenticated with its own VM secret.
//   PUT /vmm/vm-data/sessions/:sessionId?kind=APP_DATA|FULL   body: the bytes (streamed into the store),
//       or a delta (content-type VM_DATA_DELTA_CONTENT_TYPE): the chunks that changed since the session staged
//   PUT /vmm/vm-data/sessions/:sessionId/staged                body: a delta, the session's state staged ahead
//   GET /vmm/vm-data/snapshots/:snapshotId
// Headers: `x-uve-vm-id: <vm id>`, `authorization: Bearer <vm secret>`.
import { createHash } from 'node:crypto';
import type { Express, Request, Response } from 'express';
import { SNAPSHOT_KINDS, VM_DATA_DELTA_CONTENT_TYPE, VM_DATA_PATH, VM_DATA_SAVE_TIMING_HEADER, type SnapshotKind, type VmDataSaveTiming } from '@uve/protocol';
import type { Services } from '../../services';
import type { Vm } from '../vms/vms.entity';
import type { VmSnapshot } from './snapshots.entity';
import { httpStatusOf, isUuid, type ErrorCode } from '../../common/errors';
import { VmDataStoreError, type VmCredential } from './vm-data-store';
import { snapshotSavedData } from './snapshots.service';

function refuse(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } });
}

/** A refusal with one of the contract's codes, at its HTTP status. */
function refuseAs(res: Response, code: ErrorCode, message: string): void {
  refuse(res, httpStatusOf(code), code, message);
}

async function vmOf(req: Request, res: Response, services: Services): Promise<Vm | null> {
  const secret = bearer(req);
  const vm = secret ? await services.vms.authenticate(req.header('x-uve-vm-id') ?? '', secret) : null;
  if (!vm) refuseAs(res, 'UNAUTHENTICATED', 'Send x-uve-vm-id and "Authorization: Bearer <VM secret>" of a VM this VMM provisioned.');
  return vm;
}

const bearer = (req: Request): string | null => /^Bearer\s+(\S+)$/i.exec(req.header('authorization') ?? '')?.[1] ?? null;

/** the VM a request names, not checked yet (for a read the store checks itself: prepareRead) */
function credentialOf(req: Request): VmCredential | null {
  const vmId = req.header('x-uve-vm-id') ?? '';
  const secret = bearer(req);
  return secret && isUuid(vmId) ? { vmId, secretSha256: createHash('sha256').update(secret).digest('hex') } : null;
}

export function registerVmDataRoutes(app: Express, services: Services, maxBytes: number): void {
  app.put(`${VM_DATA_PATH}/sessions/:sessionId`, (req, res, next) => services.snapshots.transfer(async () => {
    const receivedAt = Date.now();
    try {
      const vm = await vmOf(req, res, services);
      if (!vm) return;
      const kind = String(req.query.kind ?? '');
      if (!(SNAPSHOT_KINDS as readonly string[]).includes(kind)) return refuseAs(res, 'BAD_USER_INPUT', `kind must be one of ${SNAPSHOT_KINDS.join(', ')}.`);
      const declared = Number(req.header('content-length') ?? NaN);
      if (declared > maxBytes) return refuseTooLarge(req, res, maxBytes);
      // the body streams into the store, chunk by chunk, once the VM is known
      // (not destroyed when the store stops early: a refusal still gets its answer to the VM)
      const body = req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
      const stored = await services.snapshots.store(vm, String(req.params.sessionId), kind as SnapshotKind, body, maxBytes, isDelta(req));
      if (!stored) return refuseAs(res, 'NOT_FOUND', 'This VM holds no such open session (or it ended too long ago).');
      const { snapshot: snap, chunks, chunksWritten, chunksSent } = stored;
      const timing = saveTiming(req.header(VM_DATA_SAVE_TIMING_HEADER), receivedAt);
      await services.sessions.recordEvent(snap.sessionId!, 'SNAPSHOT_SAVED', snapshotSavedData(snap, { chunks, chunksSent, chunksWritten }, { timing }));
      res.status(201).json({ snapshotId: snap.id, kind: snap.kind, sizeBytes: snap.sizeBytes, sha256: snap.sha256 });
    } catch (e) {
      if (!(e instanceof VmDataStoreError)) return next(e);
      if (e.status === 413) return refuseTooLarge(req, res, maxBytes);
      refuse(res, e.status, e.code, e.message);
    }
  }));

  app.put(`${VM_DATA_PATH}/sessions/:sessionId/staged`, (req, res, next) => services.snapshots.transfer(async () => {
    try {
      const vm = await vmOf(req, res, services);
      if (!vm) return;
      if (!isDelta(req)) return refuse(res, 415, 'BAD_USER_INPUT', `Staged VM Data is a delta (content-type ${VM_DATA_DELTA_CONTENT_TYPE}).`);
      const staged = await services.snapshots.stage(vm, String(req.params.sessionId), req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>, maxBytes);
      if (!staged) return refuseAs(res, 'NOT_FOUND', 'This VM holds no such open session.');
      res.status(200).json(staged);
    } catch (e) {
      if (!(e instanceof VmDataStoreError)) return next(e);
      refuse(res, e.status, e.code, e.message);
    }
  }));

  app.get(`${VM_DATA_PATH}/snapshots/:snapshotId`, (req, res, next) => services.snapshots.transfer(async () => {
    try {
      const opened = await openForVm(req, res, services);
      if (!opened) return;
      const { vm, snapshot, chunks } = opened;
      res.set({ 'content-type': 'application/octet-stream', 'content-length': String(snapshot.sizeBytes), 'x-uve-snapshot-kind': snapshot.kind, 'x-uve-sha256': snapshot.sha256 });
      // one chunk at a time, at the pace the VM reads; a chunk that fails once bytes went out cuts
      // the response short (the VM then has fewer bytes than announced, and refuses them)
      try {
        for await (const chunk of chunks) {
          if (res.destroyed) break; // the VM hung up
          if (!res.write(chunk)) await drained(res);
        }
        res.end();
      } catch (e) {
        const error = (e as Error).message;
        if (e instanceof VmDataStoreError && e.code === 'DAMAGED') services.log.error('corrupted VM Data refused part-way', { snapshotId: snapshot.id, vmId: vm.id, error });
        else services.log.warn('VM Data download cut short', { snapshotId: snapshot.id, vmId: vm.id, error });
        res.destroy();
      } finally {
        await chunks.return(undefined); // the store's reader is released when the VM hung up
      }
    } catch (e) {
      if (e instanceof VmDataStoreError && !res.headersSent) {
        if (e.code === 'DAMAGED') services.log.error('corrupted VM Data refused', { snapshotId: String(req.params.snapshotId), error: e.message });
        return refuse(res, e.status, e.code, e.message);
      }
      next(e);
    }
  }));
}

/**
 * The snapshot a GET names, opened for the VM that asks, or null once refused. The snapshot is
 * looked up for the VM the request names, and its first chunk read (the store checks that VM in
 * the read itself), while that VM is authenticated: the round trips overlap on the way to the
 * first byte; what they give is used only once the VM is who it says.
 */
async function openForVm(req: Request, res: Response, services: Services): Promise<{ vm: Vm; snapshot: VmSnapshot; chunks: AsyncGenerator<Buffer> } | null> {
  const snapshotId = String(req.params.snapshotId);
  const lookup = services.snapshots.load(req.header('x-uve-vm-id') ?? '', snapshotId);
  lookup.catch(() => undefined); // awaited below, unless the VM is refused first
  const credential = credentialOf(req);
  const read = credential && isUuid(snapshotId) ? services.snapshots.prepareRead(snapshotId, credential) : null;
  let opened = false;
  try {
    const vm = await vmOf(req, res, services);
    if (!vm) return null;
    const snapshot = await lookup;
    if (!snapshot) {
      refuseAs(res, 'NOT_FOUND', 'No such snapshot for a session this VM holds.');
      return null;
    }
    const chunks = await (read ? read.open(snapshot) : services.snapshots.open(snapshot));
    opened = true;
    return { vm, snapshot, chunks };
  } finally {
    if (!opened) await read?.cancel(); // refused, or failed before it was opened: released
  }
}

const isDelta = (req: Request) => (req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase() === VM_DATA_DELTA_CONTENT_TYPE;

/**
 * The save's stages: the VM's (its header, kept only as far as they are numbers) and the VMM's own,
 * for whoever looks into a slow save (SNAPSHOT_SAVED's data).
 */
export function saveTiming(header: string | undefined, receivedAt: number): Partial<VmDataSaveTiming> {
  const timing: Partial<VmDataSaveTiming> = {};
  let sent: unknown = null;
  try {
    sent = JSON.parse(header ?? 'null');
  } catch {
    // a VM's diagnostics that do not parse are left out, not a reason to refuse its VM Data
  }
  for (const key of ['startedAt', 'capturedAt', 'encodedAt'] as const) {
    const v = (sent as Record<string, unknown> | null)?.[key];
    if (typeof v === 'number' && Number.isFinite(v)) timing[key] = v;
  }
  return { ...timing, receivedAt, storedAt: Date.now() };
}

/**
 * 413 once the rest of the body was read and dropped (never kept): answering while the VM still
 * sends made the connection reset under it, so it saw no answer at all. A body that goes on for
 * longer than TOO_LARGE_DRAIN_MS is cut off.
 */
function refuseTooLarge(req: Request, res: Response, maxBytes: number): void {
  const answer = () => refuse(res, 413, 'TOO_LARGE', `VM Data must be at most ${maxBytes} bytes (UVE_VM_DATA_MAX_MB).`);
  if (req.readableEnded) return answer();
  const timer = setTimeout(() => req.destroy(), TOO_LARGE_DRAIN_MS);
  req.once('end', () => {
    clearTimeout(timer);
    answer();
  });
  req.resume();
}
const TOO_LARGE_DRAIN_MS = 30_000;

/** resolves once the response can take more, or is gone */
function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
