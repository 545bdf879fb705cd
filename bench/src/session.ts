// bench/session: requestApplication -> first decoded frame, by stage, on a warm PROCESS VM, a warm
// DOCKER VM, a warm LINUX_X11 VM (its display and encoder kept started), and a PROCESS or DOCKER VM
// started from zero for the request; the first picture decoded by the SDK in Node (an ffmpeg) and,
// with --clients node,browser, in turns with it, by the reference web client in headless Chromium
// (WebCodecs) and drawn. One clock (this host's) for the client stages; the gateway's recorded
// session events (REQUESTED, ASSIGNED, CONNECTED) for the server side.
import path from 'node:path';
import fs from 'node:fs';
import { Client } from 'pg';
import { StreamClient, nodeDecoderFactory, type FrameEvent } from '@uve/client';
import type { SessionStartTiming, VideoCodec } from '@uve/protocol';
import { bundleBenchPage, launchChromium, openBenchPage, type Browser } from './lib/browser';
import { fmt, header, now, parseArgs, spread, table, type BenchOutput, type Spread } from './lib/report';
import { dataDir, gql, login, startGateway, startPostgres, until, type Gateway } from './lib/services';

const HELP = `bench/session: requestApplication -> first decoded frame (paint UA, or xcalc on LINUX_X11, 1280x720), by stage

Usage: npm run bench -- session [--warm 10] [--cold 3] [--codec H264] [--cases process,docker,x11,process-cold,docker-cold] [--gap 1500]
                                [--clients node,browser] [--quick]

--gap: ms between a warm sample's end and the next request (a user arriving later finds the VM
settled: its spare encoder and guest thread start ~1 s after a session's first picture).
--clients: who decodes the first picture, each its own sample in turns: node (the SDK in Node, an ffmpeg
  started when the stream opens), node-early (the same, its ffmpeg started right before the request, as
  the uve CLI does), browser (the reference web client in headless Chromium: WebCodecs, drawn
  into a canvas; the requestApplication is sent from Node and the connection handed to the page).`;

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
function browserClient(browser: Browser, bundle: string, paint: boolean): () => Promise<Connect> {
  return async () => {
    const page = await openBenchPage(browser, bundle);
    // the page readies its canvas while it waits for its user, as the console's player does
    await page.evaluate(() => window.bench.prepare(1280, 720));
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

export default async function session(argv: string[]): Promise<BenchOutput> {
  const o = parseArgs(argv, { warm: 10, cold: 3, codec: 'H264', cases: ['process', 'docker', 'x11', 'process-cold', 'docker-cold'], gap: 1500, clients: ['node'], quick: false }, HELP);
  if (o.quick) Object.assign(o, { warm: 3, cold: 1, cases: ['process'] });
  const dir = dataDir('session');
  for (const c of o.clients) if (!CLIENTS[c]) throw new Error(`unknown client ${c}; see --help`);
  const pg = await startPostgres(path.join(dir, 'pg'));
  let browser: Browser | null = null;
  let bundle = '';
  if (o.clients.includes('browser')) [bundle, browser] = await Promise.all([bundleBenchPage(), launchChromium()]);
  const rows: string[][] = [];
  const stageCols: string[] = [];
  const stageCells = new Map<string, string[]>(STAGES.map(([k]) => [k, []]));
  const data: Record<string, unknown>[] = [];
  try {
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
        const samples = new Map<string, Sample[]>(connects.map((k) => [k.name, []]));
        for (let i = 0; i < (cold ? o.cold : o.warm); i++) {
          for (const k of connects) {
            const connect = await k.connect();
            if (cold) await until('no VM left from the previous sample', 60_000, async () => !((await gql(gw.graphqlUrl, '{ vms { id status } }', {}, admin.token)).vms as { status: string }[]).some((v) => ['IDLE', 'BUSY', 'PROVISIONING', 'DRAINING'].includes(v.status)));
            if (!cold) await new Promise((r) => setTimeout(r, o.gap));
            samples.get(k.name)!.push(await sample(gw, token, uaId, o.codec as VideoCodec, connect));
            const last = samples.get(k.name)!.at(-1)!;
            process.stdout.write(`  ${k.label}: decoded ${last.decoded.toFixed(0)} ms${Number.isFinite(last.drawn) ? `, drawn ${last.drawn.toFixed(0)} ms` : ''}\n`);
          }
        }
        for (const k of connects) {
          const xs = samples.get(k.name)!;
          const st = (f: Figure) => spread(xs.map((s) => s[f]));
          const p95 = (f: Figure) => [...xs.map((s) => s[f])].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))]!;
          const cell = (s: Spread) => fmt(s, 0);
          rows.push([k.label, String(xs.length), cell(st('placed')), cell(st('welcome')), cell(st('firstFrame')), cell(st('decoded')), p95('decoded').toFixed(0), cell(st('drawn')), cell(st('firstInput')), cell(st('assignedServer')), cell(st('connectedServer'))]);
          stageCols.push(k.label);
          for (const [key] of STAGES) stageCells.get(key)!.push(cell(spread(xs.map((x) => x.stages[key] ?? NaN))));
          data.push({ case: c, client: k.name, label: k.label, samples: xs });
        }
      } finally {
        await gw.stop();
      }
    }
    const text = [
      header('session', `paint UA (xcalc on LINUX_X11), 1280x720, ${o.codec}, Node decoder (${o.codec === 'H264' ? 'an ffmpeg process per session, started when the stream opens' : 'sharp'})${browser ? ', and the web client in headless Chromium' : ''}`),
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
    ].join('\n');
    return { text, data: { options: o, rows: data } };
  } finally {
    await browser?.close().catch(() => undefined);
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
