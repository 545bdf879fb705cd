// bench/stream-browser: what a user of the reference web client feels, measured in headless
// Chromium with the SDK's browser code (WebCodecs' VideoDecoder for H264, ImageDecoder for MJPEG), on one clock,
// with the stages of every input's way to the screen (sent, received and applied by the VM,
// captured, encoded, written, received, decoded, drawn, painted), so the table says where the time
// goes; then motion (the game sample running): fps delivered, bitrate, server CPU per stream.
// Baselines in the same run: the same X program captured by a fixed-clock `ffmpeg -f x11grab` at
// the same fps (lib/x11grab.ts; decoded in Node, not in the browser: say so when reading the ratio),
// and served by Debian's x11vnc to noVNC's client in the same Chromium (lib/x11vnc.ts; skipped, and
// said so, where x11vnc or noVNC is not installed).
import fs from 'node:fs';
import path from 'node:path';
import { GatewayClient, type CanvasViewOptions } from '@uve/client';
import type { InputEvent, VideoCodec } from '@uve/protocol';
import type { RoundTrip } from './browser-page/entry';
import { bundleBenchPage, launchChromium, openBenchPage, type Browser, type Page } from './lib/browser';
import { fmt, header, latencySpread, parseArgs, percentile, spread, table, type BenchOutput } from './lib/report';
import { ADMIN, dataDir, startGateway, startPostgres, type Gateway } from './lib/services';
import { cpuOfTree, requestSession } from './lib/sessions';
import { startX11grabBaseline } from './lib/x11grab';
import { openX11vncBaseline, x11vncMissing, type X11vncBaseline } from './lib/x11vnc';
import type { VncRoundTrip } from './browser-page/novnc';

const HELP = `bench/stream-browser: input -> drawn frame in headless Chromium (the real web client), by stage,
per platform and codec at each fps; motion fps, bitrate and server CPU per stream; x11grab and x11vnc baselines

Usage: npm run bench -- stream-browser [--inputs 200] [--reps 4] [--fps 30,60] [--width 1280 --height 720]
                                       [--cases wasm-mjpeg,wasm-h264,x11-h264] [--motion-ms 4000] [--display 441] [--quick]
                                       [--clients sdk,old] [--motion game-h264,game-mjpeg] [--baselines x11grab,x11vnc]
                                       [--x11vnc-args '-defer 0 -wait 5']
--cases '': no latency cases (motion only); --motion '': no motion windows.
--inputs: per case and fps, over all repetitions; --display: the X display numbers the baselines' own Xvfbs take (n: x11grab, n+1: x11vnc).
--baselines: run with the x11-h264 case: x11grab (ffmpeg at each fps, decoded in Node), x11vnc (Debian's x11vnc viewed by noVNC
  in the same Chromium; needs apt-get install x11vnc novnc, skipped with a message without them).
--clients: how the page draws, each in its own session, in turns: sdk (attachCanvas's defaults: the newest picture
  only, VideoFrame.copyTo or drawImage as measured, ImageDecoder for JPEG), old (the path before: every picture
  drawn in order with drawImage, createImageBitmap for JPEG).
--x11vnc-args: added to x11vnc's command line (default none: its pacing as shipped, -wait 20 -defer 20 ms).`;

interface Options { inputs: number; reps: number; fps: string[]; width: number; height: number; cases: string[]; motion: string[]; motionMs: number; display: number; quick: boolean; clients: string[]; baselines: string[]; x11vncArgs: string }

/** attachCanvas's options per --clients name */
const CLIENTS: Record<string, { suffix: string; drawing: Pick<CanvasViewOptions, 'draw' | 'jpeg' | 'drawEveryFrame'> }> = {
  sdk: { suffix: '', drawing: {} },
  old: { suffix: ' (old draw)', drawing: { draw: 'drawImage', jpeg: 'createImageBitmap', drawEveryFrame: true } },
};

interface Case { label: string; ua: string; codec: VideoCodec; until: 'seq' | 'centre' }
const CASES: Record<string, Case> = {
  'wasm-mjpeg': { label: 'WASM paint, MJPEG', ua: 'paint', codec: 'MJPEG', until: 'seq' },
  'wasm-h264': { label: 'WASM paint, H264', ua: 'paint', codec: 'H264', until: 'seq' },
  'x11-h264': { label: 'LINUX_X11 probe, H264', ua: 'probe', codec: 'H264', until: 'centre' },
};
const MOTION: Record<string, Case> = {
  'game-h264': { label: 'WASM game, H264', ua: 'game', codec: 'H264', until: 'seq' },
  'game-mjpeg': { label: 'WASM game, MJPEG', ua: 'game', codec: 'MJPEG', until: 'seq' },
};

/** motion before a case's first window, not counted */
const MOTION_WARM_UP_MS = 2000;

/** The stages of one round trip, ms, in order; null where the VM's timing did not come. */
const STAGES = ['to VM', 'apply', 'to capture', 'encode', 'write', 'to page', 'decode', 'draw', 'to paint'] as const;
function stages(r: RoundTrip): (number | null)[] {
  const v = r.vm;
  return [
    v?.inputReceivedAt != null ? v.inputReceivedAt - r.sentAt : null,
    v?.inputAppliedAt != null && v.inputReceivedAt != null ? v.inputAppliedAt - v.inputReceivedAt : null,
    v?.inputAppliedAt != null ? v.capturedAt - v.inputAppliedAt : null,
    v ? v.encodedAt - v.capturedAt : null,
    v ? v.sentAt - v.encodedAt : null,
    v ? r.receivedAt - v.sentAt : null,
    r.decodedAt - r.receivedAt,
    r.drawnAt - r.decodedAt,
    r.paintedAt - r.drawnAt,
  ];
}

const median = (xs: number[]): number => percentile(xs, 50);

/** each stage's median over `trips` (NaN where none has it) */
function medianStages(trips: RoundTrip[]): number[] {
  return STAGES.map((_, j) => {
    const xs = trips.map((t) => stages(t)[j]).filter((x): x is number => x !== null);
    return xs.length ? median(xs) : NaN;
  });
}

function input(c: Case, i: number, o: Options): InputEvent[] {
  // the LINUX_X11 probe repaints its whole window on every key press
  if (c.ua === 'probe') return [{ kind: 'key', type: 'down', code: 'KeyA', key: 'a' }, { kind: 'key', type: 'up', code: 'KeyA', key: 'a' }];
  const x = 20 + ((i * 37) % (o.width - 40));
  const y = 20 + ((i * 53) % (o.height - 80));
  return [{ kind: 'pointer', type: 'down', x, y, button: 0 }, { kind: 'pointer', type: 'up', x, y, button: 0 }];
}

interface Open { page: Page; sessionId: string }

async function openSession(gw: GatewayClient, browser: Browser, bundle: string, c: Case, fps: number, o: Options, clientName: string): Promise<Open> {
  // fresh: an earlier case's session of this UA, closed and so DISCONNECTED, would otherwise be
  // resumed with its own stream (the motion case at 60 fps measured the 30 fps session before it)
  const session = await requestSession(gw, { ua: c.ua, codec: c.codec, width: o.width, height: o.height, fps, fresh: true });
  const page = await openBenchPage(browser, bundle);
  const got = await page.evaluate(([t, d]) => window.bench.play(t, d), [{ url: session.connection.url, token: session.connection.token }, CLIENTS[clientName]!.drawing] as const);
  const asked = `${c.codec} ${o.width}x${o.height}@${fps}`;
  const stream = `${got.codec} ${got.width}x${got.height}@${got.maxFps}`;
  if (stream !== asked) throw new Error(`session ${session.id} streams ${stream}, not the ${asked} the case asked for`);
  return { page, sessionId: session.id };
}

const BASELINES = ['x11grab', 'x11vnc'];

export default async function streamBrowser(argv: string[]): Promise<BenchOutput> {
  const o: Options = parseArgs(argv, { inputs: 200, reps: 4, fps: ['30', '60'], width: 1280, height: 720, cases: Object.keys(CASES), motion: Object.keys(MOTION), motionMs: 4000, display: 441, quick: false, clients: ['sdk'], baselines: BASELINES, x11vncArgs: '' }, HELP);
  if (o.quick) Object.assign(o, { inputs: 24, reps: 2, motionMs: 2000 });
  for (const c of o.cases) if (!CASES[c]) throw new Error(`unknown case ${c}; see --help`);
  for (const c of o.motion) if (!MOTION[c]) throw new Error(`unknown motion case ${c}; see --help`);
  for (const c of o.clients) if (!CLIENTS[c]) throw new Error(`unknown client ${c}; see --help`);
  for (const b of o.baselines) if (!BASELINES.includes(b)) throw new Error(`unknown baseline ${b}; see --help`);
  const withX11 = o.cases.includes('x11-h264');
  // x11vnc missing: said once here and in the table, the run goes on without it
  const vncSkipped = withX11 && o.baselines.includes('x11vnc') ? x11vncMissing() : null;
  if (vncSkipped) process.stdout.write(`baseline x11vnc skipped: ${vncSkipped}\n`);
  const fpsList = o.fps.map(Number);
  const perRep = Math.ceil(o.inputs / o.reps);
  const dir = dataDir('stream-browser');
  const pg = await startPostgres(path.join(dir, 'pg'));
  let gw: Gateway | null = null;
  let browser: Browser | null = null;
  let vnc: X11vncBaseline | null = null;
  const sessions: Open[] = [];
  try {
    // one VM per platform holds every session of the run (CPU per stream is then one tree's)
    gw = await startGateway(dir, { DATABASE_URL: pg.url, UVE_SAMPLE_UAS: 'true', UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM,LINUX_X11', UVE_VM_CAPACITY: '16' });
    const client = new GatewayClient(gw.url);
    await client.login(ADMIN.username, ADMIN.password);
    const [bundle, b] = await Promise.all([bundleBenchPage(), launchChromium()]);
    browser = b;
    const keys = o.cases.flatMap((c) => fpsList.flatMap((fps) => o.clients.map((client) => ({ c, fps, client, key: `${c}@${fps}${CLIENTS[client]!.suffix}` }))));
    const open = new Map<string, Open>();
    for (const k of keys) {
      const s = await openSession(client, browser, bundle, CASES[k.c]!, k.fps, o, k.client);
      sessions.push(s);
      open.set(k.key, s);
      // warm up: the first keyframe and the encoder start are not what a running session feels
      for (let i = 0; i < 5; i++) await s.page.evaluate(([ev, u]) => window.bench.roundTrip(ev, u, 0, 5000), [input(CASES[k.c]!, i, o), CASES[k.c]!.until] as const);
    }
    // open, like the sessions, for the whole run; its Xvfb is not x11grab's (that one comes and goes)
    if (withX11 && o.baselines.includes('x11vnc') && !vncSkipped) {
      vnc = await openX11vncBaseline(browser, { display: o.display + 1, width: o.width, height: o.height, args: o.x11vncArgs.split(/\s+/).filter(Boolean) });
      for (let i = 0; i < 5; i++) await vnc.roundTrip(0);
    }
    process.stdout.write(`${header('stream-browser', `${o.width}x${o.height} at ${o.fps.join('/')} fps, ${o.reps} x ${perRep} inputs per case at random phase`)}\n`);

    // latency: repetitions rotate over the cases, so the machine's drifting load hits all alike
    const trips = new Map<string, RoundTrip[][]>(keys.map((k) => [k.key, []]));
    const lost = new Map<string, number>();
    const base = new Map<number, number[][]>(fpsList.map((f) => [f, []]));
    const vncTrips: VncRoundTrip[][] = [];
    for (let r = 0; r < o.reps; r++) {
      for (const k of keys) {
        const c = CASES[k.c]!;
        const got: RoundTrip[] = [];
        for (let i = 0; i < perRep; i++) {
          // an input whose picture never came (5 s) is counted, not a reason to stop the run
          const t = await open.get(k.key)!.page.evaluate(([ev, u]) => window.bench.roundTrip(ev, u, 60, 5000), [input(c, r * perRep + i, o), c.until] as const).catch(() => null);
          if (t) got.push(t);
          else lost.set(k.key, (lost.get(k.key) ?? 0) + 1);
        }
        trips.get(k.key)!.push(got);
        process.stdout.write(`  rep ${r + 1} ${k.key.padEnd(25)} input -> drawn p50 ${median(got.map((t) => t.drawnAt - t.sentAt)).toFixed(1)} ms\n`);
      }
      if (withX11 && o.baselines.includes('x11grab')) {
        for (const fps of fpsList) {
          const x = await startX11grabBaseline({ display: o.display, width: o.width, height: o.height, fps });
          const lat: number[] = [];
          try {
            for (let i = 0; i < perRep; i++) {
              await new Promise((res) => setTimeout(res, Math.random() * 60));
              const ms = await x.roundTrip().catch(() => null);
              if (ms !== null) lat.push(ms);
              else lost.set(`x11grab@${fps}`, (lost.get(`x11grab@${fps}`) ?? 0) + 1);
            }
          } finally {
            await x.close();
          }
          base.get(fps)!.push(lat);
          process.stdout.write(`  rep ${r + 1} x11grab@${fps}     p50 ${median(lat).toFixed(1)} ms\n`);
        }
      }
      if (vnc) {
        const got: VncRoundTrip[] = [];
        for (let i = 0; i < perRep; i++) {
          const t = await vnc.roundTrip(60);
          if (t) got.push(t);
          else lost.set('x11vnc', (lost.get('x11vnc') ?? 0) + 1);
        }
        vncTrips.push(got);
        process.stdout.write(`  rep ${r + 1} x11vnc + noVNC  p50 ${median(got.map((t) => t.drawnAt - t.sentAt)).toFixed(1)} ms\n`);
      }
    }

    // motion: the game running, keys pressed in turn (a key also starts a new round after a crash)
    // per second: `encoded` the VM's frame numbers spanned (every frame it captured and encoded for the
    // stream, sent to this page or not),
    // `received`/`decoded`/`skipped` at the page, `animationFrames` its requestAnimationFrame rate
    type Got = { fps: number; kbps: number; cpuPct: number; c2d: number[]; dropped: number; encoded: number; received: number; decoded: number; skipped: number; animationFrames: number };
    const motion: { key: string; label: string; fps: number; got: Got[] }[] = [];
    const closedErrors: string[] = [];
    const gwPid = gw.child.pid!;
    for (const [name, c] of Object.entries(MOTION).filter(([n]) => o.motion.includes(n))) {
      for (const fps of fpsList) {
        // the clients' sessions of one case side by side, their windows in turns, then closed
        const rows: { key: string; label: string; fps: number; page: Page; got: Got[] }[] = [];
        for (const cl of o.clients) {
          const s = await openSession(client, browser, bundle, c, fps, o, cl);
          sessions.push(s);
          rows.push({ key: `${name}@${fps}${CLIENTS[cl]!.suffix}`, label: `${c.label}${CLIENTS[cl]!.suffix}`, fps, page: s.page, got: [] });
          // warm up, not counted: the game's first round, the JIT, the encoder's spare starting
          await s.page.evaluate(([ms]) => window.bench.motion(ms, ['ArrowLeft', 'ArrowRight'], 150), [MOTION_WARM_UP_MS] as const);
        }
        for (let r = 0; r < Math.max(2, o.reps >> 1); r++) {
          for (const row of rows) {
            const cpu = cpuOfTree(gwPid);
            const d0 = (await row.page.evaluate(() => window.bench.view())).dropped;
            const m = await row.page.evaluate(([ms]) => window.bench.motion(ms, ['ArrowLeft', 'ArrowRight'], 150), [o.motionMs] as const);
            const d1 = (await row.page.evaluate(() => window.bench.view())).dropped;
            const perS = (n: number): number => (n * 1000) / m.ms;
            const g: Got = { fps: perS(m.frames), kbps: (m.bytes * 8) / m.ms, cpuPct: cpu().cores * 100, c2d: m.captureToDraw, dropped: perS(d1 - d0), encoded: perS(m.seqSpan), received: perS(m.received), decoded: perS(m.decoded), skipped: perS(m.skipped), animationFrames: perS(m.animationFrames) };
            row.got.push(g);
            const f = (x: number): string => x.toFixed(1);
            process.stdout.write(`  rep ${r + 1} motion ${row.key.padEnd(25)} ${f(g.fps)} fps drawn; /s: VM encoded ${f(g.encoded)}, received ${f(g.received)}, decoded ${f(g.decoded)}, skipped ${f(g.skipped)}, dropped ${f(g.dropped)}, keyframes ${f(perS(m.keyframes))}, animation frames ${f(g.animationFrames)}; page queue max ${m.maxQueued}\n`);
          }
        }
        for (const row of rows) {
          closedErrors.push(...(await row.page.evaluate(() => window.bench.errors()).catch(() => [] as string[])));
          await row.page.evaluate(() => window.bench.stop()).catch(() => undefined);
          await row.page.close().catch(() => undefined);
          motion.push({ key: row.key, label: row.label, fps: row.fps, got: row.got });
        }
      }
    }
    const drawPaths = Object.fromEntries(await Promise.all([...open.entries()].map(async ([k, s]) => [k, (await s.page.evaluate(() => window.bench.view())).drawPath] as const)));
    const pageErrors = (await Promise.all(sessions.map((s) => s.page.evaluate(() => window.bench.errors()).catch(() => [] as string[])))).flat().concat(closedErrors, (await vnc?.errors()) ?? []);

    const rows = keys.map((k) => {
      const reps = trips.get(k.key)!;
      const drawn = latencySpread(reps.map((rep) => rep.map((t) => t.drawnAt - t.sentAt)));
      const painted = latencySpread(reps.map((rep) => rep.map((t) => t.paintedAt - t.sentAt)));
      const b = CASES[k.c]!.until === 'centre' ? base.get(k.fps) : undefined;
      const ratio = b?.length ? spread(reps.map((rep, i) => median(rep.map((t) => t.drawnAt - t.sentAt)) / median(b[i]!))) : null;
      const ratioVnc = CASES[k.c]!.until === 'centre' && vncTrips.length ? spread(reps.map((rep, i) => median(rep.map((t) => t.drawnAt - t.sentAt)) / median(vncTrips[i]!.map((t) => t.drawnAt - t.sentAt)))) : null;
      const all = reps.flat();
      const stageMedians = medianStages(all);
      // the slow inputs (at or above the p90 of all): which stage they spent their time in
      const p90 = percentile(all.map((t) => t.drawnAt - t.sentAt), 90);
      const tail = all.filter((t) => t.drawnAt - t.sentAt >= p90);
      const vmTimings = all.filter((t) => t.vm).length;
      return { key: k.key, label: `${CASES[k.c]!.label} @${k.fps}${CLIENTS[k.client]!.suffix}`, drawn, painted, ratio, ratioVnc, stageMedians, p90, tail: tail.length, tailStageMedians: medianStages(tail), vmTimings, samples: all.length };
    });
    const baseRows = [...base.entries()].filter(([, reps]) => reps.length).map(([fps, reps]) => ({ fps, l: latencySpread(reps) }));
    const vncRow = vncTrips.length ? { drawn: latencySpread(vncTrips.map((rep) => rep.map((t) => t.drawnAt - t.sentAt))), painted: latencySpread(vncTrips.map((rep) => rep.map((t) => t.paintedAt - t.sentAt))) } : null;
    const motionRows = motion.map((m) => ({
      ...m,
      fpsS: spread(m.got.map((g) => g.fps)),
      kbpsS: spread(m.got.map((g) => g.kbps)),
      cpuS: spread(m.got.map((g) => g.cpuPct)),
      c2d: latencySpread(m.got.map((g) => g.c2d)),
      droppedS: spread(m.got.map((g) => g.dropped)),
      encodedS: spread(m.got.map((g) => g.encoded)),
      receivedS: spread(m.got.map((g) => g.received)),
      decodedS: spread(m.got.map((g) => g.decoded)),
      skippedS: spread(m.got.map((g) => g.skipped)),
      rafS: spread(m.got.map((g) => g.animationFrames)),
    }));
    const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
    const text = [
      header('stream-browser', `${o.width}x${o.height}, ${o.reps} repetitions x ${perRep} inputs per case and fps, headless Chromium, loopback`),
      '',
      table(['case', 'inputs', 'lost', 'input -> drawn p50 ms', 'p95 ms', 'p99 ms', 'input -> painted p50 ms', 'p50 / x11grab p50', 'p50 / x11vnc p50'],
        [
          ...rows.map((r) => [r.label, String(r.samples), String(lost.get(r.key) ?? 0), fmt(r.drawn.p50), fmt(r.drawn.p95), fmt(r.drawn.p99), fmt(r.painted.p50), r.ratio ? `${fmt(r.ratio, 2)}x` : '', r.ratioVnc ? `${fmt(r.ratioVnc, 2)}x` : '']),
          ...baseRows.map((b) => [`baseline: x11grab @${b.fps} (Node decoder)`, String(b.l.samples), String(lost.get(`x11grab@${b.fps}`) ?? 0), fmt(b.l.p50), fmt(b.l.p95), fmt(b.l.p99), '', '', '']),
          ...(vncRow ? [[`baseline: x11vnc${o.x11vncArgs ? ` ${o.x11vncArgs.trim()}` : ''} + noVNC (in the page)`, String(vncRow.drawn.samples), String(lost.get('x11vnc') ?? 0), fmt(vncRow.drawn.p50), fmt(vncRow.drawn.p95), fmt(vncRow.drawn.p99), fmt(vncRow.painted.p50), '', '']] : []),
        ]),
      ...(vncSkipped ? ['', `baseline x11vnc skipped: ${vncSkipped}`] : []),
      '',
      'Where the time goes: median ms of each stage over all inputs of the case (VM stages from its `timing` messages).',
      '',
      table(['case', ...STAGES, 'VM timings'], rows.map((r) => [r.label, ...r.stageMedians.map(f1), `${r.vmTimings}/${r.samples}`])),
      '',
      'The tail: median ms of each stage over the inputs at or above the case\'s p90 (input -> drawn).',
      '',
      table(['case', 'p90 ms', 'inputs', ...STAGES], rows.map((r) => [r.label, f1(r.p90), String(r.tail), ...r.tailStageMedians.map(f1)])),
      '',
      table(['motion', 'fps requested', 'fps drawn', 'VM encoded /s', 'received /s', 'decoded /s', 'skipped /s', 'dropped /s', 'animation frames /s', 'kbit/s', 'server CPU % (all VMs + gateway)', 'capture -> drawn p50 ms', 'p95 ms'],
        motionRows.map((m) => [m.label, String(m.fps), fmt(m.fpsS), fmt(m.encodedS), fmt(m.receivedS), fmt(m.decodedS), fmt(m.skippedS), fmt(m.droppedS), fmt(m.rafS), fmt(m.kbpsS, 0), fmt(m.cpuS, 0), fmt(m.c2d.p50), fmt(m.c2d.p95)])),
      '',
      `draw path the SDK settled on: ${[...new Set(Object.entries(drawPaths).filter(([k]) => !k.endsWith(CLIENTS.old!.suffix)).map(([k, p]) => `${k} ${p}`))].join(', ')}`,
      '',
      'lost: inputs whose picture did not come within 5 s (left out of the figures).',
      'input -> drawn: the page sends the input and waits for the first drawn frame that shows it (WASM: the frame whose',
      'inputSeq covers it; X11: the frame whose centre pixel changed); painted: the next animation frame after the draw.',
      `x11vnc: the same probe in its own Xvfb, Debian's x11vnc ${o.x11vncArgs.trim() ? `with ${o.x11vncArgs.trim()}` : 'as shipped (polls the screen: -wait 20 -defer 20 ms)'}, noVNC's RFB`,
      'client in this browser; the key pressed through it (rfb.sendKey), drawn = the update copied to its visible canvas whose',
      'centre pixel changed (Display.flip).',
      'Stages: to VM (socket, VM event loop), apply (into the UA), to capture (frame pacing; for X11 also the program\'s',
      'repaint), encode, write (socket write done), to page (loopback, browser), decode (WebCodecs VideoDecoder; JPEG:',
      'ImageDecoder, old: createImageBitmap), draw (into the canvas: the path named below, old: drawImage), to paint.',
      'X11 stages take the newest input before the capture (the key release).',
      'dropped /s: decoded pictures the page skipped because a newer one came before they were drawn.',
      'Motion per second: VM encoded (the span of the frame numbers the page received: every frame the VM captured and',
      'encoded, sent to this page or not), received, decoded, skipped (H264 frames not decoded, waiting for a keyframe), animation frames (the page\'s',
      `requestAnimationFrame rate: the display's); fps drawn counts pictures drawn into the canvas. ${MOTION_WARM_UP_MS} ms of motion before the windows are not counted.`,
      'Motion: the game sample running for each window with arrow keys pressed every 150 ms; CPU is the gateway process',
      `tree (gateway, every VM agent and encoder) over the window, one core = 100 %.${pageErrors.length ? ` Page errors: ${pageErrors.slice(0, 3).join('; ')}` : ''}`,
    ].join('\n');
    return {
      text,
      data: {
        options: o,
        rows: rows.map((r) => ({ case: r.key, drawn: r.drawn, painted: r.painted, ratioToBaseline: r.ratio, ratioToX11vnc: r.ratioVnc, stageMediansMs: Object.fromEntries(STAGES.map((s, j) => [s, r.stageMedians[j]])), p90: r.p90, tailStageMediansMs: Object.fromEntries(STAGES.map((s, j) => [s, r.tailStageMedians[j]])), vmTimings: r.vmTimings, samples: r.samples })),
        baseline: baseRows,
        x11vnc: vncRow ? { ...vncRow, lost: lost.get('x11vnc') ?? 0 } : { skipped: vncSkipped ?? 'not asked for (--baselines, --cases)' },
        x11vncTrips: vncTrips,
        motion: motionRows.map((m) => ({ case: m.key, fps: m.fpsS, encodedPerS: m.encodedS, receivedPerS: m.receivedS, decodedPerS: m.decodedS, skippedPerS: m.skippedS, droppedPerS: m.droppedS, animationFramesPerS: m.rafS, kbps: m.kbpsS, cpuPct: m.cpuS, captureToDrawn: m.c2d })),
        drawPaths,
        trips: Object.fromEntries(trips),
        pageErrors,
        lost: Object.fromEntries(lost),
      },
    };
  } finally {
    for (const s of sessions) await s.page.evaluate(() => window.bench.stop()).catch(() => undefined);
    await vnc?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    if (gw) await gw.stop();
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

