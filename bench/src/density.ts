// bench/density: how many concurrent 1280x720 sessions at 30 fps one machine serves while each
// still feels live. Per platform, sessions are added one at a time; after each addition every open
// session plays (inputs at random phase, the motion UA animating) for a window in which the bench
// measures input -> frame latency pooled over all sessions and the fps each session receives. It
// stops at the first step over the limit (p95 > 50 ms, or fps < 28 for a motion UA), measured twice.
//
// Baseline in the same run: the naive way to stream an X program, one fixed-clock pipeline per
// session (the X11 case's program in its own Xvfb, `ffmpeg -f x11grab` at the fps asked for, x264
// ultrafast/zerolatency: lib/x11grab.ts), pipelines added one at a time under the same stop rule,
// after the gateway and its VMs have stopped. The headline is sessions / pipelines per case; a WASM
// case has no X program, so it is set against the pipelines of the X11 case of its kind (full
// motion: scroll; static: xterm), and the table says so.
//
// The clients do not decode: a terminal decodes on its own device, and on these 2 cores a decoder
// per session (an ffmpeg process for H264) would be the bench measuring itself. Which frame shows an
// input comes from its header (inputSeq: the last input applied before the capture); a static UA
// sends no frame until its picture changes, so its first frame after the input is the echo.
import fs from 'node:fs';
import path from 'node:path';
import { GatewayClient, StreamClient } from '@uve/client';
import type { InputEvent, VideoCodec } from '@uve/protocol';
import { header, loadavg, now, parseArgs, percentile, table, type BenchOutput } from './lib/report';
import { ADMIN, dataDir, startGateway, startPostgres, until, type Gateway } from './lib/services';
import { cpuOfTree, machineBusy, requestSession } from './lib/sessions';
import { startX11grabPipeline, type Region } from './lib/x11grab';

const HELP = `bench/density: concurrent 1280x720 sessions at 30 fps, added one at a time until p95 input -> frame > 50 ms
or (motion UAs) fps < 28, per platform

Usage: npm run bench -- density [--cases wasm-game,x11-xterm] [--max 10] [--seconds 5] [--codec H264]
                                [--p95-ms 50] [--min-fps 28] [--fps 30] [--width 1280 --height 720]
                                [--vm-capacity 4] [--baseline auto|none] [--keep-going] [--quick]
--cases:   wasm-game (WASM game sample on PROCESS VMs, full motion), wasm-paint (WASM, static between inputs),
           x11-xterm (LINUX_X11 xterm, mostly static), x11-probe (LINUX_X11 probe, static),
           x11-scroll (LINUX_X11 scroll sample, full motion)
--baseline: auto (default): after the sessions, fixed-clock x11grab pipelines (the X program in its own Xvfb,
           ffmpeg -f x11grab, x264 ultrafast/zerolatency, one per session) under the same stop rule, for each X11
           case and for each WASM case's kind (wasm-game: x11-scroll's program, wasm-paint: x11-xterm's); none: skip them
--max:     most sessions (and baseline pipelines) per case (the step past the goal is enough to say the goal is met)
--seconds: measured window per step
--vm-capacity: sessions per VM (UVE_VM_CAPACITY; the pool starts another VM when the open ones are full)
--keep-going: measure every step up to --max, past the limit too (once each): the CPU per frame then comes from
           more points; the max sessions is still the last step before the first one over the limit
--quick:   3 sessions at most, 3 s windows`;

type Options = { cases: string[]; max: number; seconds: number; codec: string; p95Ms: number; minFps: number; fps: number; width: number; height: number; vmCapacity: number; baseline: string; keepGoing: boolean; quick: boolean };

interface Case {
  label: string;
  ua: string;
  platform: string;
  motion: boolean;
  goal: number;
  input: (i: number) => [InputEvent, InputEvent];
  /** the X11 case whose x11grab pipelines are this case's baseline: its own, or for WASM the X11 case of its kind */
  baseline: string;
  /** X11 cases: the part of the screen the input changes, which the baseline watches (width, height: the screen's) */
  watch?: (width: number, height: number) => Region;
}

const key = (code: string, k: string): [InputEvent, InputEvent] => [{ kind: 'key', type: 'down', code, key: k }, { kind: 'key', type: 'up', code, key: k }];

const CASES: Record<string, Case> = {
  'wasm-game': { label: 'WASM game (full motion), PROCESS VMs', ua: 'game', platform: 'WASM', motion: true, goal: 8, baseline: 'x11-scroll', input: (i) => (i % 2 ? key('ArrowLeft', 'ArrowLeft') : key('ArrowRight', 'ArrowRight')) },
  'wasm-paint': { label: 'WASM paint (static), PROCESS VMs', ua: 'paint', platform: 'WASM', motion: false, goal: 8, baseline: 'x11-xterm', input: (i) => {
    const x = 20 + ((i * 37) % 1200);
    const y = 20 + ((i * 53) % 640);
    return [{ kind: 'pointer', type: 'down', x, y, button: 0 }, { kind: 'pointer', type: 'up', x, y, button: 0 }];
  } },
  // a typed letter, then its erasure: the line never grows, each key is echoed by the shell; the
  // baseline watches the first text line (the prompt, and what is typed after it)
  'x11-xterm': { label: 'LINUX_X11 xterm (mostly static), PROCESS VMs', ua: 'xterm', platform: 'LINUX_X11', motion: false, goal: 6, baseline: 'x11-xterm', watch: (w) => ({ x: 0, y: 0, width: w, height: 48 }),
    input: (i) => (i % 2 ? key('Backspace', 'Backspace') : key('KeyA', 'a')) },
  'x11-probe': { label: 'LINUX_X11 probe (static), PROCESS VMs', ua: 'probe', platform: 'LINUX_X11', motion: false, goal: 6, baseline: 'x11-probe', watch: (w, h) => ({ x: (w >> 1) - 4, y: (h >> 1) - 4, width: 8, height: 8 }),
    input: () => key('KeyA', 'a') },
  // the baseline watches the 8x8 marker each key toggles at the top right (scroll.js)
  'x11-scroll': { label: 'LINUX_X11 scroll (full motion), PROCESS VMs', ua: 'scroll', platform: 'LINUX_X11', motion: true, goal: 4, baseline: 'x11-scroll', watch: (w) => ({ x: w - 12, y: 4, width: 8, height: 8 }),
    input: (i) => (i % 2 ? key('ArrowLeft', 'ArrowLeft') : key('ArrowRight', 'ArrowRight')) },
};

/** One open session (or baseline pipeline): the frames it received and the round trips it measured. */
interface Player {
  frames: number;
  latencies: number[];
  timeouts: number;
  /** why its stream closed under it (a session the VM or gateway dropped), null while it streams */
  lost: string | null;
  /** the next input's round trip: ms to the frame showing it, null when none came in 2 s */
  answer(): Promise<number | null>;
  /** resolves once the loop of the current window has stopped */
  play(until: number): Promise<void>;
  close(): Promise<void>;
}

const ANSWER_MS = 2000;

/** A player over `roundTrip` (down sent -> the frame showing it, then up): inputs one at a time, at a person's pace. */
function player(c: Case, roundTrip: (down: InputEvent, up: InputEvent) => Promise<number | null>, close: () => Promise<void>): Player {
  let i = 0;
  const p: Player = {
    frames: 0, latencies: [], timeouts: 0, lost: null, close,
    answer: () => {
      const [down, up] = c.input(i++);
      return roundTrip(down, up);
    },
    play: async (until: number) => {
      while (Date.now() < until && !p.lost) {
        await new Promise((res) => setTimeout(res, 60 + Math.random() * 120)); // a person's pace, at random phase
        const ms = await p.answer();
        if (ms === null) p.timeouts++;
        else p.latencies.push(ms);
      }
    },
  };
  return p;
}

async function openPlayer(gw: GatewayClient, c: Case, o: Options): Promise<Player> {
  const session = await requestSession(gw, { ua: c.ua, codec: o.codec as VideoCodec, width: o.width, height: o.height, fps: o.fps });
  const client = new StreamClient({ browserResources: false });
  let waiting: { seq: number; resolve: () => void } | null = null;
  let first: (() => void) | null = null;
  const firstFrame = new Promise<void>((r) => (first = r));
  const p = player(c, async (down, up) => {
    if (!client.connected) {
      p.lost = `session ${session.id}'s stream closed (${client.state})`;
      return null;
    }
    const t = now();
    const seq = client.sendInput(down);
    const shown = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { waiting = null; resolve(false); }, ANSWER_MS);
      waiting = { seq, resolve: () => { clearTimeout(timer); resolve(true); } };
    });
    if (client.connected) client.sendInput(up);
    return shown ? now() - t : null;
  }, async () => {
    await client.bye().catch(() => undefined);
    client.close();
    await gw.endSession(session.id).catch(() => undefined);
  });
  client.on('frame', (f) => {
    p.frames++;
    first?.();
    if (waiting && f.header.inputSeq >= waiting.seq) {
      const w = waiting;
      waiting = null;
      w.resolve();
    }
  });
  await client.connect({ url: session.connection.url, token: session.connection.token });
  await Promise.race([firstFrame, new Promise((_, reject) => setTimeout(() => reject(new Error(`${c.ua}: no first frame in 20 s`)), 20_000))]);
  // warm-up: the encoder's first frames and the UA's start are not what a running session feels
  await p.play(Date.now() + 600);
  return p;
}

/** One baseline pipeline of the X11 case `c`, warmed up like a session once its program answers input. */
async function openPipeline(c: Case, o: Options, pids: number[][]): Promise<Player> {
  let frames = () => undefined as void;
  const pipe = await startX11grabPipeline({ ua: c.ua, width: o.width, height: o.height, fps: o.fps, watch: c.watch!(o.width, o.height), onFrame: () => frames() });
  const own = pipe.pids();
  pids.push(own);
  const p = player(c, (down, up) => pipe.roundTrip(down, up, ANSWER_MS), async () => {
    pids.splice(pids.indexOf(own), 1);
    await pipe.close();
  });
  frames = () => void p.frames++;
  try {
    // xterm's shell, the probe's window: a program takes input some time after its first picture
    await until(`${c.ua} answering input through x11grab`, 20_000, async () => (await p.answer()) !== null);
    await p.play(Date.now() + 600);
    return p;
  } catch (e) {
    await p.close();
    throw e;
  }
}

interface Step {
  sessions: number;
  attempt: number;
  inputs: number;
  timeouts: number;
  p50: number;
  p95: number;
  p99: number;
  fpsMin: number;
  fpsMedian: number;
  fpsMean: number;
  /** cores the gateway and everything it started used (VM agents, Xvfb, encoders) */
  serverCores: number;
  /** cores the bench's own clients used */
  clientCores: number;
  machineBusy: number;
  load1: number;
  over: string | null;
}

/** `cpu()` at a window's start gives, at its end, the cores what is measured used (a session's server side, or a pipeline) */
type CpuMeter = () => () => number;

async function measure(players: Player[], c: Case, o: Options, cpu: CpuMeter, attempt: number): Promise<Step> {
  for (const p of players) {
    p.frames = 0;
    p.latencies = [];
    p.timeouts = 0;
  }
  const server = cpu();
  const busy = machineBusy();
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  if (players.length) await Promise.all(players.map((p) => p.play(Date.now() + o.seconds * 1000)));
  else await new Promise((res) => setTimeout(res, o.seconds * 1000)); // the idle window
  const seconds = (performance.now() - t0) / 1000;
  const clientUse = process.cpuUsage(client0);
  const lat = players.flatMap((p) => p.latencies);
  const fps = players.map((p) => p.frames / seconds).sort((a, b) => a - b);
  const timeouts = players.reduce((n, p) => n + p.timeouts, 0);
  const lost = players.filter((p) => p.lost).map((p) => p.lost!);
  const s: Step = {
    sessions: players.length, attempt, inputs: lat.length, timeouts,
    p50: percentile(lat, 50), p95: percentile(lat, 95), p99: percentile(lat, 99),
    fpsMin: fps[0] ?? NaN, fpsMedian: fps[fps.length >> 1] ?? NaN, fpsMean: fps.reduce((a, b) => a + b, 0) / Math.max(1, fps.length),
    serverCores: server(), clientCores: (clientUse.user + clientUse.system) / 1e6 / seconds, machineBusy: busy(), load1: loadavg()[0]!, over: null,
  };
  // an input that never showed within 2 s counts as over the limit
  // a session whose stream closed is over the limit for good (it stays in the count, and says so each window)
  const over = [lost.length ? `${lost.length} lost: ${lost[0]}` : '', s.p95 > o.p95Ms || timeouts > 0.05 * (lat.length + timeouts) ? `p95 ${s.p95.toFixed(1)} ms > ${o.p95Ms}${timeouts ? ` (${timeouts} inputs unanswered in 2 s)` : ''}` : '', c.motion && s.fpsMin < o.minFps ? `fps ${s.fpsMin.toFixed(1)} < ${o.minFps}` : ''].filter(Boolean);
  s.over = over.length ? over.join(', ') : null;
  return s;
}

interface CaseResult {
  steps: Step[];
  max: number;
  /** --max reached without a step over the limit: the machine may hold more */
  capped: boolean;
  stoppedBy: string;
  cpu: CpuFit;
}

/** What a ladder adds one at a time: UVE sessions of a case, or its baseline's pipelines. */
interface Ladder {
  /** printed before each step's figures */
  name: string;
  open(): Promise<Player>;
  cpu: CpuMeter;
  /** a window with nothing open first (what every count pays anyway: the gateway and its idle VMs) */
  idleStep: boolean;
  /** frames/s one at full speed needs; null: the case's (see runLadder) */
  framesPerSession: number | null;
}

async function runLadder(l: Ladder, c: Case, o: Options): Promise<CaseResult> {
  const players: Player[] = [];
  const steps: Step[] = l.idleStep ? [await measure(players, c, o, l.cpu, 1)] : [];
  let stoppedBy = `--max ${o.max} reached`;
  let overAt = Infinity;
  try {
    for (let n = 1; n <= o.max; n++) {
      players.push(await l.open());
      let s = await measure(players, c, o, l.cpu, 1);
      steps.push(s);
      // one noisy window on a shared machine is not a verdict: a step over the limit is measured again
      if (s.over && overAt === Infinity) {
        s = await measure(players, c, o, l.cpu, 2);
        steps.push(s);
      }
      process.stdout.write(`  ${l.name.padEnd(19)} ${String(n).padStart(2)}: p95 ${s.p95.toFixed(1)} ms, fps min ${s.fpsMin.toFixed(1)}, server ${s.serverCores.toFixed(2)} cores, load ${s.load1}${s.over ? `  OVER: ${s.over}` : ''}\n`);
      if (s.over && overAt === Infinity) {
        overAt = n;
        stoppedBy = s.over;
        if (!o.keepGoing) break;
      }
    }
  } finally {
    for (const p of players) await p.close();
  }
  // a session at full speed: the fps asked for (motion), or the frames its inputs caused when the machine was least busy (static)
  const framesPerSession = l.framesPerSession ?? (c.motion ? o.fps : Math.max(...steps.filter((s) => s.sessions > 0).map((s) => s.fpsMedian)));
  return { steps, max: Math.min(o.max, overAt - 1), capped: overAt === Infinity, stoppedBy: overAt === Infinity ? stoppedBy : `${overAt}: ${stoppedBy}`, cpu: fitCpu(steps, framesPerSession) };
}

/**
 * Server cores against the frames delivered per second (all sessions), least squares over every
 * window: the idle cost and the CPU per frame. Per frame, not per session: a starved machine delivers
 * fewer frames per session, and a per-session slope would then look cheap.
 */
interface CpuFit { idleCores: number; cpuMsPerFrame: number; framesPerSession: number; sessionsFor2Cores: number }

function fitCpu(steps: Step[], framesPerSession: number): CpuFit {
  const pts = steps.map((s) => ({ x: s.sessions ? s.fpsMean * s.sessions : 0, y: s.serverCores }));
  const mx = pts.reduce((a, p) => a + p.x, 0) / pts.length;
  const my = pts.reduce((a, p) => a + p.y, 0) / pts.length;
  const sxx = pts.reduce((a, p) => a + (p.x - mx) ** 2, 0);
  const slope = sxx ? pts.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0) / sxx : NaN;
  const idle = my - slope * mx;
  return { idleCores: idle, cpuMsPerFrame: slope * 1000, framesPerSession, sessionsFor2Cores: slope > 0 ? (2 - idle) / (slope * framesPerSession) : NaN };
}

/** "sessions / pipelines": ≥ when the sessions reached --max, ≤ when the pipelines did; none when the baseline held no pipeline. */
function ratio(s: CaseResult, b: CaseResult): string {
  if (b.max === 0) return s.max === 0 ? '- (neither held 1)' : `- (${s.max} vs 0 pipelines)`;
  if (s.capped && b.capped) return '- (both reached --max)';
  return `${s.capped ? '≥ ' : b.capped ? '≤ ' : ''}${(s.max / b.max).toFixed(2)}x`;
}

export default async function density(argv: string[]): Promise<BenchOutput> {
  const started = performance.now();
  const o = parseArgs(argv, { cases: ['wasm-game', 'x11-xterm'], max: 10, seconds: 5, codec: 'H264', p95Ms: 50, minFps: 28, fps: 30, width: 1280, height: 720, vmCapacity: 4, baseline: 'auto', keepGoing: false, quick: false } as Options, HELP);
  if (o.quick) Object.assign(o, { max: Math.min(o.max, 3), seconds: 3 });
  for (const c of o.cases) if (!CASES[c]) throw new Error(`unknown case ${c}; see --help`);
  if (o.codec !== 'H264' && o.codec !== 'MJPEG') throw new Error(`--codec must be H264 or MJPEG, got ${o.codec}`);
  if (o.baseline !== 'auto' && o.baseline !== 'none') throw new Error(`--baseline must be auto or none, got ${o.baseline}`);
  const platforms = [...new Set(o.cases.map((c) => CASES[c]!.platform))];
  const baselineCases = o.baseline === 'none' ? [] : [...new Set(o.cases.map((c) => CASES[c]!.baseline))];
  const dir = dataDir('density');
  const results: Record<string, CaseResult> = {};
  const baselines: Record<string, CaseResult> = {};
  let startLoad = loadavg();
  try {
    const pg = await startPostgres(path.join(dir, 'pg'));
    let gw: Gateway | null = null;
    try {
      gw = await startGateway(dir, {
        DATABASE_URL: pg.url,
        // xterm hands out a shell: a sample registered only when named
        UVE_SAMPLE_UAS: 'true,xterm',
        UVE_POOL_PLATFORMS: platforms.join(','),
        UVE_WARM_VMS: '1',
        UVE_VM_CAPACITY: String(o.vmCapacity),
        UVE_MAX_VMS: '16',
        // a machine this loaded delays heartbeats: a VM declared OFFLINE mid-run would end its sessions
        UVE_VM_HEARTBEAT_TIMEOUT_MS: '60000',
      });
      const client = new GatewayClient(gw.url);
      await client.login(ADMIN.username, ADMIN.password);
      startLoad = loadavg();
      process.stdout.write(`${header('density', `${o.width}x${o.height} at ${o.fps} fps, ${o.codec}, +1 session per step, ${o.seconds} s windows`)}\n`);
      const g = gw;
      for (const name of o.cases) {
        const c = CASES[name]!;
        results[name] = await runLadder({ name, open: () => openPlayer(client, c, o), cpu: () => { const f = cpuOfTree(g.child.pid!); return () => f().cores; }, idleStep: true, framesPerSession: null }, c, o);
      }
    } finally {
      if (gw) await gw.stop();
      await pg.stop();
    }
    // the baseline's turn: nothing of UVE's left running
    for (const name of baselineCases) {
      const c = CASES[name]!;
      const pids: number[][] = [];
      // a fixed clock sends every frame, static or not: a pipeline at full speed needs the fps asked for
      baselines[name] = await runLadder({ name: `x11grab ${c.ua}`, open: () => openPipeline(c, o, pids), cpu: () => { const f = cpuOfTree(pids.flat()); return () => f().cores; }, idleStep: false, framesPerSession: o.fps }, c, o);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const wallSeconds = (performance.now() - started) / 1000;

  const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
  const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const most = (r: CaseResult) => `${r.capped ? '≥ ' : ''}${r.max}`;
  const headline = table(['case', 'UVE sessions', 'x11grab pipelines (baseline)', 'of the X program', 'sessions / pipelines', 'goal (issue 13)'], o.cases.map((n) => {
    const r = results[n]!;
    const c = CASES[n]!;
    const b = baselines[c.baseline];
    const of = c.platform === 'WASM' ? `${CASES[c.baseline]!.ua} (WASM: the X11 case of its kind)` : c.ua;
    return [c.label, most(r), b ? most(b) : 'not run', b ? of : '', b ? ratio(r, b) : '', `≥ ${c.goal}: ${r.max >= c.goal ? 'met' : 'missed'}`];
  }));
  const ladders = [...o.cases.map((n) => ({ n, label: CASES[n]!.label, r: results[n]! })), ...baselineCases.map((n) => ({ n: `x11grab-${CASES[n]!.ua}`, label: `baseline: ${CASES[n]!.ua} in its own Xvfb, ffmpeg x11grab ${o.fps} fps, x264`, r: baselines[n]! }))];
  const summary = table(['case', 'max', 'stopped by', 'idle cores', 'CPU ms / frame', 'frames/s one needs', 'how many 2 cores carry (CPU only)'], ladders.map(({ label, r }) =>
    [label, most(r), r.stoppedBy, f2(r.cpu.idleCores), f2(r.cpu.cpuMsPerFrame), f1(r.cpu.framesPerSession), f1(r.cpu.sessionsFor2Cores)]));
  const steps = table(['case', 'sessions', 'try', 'inputs', 'p50 ms', 'p95 ms', 'p99 ms', 'fps min', 'fps median', 'server cores', 'client cores', 'machine busy', 'load 1m', 'over the limit'],
    ladders.flatMap(({ n, r }) => r.steps.map((s) => [n, String(s.sessions), String(s.attempt), String(s.inputs), f1(s.p50), f1(s.p95), f1(s.p99), f1(s.fpsMin), f1(s.fpsMedian), s.serverCores.toFixed(2), s.clientCores.toFixed(2), `${(s.machineBusy * 100).toFixed(0)} %`, String(s.load1), s.over ?? ''])));
  const text = [
    header('density', `${o.width}x${o.height}, ${o.fps} fps requested, ${o.codec}, ${o.vmCapacity} sessions per VM, ${o.seconds} s per step, loopback`),
    `load average at the start ${startLoad.join(' ')}; wall time ${(wallSeconds / 60).toFixed(1)} min`,
    '',
    headline,
    '',
    summary,
    '',
    steps,
    '',
    `Limit per step: p95 input -> frame received > ${o.p95Ms} ms (pooled over every open session; more than 5 % of inputs unanswered in 2 s`,
    `counts as over), or for a motion UA the slowest session receiving < ${o.minFps} fps. A step over the limit is measured a second`,
    'time (try 2) and only that one decides; "≥": --max reached without going over. Inputs: each session one at a time,',
    '60–180 ms apart at random phase. Latency: input sent -> the first frame whose header says the input was applied',
    'before the capture, received by the client (not decoded: a terminal decodes on its own device). Baseline (x11grab):',
    'one pipeline per session, the X11 case\'s program in its own Xvfb, ffmpeg x11grab at the fps asked for, x264',
    'ultrafast/zerolatency, FLV to the bench, nothing decoded; input through XTest (keys mapped as the VM agent maps',
    'them); the frame showing an input: the access unit captured with the first of two equal pictures of the region the',
    'input changes (xterm: its first text line; probe: the centre; scroll: its marker) that differ from the picture before.',
    'Run after the gateway and its VMs stopped. A WASM case is set against the pipelines of the X11 program of its kind.',
    'server cores: CPU of the gateway and every process it started (VM agents, UAs, Xvfb, encoders), or of the pipelines',
    '(Xvfb, program, ffmpeg), 1.00 = one core; client cores: the bench process; machine busy: all cores, other jobs on',
    'the machine included. Step 0: no session (the gateway and its warm VMs). CPU ms / frame: least-squares slope of',
    'server cores over the frames/s delivered (all sessions), every window; "2 cores carry" = (2 - idle cores) / (CPU',
    'per frame x frames/s one needs: the fps asked for in motion and for the fixed clock, for a static UA the frames its',
    'inputs caused on the least busy step): an estimate from CPU time alone, for a machine that runs nothing else.',
  ].join('\n');
  return { text, data: { options: o, wallSeconds, loadAtStart: startLoad, cases: results, baselines } };
}
