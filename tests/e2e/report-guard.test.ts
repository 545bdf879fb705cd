// The UVE-5 report guard's nonce rule on a real Redis (apps/gateway/src/modules/vmm/report-guard.ts):
// a nonce belongs to the queue message that first brought it. That message handed over again (a
// retry, a redelivery after its gateway was killed) is admitted again; the same signed report in
// another message (a replay, or a VM's second send of a report Redis had already taken) is refused.
// The VM record is a stand-in (what vms.findById would read); tests/faults/report-redelivery.test.ts
// runs the rule through real gateways.
import { createHash, randomUUID } from 'node:crypto';
import IORedis, { type Redis } from 'ioredis';
import { reportKey, signReport } from '@uve/queue';
import type { VmEventMessage } from '@uve/protocol';
import { VmReportGuard, type ReportRefusal } from '../../apps/gateway/src/modules/vmm/report-guard';
import type { VmsService } from '../../apps/gateway/src/modules/vms/vms.service';
import { createLogger } from '../../apps/gateway/src/common/logger';
import { startRedis, type TestRedis } from '../support/services';

const MAX_AGE_MS = 300_000;
const secret = 'the-vm-secret';
const vm = { id: randomUUID(), secretHash: createHash('sha256').update(secret).digest('hex'), destroyedAt: null };
const vms = { findById: async (id: string) => (id === vm.id ? vm : null) } as unknown as VmsService;

let redis: TestRedis;
let client: Redis;
let guard: VmReportGuard;
const refused: ReportRefusal[] = [];
beforeAll(async () => {
  redis = await startRedis();
  client = new IORedis(redis.url, { maxRetriesPerRequest: 1 });
  guard = new VmReportGuard(vms, client, 'guard', MAX_AGE_MS, createLogger('error'), (reason) => refused.push(reason));
});
afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});
beforeEach(() => void refused.splice(0));

const signed = (m: object): VmEventMessage => signReport({ vmId: vm.id, at: new Date().toISOString(), ...m } as VmEventMessage, reportKey(secret));

it.each([
  ['a VM report', { type: 'vm.stopping', reason: 'told' }],
  ['a session report', { type: 'session.ended', sessionId: randomUUID(), userId: randomUUID(), uaId: randomUUID(), reason: 'done', seq: 1 }],
])('admits %s again in the message that brought it, and refuses it in any other', async (_what, m) => {
  const report = signed(m);
  expect(await guard.admit(report, '41')).toBe(true);
  // the same message handed over again: a retry after a failure, or a redelivery after a kill
  expect(await guard.admit(report, '41')).toBe(true);
  // the same signed report as a new message
  expect(await guard.admit(report, '42')).toBe(false);
  expect(refused).toEqual(['replay']);
  // the copy refused took nothing from the message that brought it first
  expect(await guard.admit(report, '41')).toBe(true);
  // a new report (a new nonce) is the next message's own
  expect(await guard.admit(signed(m), '42')).toBe(true);
  expect(refused).toEqual(['replay']);
});

it('remembers a claim for twice the window a VM report may be late', async () => {
  const report = signed({ type: 'vm.stopping', reason: 'told' });
  expect(await guard.admit(report, '7')).toBe(true);
  const ttl = await client.pttl(`guard:vm-report-nonce:${vm.id}:${report.nonce}`);
  expect(ttl).toBeGreaterThan(2 * MAX_AGE_MS - 10_000);
  expect(ttl).toBeLessThanOrEqual(2 * MAX_AGE_MS);
});

it('checks who sent a report before it claims its nonce: a forgery claims nothing', async () => {
  const report = signed({ type: 'vm.stopping', reason: 'told' });
  expect(await guard.admit({ ...report, reason: 'changed after signing' } as VmEventMessage, '9')).toBe(false);
  expect(refused).toEqual(['bad_signature']);
  expect(await guard.admit(report, '10')).toBe(true);
});
