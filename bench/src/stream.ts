// bench/stream: input -> decoded frame latency, what a user feels, measured from the client side on
// loopback, for WASM+MJPEG, WASM+H264 and LINUX_X11+H264 at the same fps, beside a blind-clock
// baseline in the same run: the same X program captured by `ffmpeg -f x11grab` on a fixed clock
// (lib/x11grab.ts), decoded by the same Node decoder. Inputs at random phase, in repetitions that
// rotate over the cases, so the machine's drifting load hits every case alike.
import fs from 'node:fs';
import path from 'node:path';
import { GatewayClient, StreamClient, createNodeDecoder, type FrameEvent } from '@uve/client';
import type { InputEvent, VideoCodec } from '@uve/protocol';
import { fmt, header, latencySpread, now, parseArgs, spread, table, type BenchOutput } from './lib/report';
import { requestSession } from './lib/sessions';
import { ADMIN, dataDir, startGateway, startPostgres, type Gateway } from './lib/services';
import { startX11grabBaseline, type Baseline } from './lib/x11grab';

const HELP = `bench/stream: input -> decoded frame latency per platform and codec, vs a fixed-clock x11grab baseline

Usage: npm run bench -- stream [--inputs 200] [--reps 4] [--fps 30] [--cases wasm-mjpeg,wasm-h264,x11-h264,x11grab]
                               [--width 1280 --height 720] [--display 440] [--quick]
--display: the X display number the baseline's own Xvfb takes.`;

interface Options { inputs: number; reps: number; fps: number; width: number; height: number; display: number; cases: string[]; quick: boolean }

const CASES: Record<string, { label: string; ua: string; codec: VideoCodec }> = {
  'wasm-mjpeg': { label: 'WASM paint, MJPEG', ua: 'paint', codec: 'MJPEG' },
  'wasm-h264': { label: 'WASM paint, H264', ua: 'paint', codec: 'H264' },
  'x11-h264': { label: 'LINUX_X11 probe, H264', ua: 'probe', codec: 'H264' },
};

/** Brightness-ish value of the picture's centre pixel (R + G + B). */
function centre(f: FrameEvent): number {
  const d = f.decoded;
  if (!d) return -1;
  const i = ((d.height >> 1) * d.width + (d.width >> 1)) * 4;
  return d.data[i]! + d.data[i + 1]! + d.data[i + 2]!;
}

/** The input that changes the UA's picture right away (see docs/wasm-abi.md test hooks). */
function probeInput(ua: string, i: number, o: Options): InputEvent[] {
  // the LINUX_X11 probe (an X client in Xvfb) repaints its whole window on every key press
  if (ua === 'probe') return [{ kind: 'key', type: 'down', code: 'KeyA', key: 'a' }, { kind: 'key', type: 'up', code: 'KeyA', key: 'a' }];
  if (ua === 'game') return [{ kind: 'key', type: 'down', code: i % 2 ? 'ArrowLeft' : 'ArrowRight', key: i % 2 ? 'ArrowLeft' : 'ArrowRight' }, { kind: 'key', type: 'up', code: i % 2 ? 'ArrowLeft' : 'ArrowRight', key: i % 2 ? 'ArrowLeft' : 'ArrowRight' }];
  const x = 20 + ((i * 37) % (o.width - 40));
  const y = 20 + ((i * 53) % (o.height - 80));
  return [{ kind: 'pointer', type: 'down', x, y, button: 0 }, { kind: 'pointer', type: 'up', x, y, button: 0 }];
}

/** A session of the UA streamed to a Node client, ready for round trips. */
async function openCase(gw: GatewayClient, ua: string, codec: VideoCodec, o: Options): Promise<Baseline> {
  const session = await requestSession(gw, { ua, codec, width: o.width, height: o.height, fps: o.fps });
  const conn = session.connection;
  const sessionId = session.id;
  const client = new StreamClient({ browserResources: false });
  let waiting: { seq: number; shows: (f: FrameEvent) => boolean; resolve: (f: FrameEvent) => void } | null = null;
  let last: FrameEvent | null = null;
  client.on('frame', (f) => {
    last = f;
    if (waiting && f.header.inputSeq >= waiting.seq && waiting.shows(f)) {
      const w = waiting;
      waiting = null;
      w.resolve(f);
    }
  });
  await client.connect({ url: conn.url, token: conn.token, decoder: (c) => createNodeDecoder({ codec: c.codec as 'H264' | 'MJPEG', width: c.width, height: c.height, description: c.description, fps: o.fps }) });
  let i = 0;
  const roundTrip = async (): Promise<number> => {
    const [down, up] = probeInput(ua, i++, o);
    // a WASM UA handles input synchronously: the first frame with inputSeq >= seq shows it. An X
    // program repaints in its own time: wait for the frame where the probe's centre changed.
    const before = ua === 'probe' && last ? centre(last) : null;
    const shows = (fr: FrameEvent) => before === null || Math.abs(centre(fr) - before) > 60;
    const t = now();
    const seq = client.sendInput(down!);
    const f = await new Promise<FrameEvent>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no frame for input ${seq} in 5 s`)), 5000);
      waiting = { seq, shows, resolve: (fr) => { clearTimeout(timer); resolve(fr); } };
    });
    if (!f.decoded) throw new Error('frame not decoded');
    const ms = now() - t; // the frame event fires once the frame is decoded
    client.sendInput(up!);
    return ms;
  };
  // warm up: the first keyframe and the encoder start are not what a running session feels
  for (let k = 0; k < 5; k++) await roundTrip();
  return {
    roundTrip,
    close: async () => {
      await client.bye().catch(() => undefined);
      client.close();
      await gw.endSession(sessionId).catch(() => undefined);
    },
  };
}

export default async function stream(argv: string[]): Promise<BenchOutput> {
  const o: Options = parseArgs(argv, { inputs: 200, reps: 4, fps: 30, width: 1280, height: 720, display: 440, cases: ['wasm-mjpeg', 'wasm-h264', 'x11-h264', 'x11grab'], quick: false }, HELP);
  if (o.quick) Object.assign(o, { inputs: 40, reps: 2 });
  const perRep = Math.ceil(o.inputs / o.reps);
  const dir = dataDir('stream');
  const pg = await startPostgres(path.join(dir, 'pg'));
  let gw: Gateway | null = null;
  const open = new Map<string, Baseline>();
  try {
    gw = await startGateway(dir, { DATABASE_URL: pg.url, UVE_SAMPLE_UAS: 'true', UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM,LINUX_X11' });
    const client = new GatewayClient(gw.url);
    await client.login(ADMIN.username, ADMIN.password);
    for (const c of o.cases) {
      if (c === 'x11grab') continue; // started for its turn only: its fixed clock costs CPU the others would pay
      if (CASES[c]) open.set(c, await openCase(client, CASES[c].ua, CASES[c].codec, o));
      else throw new Error(`unknown case ${c}; see --help`);
    }
    process.stdout.write(`${header('stream', `${o.width}x${o.height} at ${o.fps} fps, ${o.reps} x ${perRep} inputs per case at random phase`)}\n`);
    const reps = new Map<string, number[][]>(o.cases.map((c) => [c, []]));
    for (let r = 0; r < o.reps; r++) {
      for (const c of o.cases) {
        const lat: number[] = [];
        if (c === 'x11grab') open.set(c, await startX11grabBaseline({ display: o.display, width: o.width, height: o.height, fps: o.fps }));
        for (let k = 0; k < perRep; k++) {
          await new Promise((res) => setTimeout(res, 20 + Math.random() * 40)); // random phase against any frame clock
          lat.push(await open.get(c)!.roundTrip());
        }
        if (c === 'x11grab') {
          await open.get(c)!.close();
          open.delete(c);
        }
        reps.get(c)!.push(lat);
        process.stdout.write(`  rep ${r + 1} ${c.padEnd(10)} p50 ${[...lat].sort((a, b) => a - b)[lat.length >> 1]!.toFixed(1)} ms\n`);
      }
    }
    const base = reps.get('x11grab');
    const rows = o.cases.map((c) => {
      const l = latencySpread(reps.get(c)!);
      const ratio = base && c !== 'x11grab' ? spread(reps.get(c)!.map((r, i) => percentile50(r) / percentile50(base[i]!))) : null;
      return { c, l, ratio };
    });
    const text = [
      header('stream', `${o.width}x${o.height}, ${o.fps} fps requested, ${o.reps} repetitions x ${perRep} inputs per case, loopback`),
      '',
      table(['case', 'inputs', 'p50 ms', 'p95 ms', 'p99 ms', 'p50 / x11grab p50'], rows.map(({ c, l, ratio }) => [c === 'x11grab' ? `baseline: x11grab ${o.fps} fps clock, x264` : CASES[c]!.label, String(l.samples), fmt(l.p50), fmt(l.p95), fmt(l.p99), ratio ? `${fmt(ratio, 2)}x` : ''])),
      '',
      'Latency: input sent -> the first frame that shows it, received and decoded (Node decoder: sharp for MJPEG, an ffmpeg',
      'process for H264, the same for the baseline), client clock only; median (min–max) over the repetitions.',
      'WASM: the frame whose inputSeq covers the input; X11 and baseline: the frame whose centre changed (the probe repaints).',
      'The UVE sessions stay open through the run (idle between inputs); the baseline runs only for its own turns (its fixed',
      'clock captures and encodes all the time). Its decoder outputs full RGBA like the others. Not a browser (no WebCodecs).',
    ].join('\n');
    return { text, data: { options: o, rows: rows.map(({ c, l, ratio }) => ({ case: c, ...l, ratioToBaseline: ratio, reps: reps.get(c) })) } };
  } finally {
    for (const b of open.values()) await b.close().catch(() => undefined);
    if (gw) await gw.stop();
    await pg.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const percentile50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

