// UVE-5 reports checked at the VMM's edge (@uve/protocol vm-message-checks.ts): every report type
// as the agent sends it passes; each kind of field that does not fit is refused, naming the type
// and the field.
import { randomUUID } from 'node:crypto';
import { checkVmReport, InvalidVmReport, INT4_MAX, REPORT_TEXT_MAX, type VmEventMessage } from '@uve/protocol';

const from = { vmId: randomUUID(), at: new Date().toISOString(), nonce: 'n', sig: 's' };
const ref = { sessionId: randomUUID(), userId: randomUUID(), uaId: randomUUID(), seq: 1 };
const uaId = randomUUID();

const VALID: Record<VmEventMessage['type'], object> = {
  'vm.register': { name: 'vm-host-1', platform: 'WASM', provider: 'PROCESS', endpoint: 'ws://127.0.0.1:8070', codecs: ['H264', 'MJPEG'], capacity: 2, agentVersion: '0.1.0', deployed: [{ uaId, version: '1.0.0' }] },
  'vm.heartbeat': { activeSessions: 0, capacity: 2, codecs: ['VP8'], cpuLoad: 0.25, rssBytes: 123_456_789, loadSource: 'cgroup', deployed: [] },
  'vm.stopping': { reason: 'SIGTERM' },
  'command.ack': { commandId: randomUUID(), outcome: 'failed', error: 'download failed' },
  'deployment.changed': { uaId, version: '1.0.0', status: 'INSTALLED', error: null },
  'session.connected': { ...ref, role: 'PLAYER' },
  'session.disconnected': { ...ref, reason: 'connection closed: 1006', unexpected: true },
  'session.resourceRequested': { ...ref, kind: 'GEOLOCATION' },
  'session.failed': { ...ref, error: 'the application crashed' },
  'session.ended': { ...ref, seq: INT4_MAX, reason: 'the application exited' },
  'session.suspended': { ...ref, suspended: false },
  'vmdata.updated': { ...ref, snapshotId: randomUUID(), kind: 'FULL', sizeBytes: 16 << 20, sha256: 'a'.repeat(64) },
  'vmdata.restored': { ...ref, snapshotId: randomUUID(), restored: false, kind: null, reason: 'checksum mismatch' },
};
const report = (type: VmEventMessage['type'], change: object = {}): VmEventMessage => ({ ...from, type, ...VALID[type], ...change }) as VmEventMessage;
const refusal = (m: VmEventMessage): InvalidVmReport => {
  try {
    checkVmReport(m);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidVmReport);
    return e as InvalidVmReport;
  }
  throw new Error(`${m.type} was not refused`);
};

it.each(Object.keys(VALID) as VmEventMessage['type'][])('passes %s as a VM sends it', (type) => {
  expect(() => checkVmReport(report(type))).not.toThrow();
});

it('passes what is optional left out, and a report type it does not know (a newer VM: ignored further on)', () => {
  expect(() => checkVmReport(report('vm.heartbeat', { loadSource: undefined }))).not.toThrow();
  expect(() => checkVmReport(report('command.ack', { error: undefined }))).not.toThrow();
  expect(() => checkVmReport(report('vmdata.restored', { restored: true, kind: 'APP_DATA', reason: undefined }))).not.toThrow();
  expect(() => checkVmReport(report('deployment.changed', { status: 'REMOVED', version: '' }))).not.toThrow();
  expect(() => checkVmReport({ ...from, type: 'vm.newThing' } as unknown as VmEventMessage)).not.toThrow();
});

const huge = 'x'.repeat(REPORT_TEXT_MAX + 1);
// [type, the field as the message names it, the bad value (of its top-level field), what the message says]
const BAD: [VmEventMessage['type'], string, unknown, RegExp][] = [
  // uuids where the column is a uuid
  ['deployment.changed', 'uaId', 'not-a-uuid', /must be a UUID \(got "not-a-uuid"\)/],
  ['command.ack', 'commandId', 42, /must be a UUID \(got 42\)/],
  ['session.connected', 'sessionId', 'x', /must be a UUID/],
  ['session.failed', 'userId', null, /must be a UUID \(got null\)/],
  ['vmdata.restored', 'snapshotId', '../etc', /must be a UUID/],
  // integers within int4
  ['session.ended', 'seq', 2 ** 31, /must be an integer from 1 to 2147483647 \(got 2147483648\)/],
  ['session.disconnected', 'seq', 0, /must be an integer from 1/],
  ['session.suspended', 'seq', 1.5, /must be an integer/],
  ['session.connected', 'seq', '1', /must be an integer \S+ \S+ \S+ \S+ \(got "1"\)/],
  ['vm.register', 'capacity', -1, /must be an integer from 0 to 2147483647/],
  ['vm.heartbeat', 'capacity', 2 ** 40, /must be an integer/],
  // finite numbers, 0 or more
  ['vm.heartbeat', 'cpuLoad', NaN, /must be a finite number, 0 or more \(got NaN\)/],
  ['vm.heartbeat', 'rssBytes', -1, /must be a finite number, 0 or more/],
  ['vm.heartbeat', 'cpuLoad', Infinity, /finite/],
  ['vm.heartbeat', 'rssBytes', '1000', /finite/],
  ['vmdata.updated', 'sizeBytes', -5, /must be an integer from 0/],
  // the protocol's own lists
  ['deployment.changed', 'status', 'DONE', /must be one of PENDING, DOWNLOADING, INSTALLED, FAILED, REMOVING, REMOVED \(got "DONE"\)/],
  ['session.connected', 'role', 'ADMIN', /must be one of PLAYER, VIEWER/],
  ['session.resourceRequested', 'kind', 'MICROWAVE', /must be one of GEOLOCATION/],
  ['vm.register', 'platform', 'DOS', /must be one of WASM, LINUX_X11/],
  ['vm.register', 'provider', 'EC2', /must be one of DOCKER, PROCESS, SWARM/],
  ['command.ack', 'outcome', 'cancelled', /must be one of done, expired, failed/],
  ['vm.heartbeat', 'loadSource', 'guess', /must be one of cgroup, process-tree/],
  ['vmdata.updated', 'kind', null, /must be one of APP_DATA, FULL \(got null\)/],
  ['vmdata.restored', 'kind', 'SOME', /must be one of APP_DATA, FULL/],
  // strings: a type, a length, what PostgreSQL cannot store
  ['vm.stopping', 'reason', huge, new RegExp(`must be a string of 0 to ${REPORT_TEXT_MAX} characters \\(got a string of ${REPORT_TEXT_MAX + 1} characters\\)`)],
  ['session.failed', 'error', { message: 'x' }, /must be a string/],
  ['deployment.changed', 'version', 'v'.repeat(65), /must be a string of 0 to 64 characters/],
  ['deployment.changed', 'error', huge, /must be a string of 0 to 16384/],
  ['session.ended', 'reason', 'a\u0000b', /must not hold a NUL character or half a surrogate pair/],
  ['vm.stopping', 'reason', 'cut \ud83d', /half a surrogate pair/],
  ['vm.register', 'endpoint', 'http://127.0.0.1:1', /must be a ws:\/\/ or wss:\/\/ URL/],
  ['vm.register', 'endpoint', `ws://${'h'.repeat(600)}`, /must be a string of 1 to 512 characters/],
  ['vmdata.updated', 'sha256', 'A'.repeat(64), /must be 64 lowercase hex digits/],
  // booleans
  ['session.disconnected', 'unexpected', 'yes', /must be true or false \(got "yes"\)/],
  ['vmdata.restored', 'restored', 1, /must be true or false/],
  // lists and what is in them
  ['vm.register', 'codecs', 'H264', /must be an array of at most 16 items \(got "H264"\)/],
  ['vm.heartbeat', 'codecs[1]', ['H264', 'AV1'], /must be one of H264, VP8, MJPEG \(got "AV1"\)/],
  ['vm.register', 'deployed[0].version', [{ uaId, version: 7 }], /must be a string/],
  ['vm.register', 'deployed[1]', [{ uaId, version: '1' }, 'x'], /must be an object \(got "x"\)/],
  ['vm.register', 'deployed[1].uaId', [{ uaId, version: '1' }, { uaId, version: '2' }], new RegExp(`must not repeat an earlier item's \\(got "${uaId}" twice\\)`)],
  ['vm.register', 'deployed', new Array(4097).fill({ uaId, version: '1' }), /must be an array of at most 4096 items \(got an array of \d+ characters of JSON\)/],
];

it.each(BAD)('refuses %s with a bad %s', (type, field, value, what) => {
  // a field inside a list or an object is set by its top-level field's value
  const top = field.split(/[.[]/)[0]!;
  const e = refusal(report(type, { [top]: value }));
  expect(e.message).toMatch(new RegExp(`^invalid ${type.replace('.', '\\.')} report: "${field.replace(/[.[\]]/g, '\\$&')}" `));
  expect(e.message).toMatch(what);
  expect(e).toMatchObject({ reportType: type, field });
});

it.each([
  ['deployment.changed', 'uaId', /"uaId" must be a UUID \(got nothing\)/],
  ['session.ended', 'seq', /"seq" must be an integer from 1 to 2147483647 \(got nothing\)/],
  ['session.ended', 'reason', /"reason" must be a string of 0 to 16384 characters \(got nothing\)/],
  ['vm.register', 'deployed', /"deployed" must be an array of at most 4096 items \(got nothing\)/],
  ['vmdata.restored', 'restored', /"restored" must be true or false \(got nothing\)/],
] as const)('refuses %s without its %s', (type, field, what) => {
  const m = report(type) as unknown as Record<string, unknown>;
  delete m[field];
  expect(refusal(m as unknown as VmEventMessage).message).toMatch(what);
});
