// bench/reconnect (issue 9): how long a dropped user waits for their state to come back, and what
// the VM Data store moves per second. Two measurements on one gateway of its own (embedded
// defaults, two warm WASM PROCESS VMs):
//  1. end to end, the real `game` UA, NO_LOSS: drop the socket (no bye), wait for the VM Data saved
//     at the drop, then time the reconnecting `requestApplication` up to the first frame decoded
//     from the other VM, which restored the snapshot before it (p50/p95 over --runs);
//  2. the same with a real state of 1, 16 and 128 MiB (--sizes): the `memory` sample UA fills that
//     much of its memory (incompressible), the drop makes its VM save a FULL snapshot of it (timed
//     from the drop to the VMM's `storedAt` in SNAPSHOT_SAVED, by stage: capture, encode, upload,
//     store; a first store of its chunks, unless --resave), the reconnection is timed up to
//     the first frame from the other VM, which must be the picture of before the drop, and the
//     restored UA then checks every block of its memory (V: the square at (0, 0) turns green); the
//     memory of the gateway and of that agent is sampled during the reconnection (--probe-api: and
//     the API's answer time, `{ __typename }` one at a time, a second before the drop, beside the
//     save and beside the restore ahead);
//  3. the store at the same sizes: a VM's upload through the UVE-5 VM Data endpoint
//     (PUT of distinct random MiB, timed by the VM side: the bench holds the VM's secret), then the
//     retrieval by the real agent of the VM the session moves to (reconnecting request ->
//     SNAPSHOT_RESTORE_FAILED: the synthetic bytes are no state the runtime accepts, so the time is download + sha256 check +
//     the refusal), with the resident memory (VmRSS) of the gateway and of that agent sampled
//     every 10 ms, growth over the value just before.
// Exports run(args) for the bench runner; prints a table and writes JSON to bench/results/.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { StreamClient, createNodeDecoder, type FrameEvent } from '@uve/client';
import { summarizeProfiles } from './lib/profile';
import { gatewayAllocatorEnv } from './lib/services';
import { storeLayer } from './vm-data-layer';

const HELP = `bench/reconnect: reconnect-to-restored-frame time and VM Data store throughput

Usage: node bench/dist/reconnect.js [--runs N] [--state-runs N] [--sizes 1,16,128] [--store postgres|fs] [--stage S] [--hitch S] [--ahead on|off] [--away ready|S] [--resave] [--profile] [--probe-api] [--layer MiB [--layer-runs N] [--layer-idle S]]
  --runs N       end-to-end reconnections of the game UA (default 10)
  --state-runs N reconnections per size of the memory UA's real state (default 5; 2 at 128 MiB and above)
  --sizes MiB    state sizes: real snapshots restored, and VM Data store/retrieve throughput (default 1,16,128)
  --store KIND   the gateway's VM Data store (UVE_VM_DATA_STORE, default postgres)
  --stage S      NO_LOSS sessions stage their state every S s (UVE_VM_DATA_STAGE_S, default 2; the
                 gateway's own default is 10): each state run waits until the filled state is
                 staged before it drops, so the save at the drop sends what changed since (a
                 user who played S s or more). 0: no staging, the save at the drop sends all
  --hitch S      in each state run, before the drop, S s of play: an input every 20 ms that
                 changes the picture, each timed to the frame that answers it (the stagings in
                 that time pause the UA while they copy the state out; compare with --stage 0)
  --ahead on|off the gateway's restore ahead (UVE_RESTORE_AHEAD, default on): while the user is
                 away, the VM the reconnection will go to restores the state into a frozen UA;
                 the restore's own time and MB/s are then its start -> ready on that VM
  --away ready|S how long the user stays away after the save at the drop before reconnecting:
                 ready (default) until the restore prepared ahead is ready (with --ahead off: at
                 once), or S seconds (0: at once; a restore ahead still under way is waited for)
  --resave       keep the bench user's snapshots from one state run to the next: the memory UA
                 fills the same bytes each run, so a save after the first one is a re-store of the
                 chunks that changed (content addressing). By default they are deleted before each
                 run (deleteSnapshot), so that every save is a first store of its chunks
  --profile      the gateway runs with --cpu-prof; its hottest functions are printed
  --probe-api    in each state run, the API's answer time ({ __typename }, one at a time every
                 50 ms) a second before the drop, beside the save and beside the restore ahead
                 (the probe is load of its own: off by default)
  --layer MiB    only the stores themselves (no HTTP, no VMs), 3 repetitions of MiB, with the
                 PostgreSQL read the store used before as the baseline, and PostgreSQL storing
                 the same bytes again and with every tenth chunk changed (content addressing),
                 and on new PostgreSQL backends beside ones that wrote before, in turns
  --layer-runs N repetitions of --layer (default 3)
  --layer-idle S with --layer, also the first PostgreSQL store again after S s idle, as a
                 gateway's sporadic saves meet it (BENCH_GATEWAY_MAIN: another build's store)
Starts its own gateway on embedded defaults in a temporary folder; writes bench/results/reconnect.json.`;

const PASSWORD = 'bench-admin-password';
const MiB = 1024 * 1024;
const TERMINAL = { screenWidth: 640, screenHeight: 480, codecs: ['MJPEG'], localResources: [] };

interface Options { runs: number; stateRuns: number | null; sizes: number[]; store: 'postgres' | 'fs'; stageS: number; hitchS: number; ahead: boolean; away: 'ready' | number; resave: boolean; profile: boolean; probeApi: boolean; layer: number; layerRuns: number; layerIdle: number }

function parse(argv: string[]): Options | null {
  const o: Options = { runs: 10, stateRuns: null, sizes: [1, 16, 128], store: 'postgres', stageS: 2, hitchS: 0, ahead: true, away: 'ready', resave: false, profile: false, probeApi: false, layer: 0, layerRuns: 3, layerIdle: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') return null;
    if (a === '--profile' || a === '--resave' || a === '--probe-api') {
      o[a === '--profile' ? 'profile' : a === '--resave' ? 'resave' : 'probeApi'] = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new Error(`${a} needs a value; see --help`);
    if (a === '--runs') o.runs = Number(value);
    else if (a === '--state-runs' && Number(value) >= 1) o.stateRuns = Number(value);
    else if (a === '--sizes') o.sizes = value.split(',').map(Number);
    else if (a === '--store' && (value === 'postgres' || value === 'fs')) o.store = value;
    else if (a === '--stage' && Number.isInteger(Number(value)) && Number(value) >= 0) o.stageS = Number(value);
    else if (a === '--hitch' && Number(value) >= 0) o.hitchS = Number(value);
    else if (a === '--ahead' && (value === 'on' || value === 'off')) o.ahead = value === 'on';
    else if (a === '--away' && (value === 'ready' || Number(value) >= 0)) o.away = value === 'ready' ? 'ready' : Number(value);
    else if (a === '--layer' && Number(value) >= 1) o.layer = Number(value);
    else if (a === '--layer-runs' && Number.isInteger(Number(value)) && Number(value) >= 1) o.layerRuns = Number(value);
    else if (a === '--layer-idle' && Number(value) >= 0) o.layerIdle = Number(value);
    else throw new Error(`unknown argument ${a} ${value}; see --help`);
  }
  if (!(o.runs >= 1) || !o.sizes.every((s) => Number.isInteger(s) && s > 0 && s <= 1024)) throw new Error('--runs must be positive and --sizes whole MiB in [1, 1024]');
  return o;
}

const fail = (message: string): never => {
  throw new Error(message);
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? NaN;

/**
 * The platform on embedded defaults, in a folder of its own, with its pid for memory readings;
 * stop() gives the CPU profile summary when it ran with --profile.
 */
async function ownGateway(o: Options): Promise<{ url: string; pid: number; stop(): Promise<string | null> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-bench-reconnect-'));
  const prof = path.join(dir, 'prof');
  const child: ChildProcess = spawn(process.execPath, [...(o.profile ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []), path.resolve(__dirname, '../../apps/gateway/dist/main.js')], {
    env: { ...process.env, ...gatewayAllocatorEnv(), UVE_DATA_DIR: dir, UVE_VM_DATA_STORE: o.store, UVE_VM_DATA_STAGE_S: String(o.stageS), UVE_RESTORE_AHEAD: o.ahead ? '1' : '0', UVE_PORT: '0', UVE_ADMIN_PASSWORD: PASSWORD, UVE_WARM_VMS: '2', UVE_POOL_PLATFORMS: 'WASM', UVE_DOCKER: 'off', UVE_LOG_LEVEL: 'warn', UVE_VM_DATA_MAX_MB: '1024', UVE_REQUEST_RATE_PER_MIN: '10000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/\S+)\/graphql/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}:\n${out}`)));
  });
  return {
    url,
    pid: child.pid!,
    stop: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      const profile = o.profile ? summarizeProfiles(prof).text : null;
      fs.rmSync(dir, { recursive: true, force: true });
      return profile;
    },
  };
}

async function gql<T = any>(url: string, query: string, variables: Record<string, unknown>, token?: string): Promise<T> {
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: T; errors?: { message: string }[] };
  if (body.errors?.length || !body.data) throw new Error(`GraphQL: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/**
 * polls `f` every `everyMs` until it returns a value (bounded). Polls that run beside what is
 * measured (a save, a restore ahead) are kept sparse: each GraphQL query is the gateway's CPU, and
 * at 20 ms they took a share of the cores the measured restore ran on.
 */
async function until<T>(what: string, ms: number, f: () => Promise<T | null | undefined | false>, everyMs = 20): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
/** the poll interval beside a save or a restore under way */
const BESIDE_MS = 100;

/** /proc facts of a VM agent (PROCESS provider: a child of the gateway, its VM id in its environment, its secret in the file it names) */
function agentOf(vmId: string): { pid: number; secret: string } {
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const env = fs.readFileSync(`/proc/${e}/environ`, 'utf8').split('\0');
      if (env.includes(`UVE_VM_ID=${vmId}`)) return { pid: Number(e), secret: fs.readFileSync(env.find((x) => x.startsWith('UVE_VM_SECRET_FILE='))!.slice('UVE_VM_SECRET_FILE='.length), 'utf8').trim() };
    } catch { /* not ours */ }
  }
  throw new Error(`no agent process for VM ${vmId}`);
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

/** samples the resident memory of `pids` every 10 ms while `work` runs; growth over the start, MiB */
async function withMemory<T>(pids: number[], work: () => Promise<T>): Promise<{ result: T; growthMiB: number[] }> {
  const base = pids.map(rssMiB);
  const peak = [...base];
  const timer = setInterval(() => pids.forEach((p, i) => (peak[i] = Math.max(peak[i]!, rssMiB(p)))), 10);
  try {
    const result = await work();
    pids.forEach((p, i) => (peak[i] = Math.max(peak[i]!, rssMiB(p))));
    return { result, growthMiB: peak.map((p, i) => p - base[i]!) };
  } finally {
    clearInterval(timer);
  }
}

interface Ctx { url: string; admin: string; user: string; game: string; memory: string; resave: boolean; staged: boolean; hitchS: number; ahead: boolean; away: 'ready' | number; probeApi: boolean }

const REQUEST = `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id vm { id } connection { url token } } }`;
type Requested = { id: string; vm: { id: string }; connection: { url: string; token: string } };
const request = (c: Ctx, fresh: boolean, ua = c.game) => gql<{ requestApplication: Requested }>(c.url, REQUEST, { i: { uaId: ua, reconnectionMethod: 'NO_LOSS', fresh, terminal: TERMINAL } }, c.user).then((d) => d.requestApplication);
const eventOf = async (c: Ctx, sessionId: string, type: string, where: (data: Record<string, any>) => boolean = () => true) =>
  (await gql(c.url, `{ session(id: "${sessionId}") { state events(last: 30) { type data } } }`, {}, c.admin)).session.events.find((e: { type: string; data: Record<string, any> }) => e.type === type && where(e.data)) as { data: Record<string, any> } | undefined;

/** why the VMM sent a reconnection back to the old VM (its RECONNECTED event: `why`, `reason`) */
const stayedBecause = async (c: Ctx, sessionId: string): Promise<string> => {
  const d = (await eventOf(c, sessionId, 'RECONNECTED'))?.data;
  return d?.why ? `${d.why}: ${d.reason}` : 'the VMM gave no reason';
};

/** a VM's restores prepared ahead, asked of the VM itself (`/healthz`), not of the gateway */
async function heldAhead(c: Ctx, vmId: string): Promise<() => Promise<{ preparing: number; ready: number }>> {
  const { endpoint } = (await gql(c.url, `{ vm(id: "${vmId}") { endpoint } }`, {}, c.admin)).vm as { endpoint: string };
  const healthz = `${endpoint.replace(/^ws/, 'http')}/healthz`;
  return async () => ((await (await fetch(healthz)).json()) as { restoresAhead: { preparing: number; ready: number } }).restoresAhead;
}

/**
 * The user away after the save at the drop (--away): until the restore asked ahead (its
 * RESTORE_AHEAD event) is ready on its VM, or S seconds (a scenario's time, not a wait for an event).
 * `settled`: until that VM is done with it either way (a restore that fails, as synthetic bytes do).
 */
async function away(c: Ctx, sessionId: string, snapshotId: string, settled = false): Promise<string | null> {
  // the drop's report and the save reach the VMM on two paths, in either order: a request before the
  // session is DISCONNECTED finds nothing to continue and starts another session (restored from the
  // latest VM Data), which is not the reconnection measured here
  // (polled at 20 ms: with --away 0 the reconnection follows it at once)
  await until('the session DISCONNECTED', 20_000, async () => !!(await eventOf(c, sessionId, 'DISCONNECTED')));
  if (!c.ahead) return null;
  if (!settled && typeof c.away === 'number') {
    await new Promise((r) => setTimeout(r, (c.away as number) * 1000));
    return null;
  }
  const asked = await until('the restore asked ahead', 30_000, async () => (await eventOf(c, sessionId, 'RESTORE_AHEAD', (d) => d.snapshotId === snapshotId))?.data, BESIDE_MS);
  // settled: under way no more (ready, or failed and let go of)
  const held = await heldAhead(c, asked.vmId);
  await until('the restore prepared ahead', 180_000, async () => {
    const now = await held();
    return settled ? now.preparing === 0 : now.ready >= 1;
  }, BESIDE_MS);
  return asked.vmId as string;
}

/** a stream that resolves on its first decoded frame */
async function firstFrame(target: { url: string; token: string }): Promise<StreamClient> {
  const client = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
  const frame = new Promise<void>((resolve) => client.on('frame', (f) => f.decoded && resolve()));
  await client.connect({ ...target, decoder: (cfg) => createNodeDecoder({ codec: 'MJPEG', width: cfg.width, height: cfg.height }) });
  await frame;
  return client;
}

/** A game session dropped without a bye, its VM Data saved: ready to reconnect. */
async function dropped(c: Ctx): Promise<{ s: Requested; saved: Record<string, any> }> {
  const s = await request(c, true);
  const client = await firstFrame(s.connection);
  client.close(); // no bye: an unexpected disconnect
  const saved = await until('the VM Data saved at the drop', 20_000, async () => (await eventOf(c, s.id, 'SNAPSHOT_SAVED'))?.data);
  return { s, saved };
}

async function endToEnd(c: Ctx, runs: number): Promise<{ ms: number[]; sizeBytes: number }> {
  const ms: number[] = [];
  let sizeBytes = 0;
  for (let i = 0; i < runs; i++) {
    const { s, saved } = await dropped(c);
    sizeBytes = saved.sizeBytes;
    await away(c, s.id, saved.snapshotId);
    const t0 = performance.now();
    const again = await request(c, false);
    if (again.id !== s.id) throw new Error('the reconnection did not continue the session');
    if (again.vm.id === s.vm.id) throw new Error(`the reconnection did not move the session to another VM (${await stayedBecause(c, s.id)})`);
    const client = await firstFrame(again.connection);
    ms.push(performance.now() - t0);
    await client.bye();
    await gql(c.url, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, c.user);
  }
  return { ms, sizeBytes };
}

/** A stream whose decoded pictures can be waited for (bounded): the newest one is looked at. */
async function watch(target: { url: string; token: string }) {
  const client = new StreamClient({ browserResources: false, pingIntervalMs: 0, timings: true });
  let last: FrameEvent | null = null;
  let wake: (() => void) | null = null;
  client.on('frame', (f) => {
    if (!f.decoded) return;
    last = f;
    wake?.();
  });
  await client.connect({ ...target, decoder: (cfg) => createNodeDecoder({ codec: 'MJPEG', width: cfg.width, height: cfg.height }) });
  return {
    client,
    /** the newest picture once it satisfies `ok` (given the input it answers) */
    async picture(what: string, ms: number, ok: (p: DecodedPicture, inputSeq: number) => boolean): Promise<DecodedPicture> {
      const end = Date.now() + ms;
      for (;;) {
        const f = last as FrameEvent | null;
        if (f && ok(f.decoded!, f.header.inputSeq)) return f.decoded!;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    },
    newest: (): DecodedPicture => (last as FrameEvent | null)!.decoded!,
    /** the newest decoded frame's header (what the VM stamped on it) */
    newestHeader: () => (last as FrameEvent | null)?.header ?? null,
    key: (code: string, key: string): number => client.sendInput({ kind: 'key', type: 'down', code, key }),
  };
}

/**
 * `seconds` of play on the memory UA: an input every 20 ms that changes its picture (a digit, then
 * Backspace: its SIZE line), each timed from its send to the first frame that answers it (ms). What
 * the session's stagings cost a player shows here: each pauses the UA while it copies the state out.
 */
async function playing(w: Awaited<ReturnType<typeof watch>>, seconds: number): Promise<number[]> {
  const sent = new Map<number, number>();
  const ms: number[] = [];
  const off = w.client.on('frame', (f) => {
    const now = performance.now();
    for (const [seq, at] of sent) {
      if (seq > f.header.inputSeq) continue;
      ms.push(now - at);
      sent.delete(seq);
    }
  });
  try {
    const end = performance.now() + seconds * 1000;
    for (let digit = true; performance.now() < end; digit = !digit) {
      sent.set(digit ? w.key('Digit1', '1') : w.key('Backspace', 'Backspace'), performance.now());
      await new Promise((r) => setTimeout(r, 20)); // the player's pace, not a wait for anything
    }
    // two inputs applied in one render cancel out (no frame for them): a last one that shows
    // whatever the picture was (SIZE 0 or 1 becomes 5 or 15) answers every input still waiting
    sent.set(w.key('Digit5', '5'), performance.now());
    await until('the last inputs answered', 10_000, async () => sent.size === 0);
  } finally {
    off();
  }
  return ms;
}

type DecodedPicture = NonNullable<FrameEvent['decoded']>;
/** the memory UA's state square at (0, 0): grey before any check, blue while busy, green when intact */
const square = (p: DecodedPicture) => ({ r: p.data[32 * p.width + 32]!, g: p.data[32 * p.width + 33]!, b: p.data[32 * p.width + 34]! });
const near = (a: number, b: number) => Math.abs(a - b) <= 24;
const isGrey = (p: DecodedPicture) => [square(p).r, square(p).g, square(p).b].every((v) => near(v, 128));
const isGreen = (p: DecodedPicture) => near(square(p).r, 0) && near(square(p).g, 200) && near(square(p).b, 0);
/** the largest difference of one colour channel between two pictures of the same size */
function maxDiff(a: DecodedPicture, b: DecodedPicture): number {
  if (a.width !== b.width || a.height !== b.height) return 255;
  let d = 0;
  for (let i = 0; i < a.data.length; i++) if ((i & 3) !== 3) d = Math.max(d, Math.abs(a.data[i]! - b.data[i]!));
  return d;
}

/** the box (x0,y0)-(x1,y1) where two pictures of one size differ by more than `tolerance` */
function diffBox(a: DecodedPicture, b: DecodedPicture, tolerance = 24): string {
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
  for (let y = 0; y < a.height; y++) {
    for (let x = 0; x < a.width; x++) {
      const i = (y * a.width + x) * 4;
      if (Math.max(Math.abs(a.data[i]! - b.data[i]!), Math.abs(a.data[i + 1]! - b.data[i + 1]!), Math.abs(a.data[i + 2]! - b.data[i + 2]!)) <= tolerance) continue;
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    }
  }
  return x1 < 0 ? 'nowhere' : `(${x0},${y0})-(${x1},${y1})`;
}

const ppm = (p: DecodedPicture): Buffer => {
  const rgb = Buffer.alloc(p.width * p.height * 3);
  for (let i = 0, j = 0; i < p.data.length; i += 4, j += 3) rgb.set(p.data.subarray(i, i + 3), j);
  return Buffer.concat([Buffer.from(`P6\n${p.width} ${p.height}\n255\n`), rgb]);
};

/**
 * What a restored first frame that is not the picture of before the drop looked like, for the
 * error: where they differ, the frames' headers, the session's events; both pictures are written
 * as PPM files (BENCH_DATA_DIR, else the temporary folder) to be looked at.
 */
async function mismatch(c: Ctx, sessionId: string, mib: number, last: DecodedPicture, lastHeader: FrameEvent['header'] | null, first: DecodedPicture, firstHeader: FrameEvent['header'] | null): Promise<string> {
  const dir = process.env.BENCH_DATA_DIR ?? os.tmpdir();
  fs.mkdirSync(dir, { recursive: true });
  const base = path.join(dir, `reconnect-mismatch-${mib}mib-${sessionId}`);
  fs.writeFileSync(`${base}-before.ppm`, ppm(last));
  fs.writeFileSync(`${base}-restored.ppm`, ppm(first));
  const events = (await gql(c.url, `{ session(id: "${sessionId}") { events(last: 30) { type at data } } }`, {}, c.admin).catch(() => null))?.session?.events ?? [];
  return [
    `differs in ${diffBox(first, last)}`,
    `last frame before the drop ${JSON.stringify(lastHeader)}`,
    `first restored frame ${JSON.stringify(firstHeader)}`,
    `pictures ${base}-{before,restored}.ppm`,
    `events ${JSON.stringify(events)}`,
  ].join('; ');
}


interface StateRow { mib: number; snapshotBytes: number; runs: number; ms: number[]; aheadMs: number[]; aheadAgentGrowthMiB: number; saveMs: number[]; gatewayGrowthMiB: number; agentGrowthMiB: number; notMeasured: string[]; stages: Record<string, number>[]; saveStages: Record<string, number>[]; chunksWritten: string[]; inputMs: number[]; apiQuietMs: number[]; apiBesideAheadMs: number[]; apiOtherwiseMs: number[] }

/** the reconnection's stages on one clock (this host's wall clock: the VMM, the VM and the bench share it), in order */
const STAGES: Array<[string, string]> = [
  ['placed', 'requestApplication answered (placement)'],
  ['committedAt', 'VMM: assignment committed'],
  ['sentAt', 'VMM: session.prepare sent'],
  ['preparedAt', 'VM: session.prepare arrived'],
  ['vmDataRequestedAt', 'VM: download started'],
  ['vmDataFirstByteAt', 'VM: first bytes'],
  ['uaInstantiatedAt', 'VM: UA started (before the restore)'],
  ['vmDataFetchedAt', 'VM: download complete, sha256 checked'],
  ['vmDataRestoredAt', 'VM: state in the UA'],
  ['encoderReadyAt', 'VM: encoder ready'],
  ['capturedAt', 'VM: first picture captured'],
  ['encodedAt', 'VM: first picture encoded'],
  ['helloAt', 'VM: hello arrived'],
  ['welcomeAt', 'VM: welcome sent'],
  ['frame', 'first restored frame decoded'],
];

/** the save's stages (SNAPSHOT_SAVED's `timing`), ms after the bench dropped the socket */
const SAVE_STAGES: Array<[string, string]> = [
  ['startedAt', 'VM: save began (the drop seen)'],
  ['capturedAt', "VM: the UA's state copied out"],
  ['encodedAt', 'VM: encoded, upload began'],
  ['receivedAt', "VMM: the upload's request in"],
  ['storedAt', 'VMM: stored (committed)'],
  ['seen', 'bench: SNAPSHOT_SAVED seen (polled)'],
  ['restoreAheadStartedAt', 'VM ahead: restore began (user away)'],
  ['restoreAheadFirstByteAt', "VM ahead: the download's first bytes in"],
  ['restoreAheadUaStartedAt', 'VM ahead: its UA started (frozen)'],
  ['restoreAheadFetchedAt', 'VM ahead: download complete'],
  ['restoreAheadReadyAt', 'VM ahead: restore ready (user away)'],
];

function printStages(title: string, runs: Record<string, number>[], stages: Array<[string, string]>): void {
  process.stdout.write(`\n${title} (p50, range over ${runs.length} runs):\n`);
  for (const [k, what] of stages) {
    const xs = runs.map((st) => st[k]).filter((v): v is number => typeof v === 'number');
    if (xs.length) process.stdout.write(`  ${what.padEnd(44)} ${pct(xs, 50).toFixed(0).padStart(6)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})\n`);
  }
}
const wallNow = () => performance.timeOrigin + performance.now();

/** a run that measured nothing, and why (printed and counted, never timed) */
class NotMeasured extends Error {}

/**
 * Real states restored: the memory UA grown to `mib` MiB, dropped (its VM saves the FULL snapshot),
 * reconnected on the other VM; the first frame must be the last picture of before the drop, and
 * the restored memory must check out block by block.
 */
async function restoredState(c: Ctx, gatewayPid: number, mib: number, runs: number): Promise<StateRow> {
  const row: StateRow = { mib, snapshotBytes: 0, runs, ms: [], aheadMs: [], aheadAgentGrowthMiB: 0, saveMs: [], gatewayGrowthMiB: 0, agentGrowthMiB: 0, notMeasured: [], stages: [], saveStages: [], chunksWritten: [], inputMs: [], apiQuietMs: [], apiBesideAheadMs: [], apiOtherwiseMs: [] };
  // a run that could not measure (no VM Data saved in time, no other VM to move to) is told apart and
  // made up for, at most `runs` times
  for (let i = 0; row.ms.length < runs && i < 2 * runs; i++) {
    try {
      await restoreOnce(c, gatewayPid, mib, row);
    } catch (e) {
      if (!(e instanceof NotMeasured)) throw e;
      row.notMeasured.push(e.message);
      process.stderr.write(`bench/reconnect: ${mib} MiB, a run not measured: ${e.message}\n`);
    }
  }
  return row;
}

/**
 * Ends a state run's session and waits (bounded) for the VM Data its VM saves at the end: the next
 * run deletes the user's snapshots first, which a save landing after that would outlive.
 */
async function endSettled(c: Ctx, sessionId: string): Promise<void> {
  const saves = async () => ((await gql(c.url, `{ session(id: "${sessionId}") { events(last: 50) { type } } }`, {}, c.admin)).session.events as { type: string }[]).filter((e) => e.type === 'SNAPSHOT_SAVED').length;
  const before = await saves();
  await gql(c.url, `mutation { endSession(sessionId: "${sessionId}") { state } }`, {}, c.user);
  await until('the VM Data saved at the end', 30_000, async () => (await saves()) > before).catch(() => undefined);
}

/** one answer of the API probe: sent at (wall clock), answered after ms */
interface Probed { at: number; ms: number }
/** the probe's pause between answers (one request at a time: a slow answer is not piled onto) */
const PROBE_MS = 50;
/** how long the API is probed before the drop, the session idle */
const API_QUIET_MS = 1000;

/** The API's answer time while a run goes on: `{ __typename }` through the whole GraphQL path, until stop(). */
function probeApi(c: Ctx): { stop(): Promise<Probed[]> } {
  const got: Probed[] = [];
  let on = true;
  const loop = (async () => {
    while (on) {
      const at = wallNow();
      const answered = await gql(c.url, '{ __typename }', {}, c.user).then(() => true, () => false);
      if (answered) got.push({ at, ms: wallNow() - at });
      await new Promise((r) => setTimeout(r, PROBE_MS));
    }
  })();
  return {
    stop: async () => {
      on = false;
      await loop;
      return got;
    },
  };
}

async function restoreOnce(c: Ctx, gatewayPid: number, mib: number, row: StateRow): Promise<void> {
  {
    // no chunk of this run's state in the store beforehand: the save at the drop is a first store
    if (!c.resave) {
      for (const { id } of (await gql(c.url, `{ mySnapshots { id } }`, {}, c.user)).mySnapshots as { id: string }[]) {
        // one the store's retention replaced meanwhile (the last run's end save landing) is gone already
        await gql(c.url, `mutation($id: ID!) { deleteSnapshot(id: $id) }`, { id }, c.user).catch((e: Error) => {
          if (!/NOT_FOUND/.test(e.message)) throw e;
        });
      }
    }
    const s = await request(c, true, c.memory);
    const before = await watch(s.connection);
    for (const d of String(mib)) before.key(`Digit${d}`, d);
    const enter = before.key('Enter', 'Enter');
    // grey again after the Enter: filled, idle (no more pictures until an input)
    await before.picture(`${mib} MiB filled`, 120_000, (p, seq) => seq >= enter && isGrey(p));
    // staged ahead (a user who played a while): the save at the drop then sends what changed since
    if (c.staged) {
      const filledAt = Date.now();
      await until(`the ${mib} MiB state staged`, 120_000, async () => {
        const at = (await gql(c.url, `{ session(id: "${s.id}") { vmDataStaged { stagedAt } } }`, {}, c.user)).session.vmDataStaged?.stagedAt;
        return at && Date.parse(at) > filledAt;
      });
    }
    if (c.hitchS > 0) row.inputMs.push(...(await playing(before, c.hitchS)));
    const last = before.newest(); // what the user saw last
    const lastHeader = before.newestHeader();
    // the resident memory of every WASM agent before the drop: the one that restores ahead grows while the user is away
    const rssBefore = new Map<string, number>();
    for (const { id } of (await gql(c.url, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, c.admin)).vms as { id: string }[]) rssBefore.set(id, rssMiB(agentOf(id).pid));
    // the API's answer time: a second before the drop (the session idle), then while the save and
    // the restore ahead go on (told apart once the restore's stamps are in)
    if (c.probeApi) {
      const quiet = probeApi(c);
      await new Promise((r) => setTimeout(r, API_QUIET_MS));
      row.apiQuietMs.push(...(await quiet.stop()).map((a) => a.ms));
    }
    const probe = c.probeApi ? probeApi(c) : { stop: async (): Promise<Probed[]> => [] };
    const dropAt = wallNow();
    before.client.close(); // no bye: an unexpected disconnect
    let saved: Record<string, any>;
    let aheadVm: string | null;
    let saveStages: Record<string, number>;
    let answers: Probed[];
    try {
      saved = await until('the VM Data saved at the drop', 180_000, async () => (await eventOf(c, s.id, 'SNAPSHOT_SAVED'))?.data, BESIDE_MS).catch(async (e: Error) => {
        await endSettled(c, s.id).catch(() => undefined);
        throw new NotMeasured(`${e.message} (session ${s.id})`);
      });
      const seen = wallNow() - dropAt;
      // drop -> stored by the VMM's own stamp (one clock on this host); the poll above is 100 ms coarse
      saveStages = { seen };
      for (const [k, v] of Object.entries(saved.timing ?? {})) if (typeof v === 'number') saveStages[k] = v - dropAt;
      row.saveMs.push(saveStages.storedAt ?? seen);
      row.saveStages.push(saveStages);
      // a save of bytes the store holds already writes only the chunks that changed (content addressing)
      if (typeof saved.chunks === 'number') row.chunksWritten.push(`${saved.chunksSent ?? saved.chunks}/${saved.chunksWritten}/${saved.chunks}`);
      row.snapshotBytes = saved.sizeBytes;
      aheadVm = await away(c, s.id, saved.snapshotId);
    } finally {
      answers = await probe.stop();
    }
    if (aheadVm && rssBefore.has(aheadVm)) row.aheadAgentGrowthMiB = Math.max(row.aheadAgentGrowthMiB, rssMiB(agentOf(aheadVm).pid) - rssBefore.get(aheadVm)!);
    // every other idle VM's agent is sampled: the pool picks one of them, known only once placed
    const idle: { id: string }[] = await until('the other VM', 10_000, async () => {
      const others = (await gql(c.url, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, c.admin)).vms.filter((v: { id: string }) => v.id !== s.vm.id);
      return others.length ? others : null;
    });
    const got = await withMemory([gatewayPid, ...idle.map((v) => agentOf(v.id).pid)], async () => {
      const t0 = performance.now();
      const wall0 = wallNow();
      const again = await request(c, false, c.memory);
      const placed = wallNow() - wall0;
      if (again.id !== s.id) throw new Error('the reconnection did not continue the session');
      if (again.vm.id === s.vm.id) {
        const why = await stayedBecause(c, s.id);
        await endSettled(c, s.id);
        throw new NotMeasured(`the reconnection went back to the old VM (${why}; VMs ${idle.map((v) => v.id).join(', ')} were listed IDLE just before), session ${s.id}`);
      }
      const after = await watch(again.connection);
      const first = await after.picture('the first restored frame', 120_000, () => true);
      const ms = performance.now() - t0;
      const stages: Record<string, number> = { placed, frame: ms };
      const start: Record<string, unknown> = { ...after.client.welcome?.start };
      // a restore done ahead belongs to the time the user was away: the save's stages, from the drop
      for (const k of ['restoreAheadStartedAt', 'restoreAheadFirstByteAt', 'restoreAheadUaStartedAt', 'restoreAheadFetchedAt', 'restoreAheadReadyAt']) {
        if (typeof start[k] === 'number') saveStages[k] = (start[k] as number) - dropAt;
        delete start[k];
      }
      for (const [k, v] of Object.entries(start)) if (typeof v === 'number') stages[k] = v - wall0;
      return { ms, after, first, stages, vmId: again.vm.id as string };
    });
    const { after, first } = got.result;
    try {
      // first whether the VM restored the snapshot at all (its report reaches the VMM after the
      // frame: bounded wait): a failed restore starts the UA fresh, whose picture is no evidence
      // about NO_LOSS (this bench once called such a run a picture mismatch)
      const outcome = await until('the restore reported', 15_000, async () =>
        (await eventOf(c, s.id, 'SNAPSHOT_RESTORED')) ? 'restored' : (await eventOf(c, s.id, 'SNAPSHOT_RESTORE_FAILED'))?.data);
      if (outcome !== 'restored') throw new Error(`the reconnection did not restore the snapshot: ${JSON.stringify(outcome)}`);
      const diff = maxDiff(first, last);
      if (diff > 24) throw new Error(`the first frame after the restore is not the picture of before the drop (a channel differs by ${diff}): ${await mismatch(c, s.id, mib, last, lastHeader, first, after.newestHeader())}`);
      after.key('KeyV', 'v');
      await after.picture(`the restored ${mib} MiB checked intact`, 60_000, isGreen);
    } finally {
      await after.client.bye().catch(() => undefined);
      after.client.close();
    }
    row.ms.push(got.result.ms);
    row.stages.push(got.result.stages);
    if (saveStages.restoreAheadReadyAt !== undefined) row.aheadMs.push(saveStages.restoreAheadReadyAt - saveStages.restoreAheadStartedAt!);
    // answers that overlapped the restore ahead (its stamps are from the drop), and the others of this run
    const [from, to] = [dropAt + (saveStages.restoreAheadStartedAt ?? Infinity), dropAt + (saveStages.restoreAheadReadyAt ?? -Infinity)];
    for (const a of answers) (a.at <= to && a.at + a.ms >= from ? row.apiBesideAheadMs : row.apiOtherwiseMs).push(a.ms);
    row.gatewayGrowthMiB = Math.max(row.gatewayGrowthMiB, got.growthMiB[0]!);
    // the agent the session went to (another, not listed idle before, is not sampled)
    const restoredOn = idle.findIndex((v) => v.id === got.result.vmId);
    if (restoredOn >= 0) row.agentGrowthMiB = Math.max(row.agentGrowthMiB, got.growthMiB[1 + restoredOn]!);
    await endSettled(c, s.id);
  }
}

interface StoreRow { mib: number; storeMBps: number; retrieveMBps: number; gatewayStoreGrowthMiB: number; gatewayRetrieveGrowthMiB: number; agentRetrieveGrowthMiB: number }

async function store(c: Ctx, gatewayPid: number, mib: number): Promise<StoreRow> {
  const { s } = await dropped(c);
  const vm = agentOf(s.vm.id);
  // the VM that holds the dropped session stores mib MiB of VM Data (newest replaces the game's own)
  const bytes = mib * MiB;
  // distinct pieces, made before the clock starts: the store keeps equal chunks once
  const pieces = Array.from({ length: Math.ceil(mib) }, () => randomBytes(MiB));
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(ctl) {
      if (sent >= pieces.length) return ctl.close();
      ctl.enqueue(pieces[sent++]!);
    },
  });
  const put = await withMemory([gatewayPid], async () => {
    const t0 = performance.now();
    const res = await fetch(`${c.url}/vmm/vm-data/sessions/${s.id}?kind=FULL`, { method: 'PUT', headers: { 'x-uve-vm-id': s.vm.id, authorization: `Bearer ${vm.secret}` }, body, duplex: 'half' } as RequestInit);
    if (res.status !== 201) throw new Error(`upload refused: ${res.status} ${await res.text()}`);
    return { ms: performance.now() - t0, snapshotId: ((await res.json()) as { snapshotId: string }).snapshotId };
  });
  // the reconnection sends the session to the other VM, whose agent fetches and checks the bytes
  // (a restore ahead of these bytes, which are no state, has failed on it first: not on this clock)
  // (its VM is the one the reconnection prefers)
  const aheadVm = await away(c, s.id, put.result.snapshotId, true);
  const idle = aheadVm ? { id: aheadVm } : await until('the other VM', 10_000, async () =>
    (await gql(c.url, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, c.admin)).vms.find((v: { id: string }) => v.id !== s.vm.id));
  const target = agentOf(idle.id);
  const get = await withMemory([gatewayPid, target.pid], async () => {
    const t0 = performance.now();
    const again = await request(c, false);
    if (again.vm.id !== idle.id) throw new Error(`the session went to VM ${again.vm.id}, not the idle ${idle.id}${again.vm.id === s.vm.id ? ` (${await stayedBecause(c, s.id)})` : ''}`);
    const failed = await until('the retrieval', 120_000, async () => eventOf(c, s.id, 'SNAPSHOT_RESTORE_FAILED'));
    if (!/FULL|snapshot|magic|state/i.test(String(failed.data.reason))) throw new Error(`unexpected retrieval outcome: ${failed.data.reason}`);
    return performance.now() - t0;
  });
  await gql(c.url, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, c.user);
  return {
    mib,
    storeMBps: bytes / 1e6 / (put.result.ms / 1000),
    retrieveMBps: bytes / 1e6 / (get.result / 1000),
    gatewayStoreGrowthMiB: put.growthMiB[0]!,
    gatewayRetrieveGrowthMiB: get.growthMiB[0]!,
    agentRetrieveGrowthMiB: get.growthMiB[1]!,
  };
}

export async function run(args: string[]): Promise<void> {
  const o = parse(args);
  if (!o) {
    process.stdout.write(HELP + '\n');
    return;
  }
  if (o.layer) return layer(o.layer, o.layerRuns, o.layerIdle);
  const gw = await ownGateway(o);
  try {
    const admin = (await gql(gw.url, `mutation { login(username: "admin", password: "${PASSWORD}") { token } }`, {})).login.token as string;
    const name = `bench-${Date.now()}`;
    const user = (await gql(gw.url, `mutation($i: RegisterInput!) { register(input: $i) { token } }`, { i: { username: name, password: PASSWORD } })).register.token as string;
    await until('2 idle WASM VMs', 60_000, async () => (await gql(gw.url, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, admin)).vms.length >= 2);
    const uas = (await gql(gw.url, `{ uas { id name } }`, {}, user)).uas as { id: string; name: string }[];
    const uaNamed = (name: string) => uas.find((u) => u.name === name)?.id ?? fail(`no sample UA ${name} (npm run build)`);
    const c: Ctx = { url: gw.url, admin, user, game: uaNamed('game'), memory: uaNamed('memory'), resave: o.resave, staged: o.stageS > 0 && o.store === 'postgres', hitchS: o.hitchS, ahead: o.ahead, away: o.away, probeApi: o.probeApi };

    const e2e = await endToEnd(c, o.runs);
    const states: StateRow[] = [];
    for (const mib of o.sizes) states.push(await restoredState(c, gw.pid, mib, o.stateRuns ?? (mib >= 128 ? 2 : 5)));
    const rows: StoreRow[] = [];
    for (const mib of o.sizes) rows.push(await store(c, gw.pid, mib));

    const f = (n: number, d = 1) => n.toFixed(d).padStart(8);
    process.stdout.write(`bench/reconnect: loopback, ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}, ${o.store === 'fs' ? 'filesystem' : 'PostgreSQL (embedded)'} VM Data store, ${c.staged ? `state staged every ${o.stageS} s` : 'no staging'}, ${o.ahead ? `restore ahead, the user away ${o.away === 'ready' ? 'until it is ready' : `${o.away} s`}` : 'no restore ahead'}, WASM PROCESS VMs, GLIBC_TUNABLES ${gatewayAllocatorEnv().GLIBC_TUNABLES ?? '(none)'}\n\n`);
    process.stdout.write(`reconnecting requestApplication -> first restored frame decoded (game, NO_LOSS, FULL snapshot of ${(e2e.sizeBytes / 1024).toFixed(0)} KiB, ${o.runs} runs):\n`);
    process.stdout.write(`  p50 ${pct(e2e.ms, 50).toFixed(1)} ms, p95 ${pct(e2e.ms, 95).toFixed(1)} ms\n\n`);
    process.stdout.write(`reconnecting requestApplication -> first restored frame decoded (memory UA, NO_LOSS, a real state of N MiB; save: drop -> stored, the VMM's stamp in SNAPSHOT_SAVED, ${c.staged ? 'staged before the drop, ' : ''}${o.resave ? 'a re-store after the first run (--resave)' : "a first store: the user's snapshots deleted before each run"}):\n`);
    // the restore's own rate: end to end when it is on the reconnection's path, else its start ->
    // ready on the VM that did it ahead (the runs where it was taken)
    process.stdout.write(`restore MB/s: ${o.ahead ? 'restore ahead, start -> ready on its VM, p50 over the runs that took it (taken / runs)' : 'reconnect -> frame'}\n`);
    process.stdout.write(`agent +MiB: the agent the session went to, during the reconnection${o.ahead ? '; agent ahead +MiB: that agent from before the drop to its restore ready (the user away)' : ''}\n`);
    process.stdout.write(`|  MiB | snapshot MiB | runs | reconnect -> frame p50 ms | p95 ms | restore MB/s (p50) | save MB/s (p50) | gateway +MiB | agent +MiB |${o.ahead ? ' agent ahead +MiB |' : ''}\n|---|---|---|---|---|---|---|---|---|${o.ahead ? '---|' : ''}\n`);
    for (const r of states) {
      const p50 = pct(r.ms, 50);
      const restore = r.aheadMs.length ? `${(r.snapshotBytes / 1e6 / (pct(r.aheadMs, 50) / 1000)).toFixed(1)} (${r.aheadMs.length}/${r.ms.length})` : (r.snapshotBytes / 1e6 / (p50 / 1000)).toFixed(1);
      process.stdout.write(`| ${r.mib} | ${(r.snapshotBytes / MiB).toFixed(1)} | ${r.runs} | ${p50.toFixed(0)} (${Math.min(...r.ms).toFixed(0)}–${Math.max(...r.ms).toFixed(0)}) | ${pct(r.ms, 95).toFixed(0)} | ${restore} | ${(r.snapshotBytes / 1e6 / (pct(r.saveMs, 50) / 1000)).toFixed(1)} | ${r.gatewayGrowthMiB.toFixed(1)} | ${r.agentGrowthMiB.toFixed(1)} |${o.ahead ? ` ${r.aheadAgentGrowthMiB.toFixed(1)} |` : ''}${r.notMeasured.length ? ` ${r.notMeasured.length} run(s) not measured` : ''}\n`);
    }
    if (o.hitchS > 0) {
      process.stdout.write(`\ninput -> frame while playing, ${o.hitchS} s per run before the drop (an input every 20 ms; ${c.staged ? `a staging every ${o.stageS} s` : 'no staging'}):\n`);
      process.stdout.write('|  MiB | inputs | p50 ms | p99 ms | max ms | over 50 ms |\n|---|---|---|---|---|---|\n');
      for (const r of states) process.stdout.write(`| ${r.mib} | ${r.inputMs.length} | ${pct(r.inputMs, 50).toFixed(1)} | ${pct(r.inputMs, 99).toFixed(1)} | ${Math.max(...r.inputMs).toFixed(1)} | ${r.inputMs.filter((x) => x > 50).length} |\n`);
    }
    if (o.probeApi) {
      process.stdout.write(`\nthe API's answer time (\`{ __typename }\` over HTTP, one at a time every ${PROBE_MS} ms), ms: a second before each drop, beside the save and the wait after the drop, beside the restore ahead\n`);
      process.stdout.write('|  MiB | before the drop p50 / p99 / max (n) | beside the save p50 / p99 / max (n) | beside the restore ahead p50 / p99 / max (n) |\n|---|---|---|---|\n');
      const cell = (xs: number[]) => (xs.length ? `${pct(xs, 50).toFixed(1)} / ${pct(xs, 99).toFixed(1)} / ${Math.max(...xs).toFixed(1)} (${xs.length})` : '-');
      for (const r of states) process.stdout.write(`| ${r.mib} | ${cell(r.apiQuietMs)} | ${cell(r.apiOtherwiseMs)} | ${cell(r.apiBesideAheadMs)} |\n`);
    }
    for (const r of states) {
      printStages(`${r.mib} MiB: the save at the drop by stage, ms after the bench dropped the socket`, r.saveStages, SAVE_STAGES);
      if (r.chunksWritten.length) process.stdout.write(`  chunks of the snapshot sent at the drop / written by the store / in all, by run: ${r.chunksWritten.join(', ')}\n`);
      printStages(`${r.mib} MiB: the reconnection by stage, ms after the reconnecting requestApplication was sent`, r.stages, STAGES);
    }
    process.stdout.write('\nVM Data store alone (synthetic bytes PUT by the VM side; retrieve: reconnect -> SNAPSHOT_RESTORE_FAILED):\n');
    process.stdout.write('|  MiB | store MB/s | retrieve MB/s | gateway +MiB (store) | gateway +MiB (retrieve) | agent +MiB (retrieve) |\n|------|-----------|---------------|----------------------|-------------------------|-----------------------|\n');
    for (const r of rows) process.stdout.write(`| ${String(r.mib).padStart(4)} | ${f(r.storeMBps)}  | ${f(r.retrieveMBps)}      | ${f(r.gatewayStoreGrowthMiB)}             | ${f(r.gatewayRetrieveGrowthMiB)}                | ${f(r.agentRetrieveGrowthMiB)}              |\n`);
    const out = path.resolve(__dirname, '../results/reconnect.json');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), cores: os.cpus().length, loadAverage: os.loadavg(), vmDataStore: o.store, endToEnd: { runs: o.runs, snapshotBytes: e2e.sizeBytes, ms: e2e.ms, p50: pct(e2e.ms, 50), p95: pct(e2e.ms, 95) }, states: states.map((r) => ({ ...r, p50: pct(r.ms, 50), p95: pct(r.ms, 95) })), store: rows }, null, 2) + '\n');
    process.stdout.write(`\nwrote ${path.relative(process.cwd(), out)}\n`);
  } finally {
    const profile = await gw.stop();
    if (profile) process.stdout.write(`\n${profile}\n`);
  }
}

async function layer(mib: number, reps: number, idleS: number): Promise<void> {
  const rows = await storeLayer(mib, reps, idleS);
  const med = (xs: number[]) => pct(xs, 50);
  const f = (xs: number[]) => (xs.length ? `${med(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})` : '');
  process.stdout.write(`bench/reconnect --layer ${mib}: the VM Data stores alone, ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}, ${reps} repetitions\n\n`);
  process.stdout.write(`| store | write MB/s | read MB/s | chunks written of ${mib} |\n|---|---|---|---|\n`);
  for (const r of rows) process.stdout.write(`| ${r.store} | ${f(r.writeMBps)} | ${f(r.readMBps)} | ${r.chunksWritten ? f(r.chunksWritten) : ''} |\n`);
  const out = path.resolve(__dirname, '../results/reconnect-layer.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), cores: os.cpus().length, loadAverage: os.loadavg(), mib, rows }, null, 2) + '\n');
  process.stdout.write(`\nwrote ${path.relative(process.cwd(), out)}\n`);
}

if (require.main === module) {
  run(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`bench/reconnect: ${e.message}\n`);
    process.exit(1);
  });
}
