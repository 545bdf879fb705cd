// bench/session: requestApplication -> first decoded frame, by stage, on a warm PROCESS VM, a warm
// DOCKER VM, a warm LINUX_X11 VM (its display and encoder kept started), and a PROCESS or DOCKER VM
// started from zero for the request; the first picture decoded by the SDK in Node (an ffmpeg) and,
// with --clients node,browser, in turns with it, by the reference web client in headless Chromium
// (WebCodecs) and drawn. One clock (this host's) for the client stages; the gateway's recorded
// session events (REQUESTED, ASSIGNED, CONNECTED) for the server side. Beside each case, in turns
// with its samples, a baseline of the raw parts without the platform (lib/session-baselines.ts):
// the ratio to it is the headline.
import path from 'node:path';
import fs from 'node:fs';
import { Client } from 'pg';
import { StreamClient, nodeDecoderFactory, type FrameEvent } from '@uve/client';
import type { SessionStartTiming, VideoCodec } from '@uve/protocol';
import { bundleBenchPage, launchChromium, openBenchPage, type Browser, type Page } from './lib/browser';
import { startUaDisplay, type UaDisplay } from './lib/ua-display';
import { fmt, header, now, parseArgs, percentile, spread, table, type BenchOutput, type Spread } from './lib/report';
import { containerFloor, processFloor, x11grabBrowserBaseline, x11grabNodeBaseline, type BaselineRunner } from './lib/session-baselines';
import { dataDir, gql, login, startGateway, startPostgres, until, type Gateway } from './lib/services';

const HELP = `bench/session: requestApplication -> first decoded frame (paint UA, or xcalc on LINUX_X11, 1280x720), by stage

Usage: npm run bench -- session [--warm 10] [--cold 3] [--codec H264] [--cases process,docker,x11,process-cold,docker-cold] [--gap 1500]
                                [--clients node,browser] [--baselines x11grab,floor] [--display 443] [--quick]

--gap: ms between a warm sample's end and the next request (a user arriving later finds the VM
settled: its spare encoder and guest thread start ~1 s after a session's first picture).
--clients: who decodes the first picture, each its own sample in turns: node (the SDK in Node, an ffmpeg
  started when the stream opens), node-early (the same, its ffmpeg started right before the request, as
  the uve CLI does), browser (the reference web client in headless Chromium: WebCodecs, drawn
  into a canvas; the requestApplication is sent from Node and the connection handed to the page).
--baselines: sampled in turns with each case's samples ('' for none): x11grab (warm cases: the probe
  running in its own Xvfb on --display, an ffmpeg x11grab -> x264 ultrafast/zerolatency pipeline started
  on request, its first picture decoded by the same Node decoder, or for the browser client relayed to
  the same page and decoded by WebCodecs and drawn); floor (cold cases: the agent image run with the
  gateway's container options and \`node -e ''\` until it exits; a PROCESS VM: \`node -e ''\`).`;

const CLIENTS: Record<string, { suffix: string }> = { node: { suffix: '' }, 'node-early': { suffix: ', Node decoder prepared before the request' }, browser: { suffix: ', Chromium' } };

interface Sample { placed: number; welcome: number; firstFrame: number; decoded: number; drawn: number; firstInput: number; assignedServer: number; connectedServer: number; stages: Record<string, number> }
type Figure = Exclude<keyof Sample, 'stages'>;

/**
 * The start's stages in the order they happen, ms from requestApplication sent, on the one wall
 * clock of this host (gateway, VM and client; a DOCKER VM shares it): the VMM's and the VM's from
 * the welcome's `start` (asked for with `timings`), the client's own.
 */
const STAGES: [key: string, label: string][] = [
  ['committedAt', 'VMM: assignment committed'],
  ['sentAt', 'VMM: prepare handed to the queue'],
  ['placed', 'client: requestApplication answered'],
  ['calledAt', 'page: connection handed over (Chromium)'],
  ['preparedAt', 'VM: prepare received'],
  ['uaStartedAt', 'VM: UA started'],
  ['encoderReadyAt', 'VM: encoder ready'],
  ['capturedAt', 'VM: first picture captured'],
  ['encodedAt', 'VM: first keyframe encoded'],
  ['helloAt', 'VM: hello received'],
  ['welcomeAt', 'VM: welcome sent'],
  ['welcome', 'client: welcome received'],
  ['codec', 'client: codec received (decoder configured)'],
  ['firstFrame', 'client: first frame received'],
  ['decoded', 'client: first frame decoded'],
  ['drawn', 'page: first frame drawn (Chromium)'],
  ['avcAt', 'x11grab: avcC out of ffmpeg'],
  ['auAt', 'x11grab: first access unit out of ffmpeg'],
  ['floorCreated', 'floor: container created'],
  ['floorStarted', 'floor: container started'],
  ['floorExited', 'floor: node -e \'\' exited'],
];

const FROM_ZERO = { UVE_WARM_VMS: '0', UVE_VM_IDLE_RETIRE_MS: '0', UVE_REQUEST_WAIT_MS: '60000' };
const CASES: Record<string, { label: string; ua: string; platform: string; cold?: boolean; env: Record<string, string> }> = {
  process: { label: 'warm PROCESS VM', ua: 'paint', platform: 'WASM', env: { UVE_VM_PROVIDER: 'PROCESS', UVE_DOCKER: 'off', UVE_WARM_VMS: '1' } },
  docker: { label: 'warm DOCKER VM', ua: 'paint', platform: 'WASM', env: { UVE_VM_PROVIDER: 'DOCKER', UVE_DOCKER: 'on', UVE_WARM_VMS: '1' } },
  // a warm LINUX_X11 VM keeps a display and an encoder started for the next session (UVE_WARM_START)
  x11: { label: 'warm LINUX_X11 VM (xcalc)', ua: 'xcalc', platform: 'LINUX_X11', env: { UVE_VM_PROVIDER: 'PROCESS', UVE_DOCKER: 'off', UVE_WARM_VMS: '1' } },
  // no warm VM, and an idle one retired at once: each request starts a VM (an agent process, a container)
  'process-cold': { label: 'PROCESS VM from zero', ua: 'paint', platform: 'WASM', cold: true, env: { UVE_VM_PROVIDER: 'PROCESS', UVE_DOCKER: 'off', ...FROM_ZERO } },
  'docker-cold': { label: 'cold DOCKER VM', ua: 'paint', platform: 'WASM', cold: true, env: { UVE_VM_PROVIDER: 'DOCKER', UVE_DOCKER: 'on', ...FROM_ZERO } },
};

async function createDatabase(url: string, name: string): Promise<string> {
  const c = new Client({ connectionString: url });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** What one client did from the session's connection to its first picture, ms since epoch (one clock). */
interface FirstPicture {
  /** client stages by STAGES key (welcome, codec, firstFrame, decoded; the page adds calledAt, drawn) */
  at: Record<string, number>;
  start?: SessionStartTiming;
  /** the first input (pointer down) sent right after the first picture -> its picture decoded, ms */
  firstInput: number;
  close(): Promise<void>;
}
type Connect = ((connection: { url: string; token: string }) => Promise<FirstPicture>) & {
  /** called right before requestApplication is sent */
  beforeRequest?: () => void;
};

/**
 * The SDK in Node: StreamClient with the Node decoder, its ffmpeg prepared when the stream opens
 * (StreamClient's own call) or, `early`, right before the request (what the `uve` CLI does).
 */
function nodeClient(codec: VideoCodec, paint: boolean, early = false): Connect {
  const decoder = nodeDecoderFactory({ codecs: [codec] });
  const connect: Connect = async (connection) => {
    const client = new StreamClient({ browserResources: false, timings: true });
    const close = async (): Promise<void> => {
      await client.bye().catch(() => undefined);
      client.close();
    };
    try {
      let firstFrame = 0;
      let codecAt = 0;
      client.on('codec', () => (codecAt ||= now()));
      const decoded = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no decoded frame in 30 s')), 30_000);
        client.on('frame', (f: FrameEvent) => {
          firstFrame ||= f.receivedAt ?? now();
          if (f.decoded) {
            clearTimeout(timer);
            resolve(now());
          }
        });
      });
      await client.connect({ ...connection, decoder });
      const welcome = now();
      const dec = await decoded;
      // the issue's other figure: the first input right after the first frame (185-219 ms in it)
      let firstInput = NaN;
      if (paint) {
        const sent = now();
        const seq = client.sendInput({ kind: 'pointer', type: 'down', x: 100, y: 100, button: 0 });
        firstInput = await new Promise<number>((resolve) => {
          const timer = setTimeout(() => resolve(NaN), 5_000);
          client.on('frame', (f: FrameEvent) => {
            if (!f.decoded || f.header.inputSeq < seq) return;
            clearTimeout(timer);
            resolve(now() - sent);
          });
        });
      }
      return { at: { welcome, codec: codecAt, firstFrame, decoded: dec }, start: client.welcome?.start, firstInput, close };
    } catch (e) {
      await close();
      throw e;
    }
  };
  if (early) connect.beforeRequest = () => decoder.prepare!();
  return connect;
}

/**
 * The reference web client: bench/src/browser-page in headless Chromium (StreamClient, attachCanvas,
 * WebCodecs), its page loaded before the request as a user's is; the page stamps its stages on
 * this host's clock, the connection is handed to it by the driver (calledAt shows that hop).
 */
async function preparedPage(browser: Browser, bundle: string): Promise<Page> {
  const page = await openBenchPage(browser, bundle);
  // the page readies its canvas while it waits for its user, as the console's player does
  await page.evaluate(() => window.bench.prepare(1280, 720));
  return page;
}

function browserClient(browser: Browser, bundle: string, paint: boolean): () => Promise<Connect> {
  return async () => {
    const page = await preparedPage(browser, bundle);
    const close = async (): Promise<void> => {
      await page.evaluate(() => window.bench.stop()).catch(() => undefined);
      await page.close().catch(() => undefined);
    };
    return async (connection) => {
      try {
        const { first: f } = await page.evaluate(([t]) => window.bench.play(t), [connection] as const);
        let firstInput = NaN;
        if (paint) {
          const rt = await page.evaluate(() => window.bench.roundTrip([{ kind: 'pointer', type: 'down', x: 100, y: 100, button: 0 }], 'seq', 0, 5000)).catch(() => null);
          if (rt) firstInput = rt.decodedAt - rt.sentAt;
        }
        return { at: { calledAt: f.calledAt, welcome: f.welcomeAt, codec: f.codecAt, firstFrame: f.receivedAt, decoded: f.decodedAt, drawn: f.drawnAt }, start: f.start, firstInput, close };
      } catch (e) {
        await close();
        throw e;
      }
    };
  };
}

/** One requestApplication and the client's way to its first picture, ms from the request sent. */
async function sample(gw: Gateway, token: string, uaId: string, codec: VideoCodec, connect: Connect): Promise<Sample> {
  connect.beforeRequest?.();
  const t0 = now();
  // the sample's start in the gateway's log (BENCH_GATEWAY_LOG), to read its stages on one clock
  if (process.env.BENCH_GATEWAY_LOG) fs.appendFileSync(process.env.BENCH_GATEWAY_LOG, JSON.stringify({ t: new Date().toISOString(), msg: 'bench: requestApplication sent' }) + '\n');
  const d = await gql(gw.graphqlUrl, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id connection { url token } } }`, { i: { uaId, fresh: true, terminal: { screenWidth: 1280, screenHeight: 720, codecs: [codec], localResources: [] } } }, token);
  const placed = now();
  const s = d.requestApplication as { id: string; connection: { url: string; token: string } };
  let first: FirstPicture | null = null;
  try {
    first = await connect(s.connection);
    const ev = await gql(gw.graphqlUrl, `query($s: ID!) { session(id: $s) { events { type at } } }`, { s: s.id }, token);
    const at = (type: string) => new Date((ev.session.events as { type: string; at: string }[]).find((e) => e.type === type)?.at ?? NaN).getTime();
    const stages: Record<string, number> = { placed: placed - t0 };
    for (const [k, v] of Object.entries({ ...first.at, ...first.start })) if (typeof v === 'number') stages[k] = v - t0;
    const rel = (k: string) => stages[k] ?? NaN;
    return { placed: placed - t0, welcome: rel('welcome'), firstFrame: rel('firstFrame'), decoded: rel('decoded'), drawn: rel('drawn'), firstInput: first.firstInput, assignedServer: at('ASSIGNED') - at('REQUESTED'), connectedServer: at('CONNECTED') - at('REQUESTED'), stages };
  } finally {
    await first?.close();
    await gql(gw.graphqlUrl, `mutation($s: ID!) { endSession(sessionId: $s) { id } }`, { s: s.id }, token).catch(() => undefined);
  }
}

/** One baseline sample, its stages ms from its start (t0: the request's counterpart). */
async function baselineSample(start: () => Promise<{ t0: number; at: Record<string, number> }>): Promise<Sample> {
  const { t0, at } = await start();
  const stages = Object.fromEntries(Object.entries(at).map(([k, v]) => [k, v - t0]));
  const rel = (k: string) => stages[k] ?? NaN;
  return { placed: NaN, welcome: NaN, firstFrame: rel('firstFrame'), decoded: rel('decoded'), drawn: rel('drawn'), firstInput: NaN, assignedServer: NaN, connectedServer: NaN, stages };
}

/** A baseline of the run: what it is, which UVE figure it stands beside, and its own figure (a stage key). */
interface Baseline { key: string; label: string; figure: string; runner: BaselineRunner }

/** The stage a client's first picture is compared on: drawn in the page, decoded in Node. */
const figureOf = (client: string) => (client === 'browser' ? 'drawn' : 'decoded');

export default async function session(argv: string[]): Promise<BenchOutput> {
  const startedAt = Date.now();
  const o = parseArgs(argv, { warm: 10, cold: 3, codec: 'H264', cases: ['process', 'docker', 'x11', 'process-cold', 'docker-cold'], gap: 1500, clients: ['node'], baselines: ['x11grab', 'floor'], display: 443, quick: false }, HELP);
  if (o.quick) Object.assign(o, { warm: 3, cold: 1, cases: ['process'] });
  const dir = dataDir('session');
  for (const c of o.clients) if (!CLIENTS[c]) throw new Error(`unknown client ${c}; see --help`);
  for (const b of o.baselines) if (!['x11grab', 'floor'].includes(b)) throw new Error(`unknown baseline ${b}; see --help`);
  const pg = await startPostgres(path.join(dir, 'pg'));
  let browser: Browser | null = null;
  let bundle = '';
  if (o.clients.includes('browser')) [bundle, browser] = await Promise.all([bundleBenchPage(), launchChromium()]);
  const rows: string[][] = [];
  const stageCols: string[] = [];
  const stageCells = new Map<string, string[]>(STAGES.map(([k]) => [k, []]));
  const data: Record<string, unknown>[] = [];
  const headline: string[][] = [];
  let probe: UaDisplay | null = null;
  const warm: Baseline[] = [];
  try {
    // the warm baselines' X program, started once and left running like a warm VM's runtime
    if (o.baselines.includes('x11grab') && o.cases.some((c) => !CASES[c]?.cold)) {
      probe = await startUaDisplay({ display: o.display, width: 1280, height: 720 });
      const stream = { width: 1280, height: 720, fps: 60 }; // the session's: the terminal declares no cap
      if (o.clients.some((c) => c !== 'browser')) warm.push({ key: 'node', label: 'x11grab → Node decoder', figure: 'decoded', runner: x11grabNodeBaseline(probe, stream) });
      if (browser) warm.push({ key: 'browser', label: 'x11grab → WebCodecs, drawn (Chromium)', figure: 'drawn', runner: await x11grabBrowserBaseline(probe, stream, () => preparedPage(browser!, bundle)) });
    }
    process.stdout.write(`${header('session', `${o.warm} warm / ${o.cold} cold samples, ${o.codec}`)}\n`);
    for (const c of o.cases) {
      const kase = CASES[c];
      if (!kase) throw new Error(`unknown case ${c}; see --help`);
      const gw = await startGateway(path.join(dir, c), { DATABASE_URL: await createDatabase(pg.url, c.replace('-', '_')), UVE_SAMPLE_UAS: 'true', UVE_POOL_PLATFORMS: kase.platform, ...kase.env });
      try {
        const admin = await login(gw.graphqlUrl);
        const token = (await gql(gw.graphqlUrl, `mutation { register(input: { username: "session", password: "bench-password-1" }) { token } }`)).register.token as string;
        const uaId = await until(`the ${kase.ua} UA`, 30_000, async () => ((await gql(gw.graphqlUrl, '{ uas { id name } }', {}, admin.token)).uas as { id: string; name: string }[]).find((u) => u.name === kase.ua)?.id);
        const cold = !!kase.cold;
        // each client's samples in turns on the same gateway and VM, so that both meet the same machine
        const connects = o.clients.map((name) => ({ name, label: `${kase.label}${CLIENTS[name]!.suffix}`, connect: name === 'browser' ? browserClient(browser!, bundle, kase.ua === 'paint') : async () => nodeClient(o.codec as VideoCodec, kase.ua === 'paint', name === 'node-early') }));
        if (!cold) {
          // the warm VM is up and has run the UA once (what "warm" means for a user arriving later)
          await until(`a warm VM (${kase.label})`, 120_000, async () => (await sample(gw, token, uaId, o.codec as VideoCodec, nodeClient(o.codec as VideoCodec, kase.ua === 'paint')), true));
        }
        // cold: the floor of the VM's start, one per turn; warm: the x11grab pipeline per kind of client
        const floor: Baseline | null = cold && o.baselines.includes('floor') ? { key: 'floor', label: kase.env.UVE_VM_PROVIDER === 'DOCKER' ? "bare container (agent image, node -e '')" : "bare process (node -e '')", figure: 'floorExited', runner: kase.env.UVE_VM_PROVIDER === 'DOCKER' ? containerFloor() : processFloor() } : null;
        const baselines = floor ? [floor] : cold ? [] : warm;
        // before each sample: warm, the gap; cold, the previous sample's VM gone (its container stopped and removed)
        const settle = async (): Promise<void> => {
          if (!cold) return new Promise((r) => setTimeout(r, o.gap));
          await until('no VM left from the previous sample', 60_000, async () => !((await gql(gw.graphqlUrl, '{ vms { id status } }', {}, admin.token)).vms as { status: string }[]).some((v) => ['IDLE', 'BUSY', 'PROVISIONING', 'DRAINING'].includes(v.status)));
        };
        const samples = new Map<string, Sample[]>([...connects.map((k) => [k.name, []] as [string, Sample[]]), ...baselines.map((b) => [`baseline:${b.key}`, []] as [string, Sample[]])]);
        for (let i = 0; i < (cold ? o.cold : o.warm); i++) {
          for (const k of connects) {
            const connect = await k.connect();
            await settle();
            samples.get(k.name)!.push(await sample(gw, token, uaId, o.codec as VideoCodec, connect));
            const last = samples.get(k.name)!.at(-1)!;
            process.stdout.write(`  ${k.label}: decoded ${last.decoded.toFixed(0)} ms${Number.isFinite(last.drawn) ? `, drawn ${last.drawn.toFixed(0)} ms` : ''}\n`);
          }
          for (const b of baselines) {
            const start = await b.runner.ready();
            await settle();
            const s = await baselineSample(start);
            samples.get(`baseline:${b.key}`)!.push(s);
            process.stdout.write(`  baseline ${b.label}: ${b.figure} ${s.stages[b.figure]!.toFixed(0)} ms\n`);
          }
        }
        await floor?.runner.close();
        for (const k of connects) {
          const xs = samples.get(k.name)!;
          const st = (f: Figure) => spread(xs.map((s) => s[f]));
          const p95 = (f: Figure) => [...xs.map((s) => s[f])].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]!;
          const cell = (s: Spread) => fmt(s, 0);
          rows.push([k.label, String(xs.length), cell(st('placed')), cell(st('welcome')), cell(st('firstFrame')), cell(st('decoded')), p95('decoded').toFixed(0), cell(st('drawn')), cell(st('firstInput')), cell(st('assignedServer')), cell(st('connectedServer'))]);
          stageCols.push(k.label);
          for (const [key] of STAGES) stageCells.get(key)!.push(cell(spread(xs.map((x) => x.stages[key] ?? NaN))));
          data.push({ case: c, client: k.name, label: k.label, samples: xs });
          // the headline: this client's first picture against its baseline's, sample by sample in turns
          const b = floor ?? warm.find((w) => w.key === (k.name === 'browser' ? 'browser' : 'node'));
          if (!b) continue;
          const fig = figureOf(k.name);
          const ours = xs.map((s) => s.stages[fig] ?? NaN);
          const theirs = samples.get(`baseline:${b.key}`)!.map((s) => s.stages[b.figure] ?? NaN);
          const goal = cold ? (kase.env.UVE_VM_PROVIDER === 'DOCKER' ? 2000 : NaN) : kase.platform === 'LINUX_X11' ? 500 : 300;
          const p50 = spread(ours).median;
          headline.push([k.label, String(xs.length), fig, fmt(spread(ours), 0), percentile(ours.filter(Number.isFinite), 95).toFixed(0), b.label, fmt(spread(theirs), 0), percentile(theirs.filter(Number.isFinite), 95).toFixed(0),
            `${(p50 / spread(theirs).median).toFixed(2)}x`, `${(percentile(ours.filter(Number.isFinite), 95) / percentile(theirs.filter(Number.isFinite), 95)).toFixed(2)}x`,
            `${fmt(spread(ours.map((x, i) => x / theirs[i]!)), 2)}x`, Number.isFinite(goal) ? `${p50 <= goal ? 'met' : 'missed'} (≤ ${goal})` : '-']);
        }
        for (const b of baselines) {
          const xs = samples.get(`baseline:${b.key}`)!;
          stageCols.push(`baseline ${cold ? 'floor' : `x11grab, ${b.key}`} (${c})`);
          for (const [key] of STAGES) stageCells.get(key)!.push(fmt(spread(xs.map((x) => x.stages[key] ?? NaN)), 0));
          data.push({ case: c, baseline: b.key, label: b.label, figure: b.figure, samples: xs });
        }
      } finally {
        await gw.stop();
      }
    }
    const text = [
      header('session', `paint UA (xcalc on LINUX_X11), 1280x720, ${o.codec}, Node decoder (${o.codec === 'H264' ? 'an ffmpeg process per session, started when the stream opens' : 'sharp'})${browser ? ', and the web client in headless Chromium' : ''}`),
      '',
      'Headline: the first picture against a baseline of the raw parts without the platform, sampled in turns with it (sample i',
      'of a case, then sample i of its baseline, the same gap before each): median (min–max) ms over the samples, p95, and the',
      'ratios: of the p50s, of the p95s, and each turn\'s own ratio, median (min–max). Warm baseline: the LINUX_X11 probe already',
      'running in its own Xvfb, on request an ffmpeg x11grab (60 fps clock) -> x264 ultrafast/zerolatency started, its first',
      'picture decoded by the same Node decoder (prepared at the same instant) or, beside the Chromium rows, relayed over a bare',
      'WebSocket to the same prepared page, decoded by WebCodecs and drawn. Cold baseline: the same agent image run by the engine',
      'with the gateway\'s own container options and `node -e \'\'` (create -> exited); PROCESS: `node -e \'\'` (spawn -> exited).',
      '',
      table(['VM, client', 'n', 'figure', 'p50 ms (min–max)', 'p95', 'baseline', 'baseline p50 (min–max)', 'p95', 'p50 / baseline', 'p95 / baseline', 'per turn', 'goal'], headline),
      '',
      table(['VM', 'n', 'placed ms', 'welcome ms', 'first frame ms', 'decoded ms (p50)', 'decoded p95', 'drawn ms', 'first input → decoded ms', 'server: REQUESTED→ASSIGNED', 'server: →CONNECTED'], rows),
      '',
      `Warm samples ${o.gap} ms apart (a user arriving later). All times from requestApplication sent (client clock), the terminal as the web client declares it (no frame-rate cap: 60 fps):`,
      'median (min–max) over the samples. placed = the mutation answered',
      '(VM selected, session token); welcome = the UVE-3 stream opened; first frame = its bytes arrived; decoded = the picture out',
      'of the decoder; first input = a pointer down sent right after that picture (paint) to its picture decoded. Server columns: gaps between the session events the gateway recorded (its clock).',
      'Goals (issues 13, 16): warm p50 ≤ 300 ms (LINUX_X11 ≤ 500 ms), cold DOCKER p50 ≤ 2 s. The Node client\'s decoder start is',
      'inside "decoded" (a browser\'s WebCodecs decoder starts in a few ms): "first frame" is what the VMM and VM deliver.',
      'Chromium rows: the reference web client (StreamClient, attachCanvas, WebCodecs VideoDecoder) in headless Chromium, its',
      'page loaded before the request; decoded = VideoDecoder output, drawn = the picture in the canvas; first input → decoded alike.',
      '',
      'Where the time goes: each stage, ms from requestApplication sent (median (min–max)), one wall clock (this host):',
      '',
      table(['stage', ...stageCols], STAGES.map(([k, label]) => [label, ...stageCells.get(k)!])),
      '',
      'The VM starts the session (UA, encoder, first keyframe) when the prepare arrives and the client connects',
      'when requestApplication answers: the two run side by side, the welcome leaves when both are done.',
      '',
      `Wall time of this run: ${((Date.now() - startedAt) / 1000).toFixed(0)} s (the load average above is at its end).`,
    ].join('\n');
    return { text, data: { options: o, rows: data } };
  } finally {
    for (const b of warm) await b.runner.close().catch(() => undefined);
    await probe?.close();
    await browser?.close().catch(() => undefined);
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
