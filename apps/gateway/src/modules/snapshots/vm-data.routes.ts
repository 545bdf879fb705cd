// UVE-5 VM Data over HTTP (large state does not belong in Redis): a VM uploads a session's VM Data
// and fetches a snapshot to restore, authenticated with its own VM secret.
//   PUT /vmm/vm-data/sessions/:sessionId?kind=APP_DATA|FULL   body: the bytes
//   GET /vmm/vm-data/snapshots/:snapshotId
// Headers: `x-uve-vm-id: <vm id>`, `authorization: Bearer <vm secret>`.
import express, { type Express, type Request, type Response } from 'express';
import { SNAPSHOT_KINDS, VM_DATA_PATH, type SnapshotKind } from '@uve/protocol';
import type { Services } from '../../services';
import type { Vm } from '../vms/vms.entity';
import { VmDataCorrupted } from './snapshots.service';

function refuse(res: Response, status: number, code: string, message: string): void {
  res.status(status).json({ error: { code, message } });
}

async function vmOf(req: Request, res: Response, services: Services): Promise<Vm | null> {
  const vmId = req.header('x-uve-vm-id') ?? '';
  const m = /^Bearer\s+(\S+)$/i.exec(req.header('authorization') ?? '');
  const vm = m ? await services.vms.authenticate(vmId, m[1]!) : null;
  if (!vm) refuse(res, 401, 'UNAUTHENTICATED', 'Send x-uve-vm-id and "Authorization: Bearer <VM secret>" of a VM this VMM provisioned.');
  return vm;
}

export function registerVmDataRoutes(app: Express, services: Services, maxBytes: number): void {
  app.put(`${VM_DATA_PATH}/sessions/:sessionId`, async (req, res, next) => {
    try {
      const vm = await vmOf(req, res, services);
      if (!vm) return;
      const kind = String(req.query.kind ?? '');
      if (!(SNAPSHOT_KINDS as readonly string[]).includes(kind)) return refuse(res, 400, 'BAD_USER_INPUT', `kind must be one of ${SNAPSHOT_KINDS.join(', ')}.`);
      // read the body only once the VM is known
      express.raw({ type: () => true, limit: maxBytes })(req, res, async (err?: unknown) => {
        try {
          if (err) return refuse(res, (err as { status?: number }).status ?? 400, 'BAD_USER_INPUT', `VM Data must be at most ${maxBytes} bytes.`);
          const data: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
          if (data.byteLength === 0) return refuse(res, 400, 'BAD_USER_INPUT', 'VM Data is empty.');
          const snap = await services.snapshots.store(vm, String(req.params.sessionId), kind as SnapshotKind, data);
          if (!snap) return refuse(res, 404, 'NOT_FOUND', 'This VM holds no such open session (or it ended too long ago).');
          await services.sessions.recordEvent(snap.sessionId!, 'SNAPSHOT_SAVED', { snapshotId: snap.id, kind: snap.kind, sizeBytes: snap.sizeBytes, sha256: snap.sha256 });
          res.status(201).json({ snapshotId: snap.id, kind: snap.kind, sizeBytes: snap.sizeBytes, sha256: snap.sha256 });
        } catch (e) {
          next(e);
        }
      });
    } catch (e) {
      next(e);
    }
  });

  app.get(`${VM_DATA_PATH}/snapshots/:snapshotId`, async (req, res, next) => {
    try {
      const vm = await vmOf(req, res, services);
      if (!vm) return;
      const found = await services.snapshots.load(vm, String(req.params.snapshotId)).catch((e: Error) => {
        if (!(e instanceof VmDataCorrupted)) throw e;
        services.log.error('corrupted VM Data refused', { vmId: vm.id, snapshotId: String(req.params.snapshotId), error: e.message });
        refuse(res, 409, 'VM_DATA_CORRUPTED', e.message);
        return 'refused' as const;
      });
      if (found === 'refused') return;
      if (!found) return refuse(res, 404, 'NOT_FOUND', 'No such snapshot for a session this VM holds.');
      res.set({ 'content-type': 'application/octet-stream', 'x-uve-snapshot-kind': found.snapshot.kind, 'x-uve-sha256': found.snapshot.sha256 }).send(found.data);
    } catch (e) {
      next(e);
    }
  });
}
