// The naive way to stream an X program, as the stream and density benches' baseline: the program (a
// LINUX_X11 sample UA, lib/ua-display.ts) in its own Xvfb, captured by `ffmpeg -f x11grab` on a
// fixed clock at the fps asked for, x264 ultrafast/zerolatency, access units read from FLV on
// stdout; input injected through one persistent XTest connection, keys translated by the VM agent's
// own keyboard (the keycodes a UVE session's key events become). No cursor drawn.
// - startX11grabBaseline (stream): the probe, every picture decoded by the Node decoder the UVE
//   client uses; the frame showing a key press is the one whose centre pixel changed.
// - startX11grabPipeline (density): any sample, nothing decoded (as density's UVE clients decode
//   nothing); the same ffmpeg also writes a small region of every captured picture, uncompressed,
//   and the frame showing an input is the access unit with the index of the first picture in which
//   that region changed.
// - spawnX11grab (session): the pipeline alone, started on request against a display already
//   running; the session bench times its first picture.
// FLV is read by the VM agent's own reader (agentFlv).
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createNodeDecoder, type FrameDecoder } from '@uve/client';
import type { InputEvent } from '@uve/protocol';
import { startUaDisplay, type UaDisplay } from './ua-display';
import { ROOT, until } from './services';
import { now } from './report';

export interface Baseline {
  /** sends a key press (and release) to the probe; resolves with the latency to the decoded frame that shows it */
  roundTrip(): Promise<number>;
  close(): Promise<void>;
}

/** A rectangle of the screen, in pixels. */
export interface Region { x: number; y: number; width: number; height: number }

/** What an x11grab pipeline gives, as it comes: the avcC record once, then one access unit (AVCC) per frame. */
export interface X11grabSink {
  config(avcC: Uint8Array): void;
  frame(keyframe: boolean, data: Uint8Array): void;
}

type FlvEvent = { type: 'config'; avcC: Uint8Array } | { type: 'video'; keyframe: boolean; data: Uint8Array };

/** The VM agent's FLV tag reader and WebCodecs codec string (the agent is built before any bench runs). */
export function agentFlv(): { FlvParser: new () => { push(chunk: Uint8Array): FlvEvent[] }; avcCodecString(avcC: Uint8Array): string } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(path.join(ROOT, 'apps/vm-agent/dist/encoders/flv.js'));
}

/** `ffmpeg -f x11grab` of `display` at `fps` on its own clock, then x264 ultrafast/zerolatency to FLV on stdout. */
function x11grabArgs(display: string, o: { width: number; height: number; fps: number }): { grab: string[]; h264: string[] } {
  return {
    grab: ['-hide_banner', '-nostdin', '-loglevel', 'error', '-f', 'x11grab', '-draw_mouse', '0', '-framerate', String(o.fps), '-video_size', `${o.width}x${o.height}`, '-i', display],
    h264: ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', String(o.fps * 10), '-f', 'flv', '-flvflags', 'no_duration_filesize', 'pipe:1'],
  };
}

/** Reads the pipeline's FLV from `stdout` into `sink`. */
function readFlv(stdout: NodeJS.ReadableStream, sink: X11grabSink): void {
  const parser = new (agentFlv().FlvParser)();
  stdout.on('data', (chunk: Buffer) => {
    for (const ev of parser.push(chunk)) {
      if (ev.type === 'config') sink.config(ev.avcC);
      else sink.frame(ev.keyframe, ev.data);
    }
  });
}

/** The pipeline alone against a display already running (its program's picture already there). */
export function spawnX11grab(ua: Pick<UaDisplay, 'display' | 'env'>, opts: { width: number; height: number; fps: number }, sink: X11grabSink): ChildProcess {
  const { grab, h264 } = x11grabArgs(ua.display, opts);
  const ffmpeg = spawn('ffmpeg', [...grab, ...h264], { env: ua.env, stdio: ['ignore', 'pipe', 'inherit'] });
  readFlv(ffmpeg.stdout!, sink);
  return ffmpeg;
}

/** What startX11grab reports as it comes. */
interface Sinks extends X11grabSink {
  /** with a watched region: that region of each captured picture, one grey byte per pixel, in capture order */
  watch?(picture: Buffer): void;
}

interface X11grab {
  ua: UaDisplay;
  /** presses or releases a key given as a DOM code and key, translated as a UVE X11 session translates it */
  key(code: string, key: string, down: boolean): void;
  close(): Promise<void>;
}

async function startX11grab(o: { ua?: string; display?: number; width: number; height: number; fps: number; watch?: Region }, sinks: Sinks): Promise<X11grab> {
  const ua = await startUaDisplay(o);
  try {
    const x11 = require(path.join(ROOT, 'node_modules/x11'));
    const X = await new Promise<any>((resolve, reject) => x11.createClient({ display: ua.display }, (e: Error | null, d: any) => (e ? reject(e) : resolve(d))));
    const root = X.screen[0].root;
    const xtest = await new Promise<any>((resolve, reject) => X.client.require('xtest', (e: Error | null, t: any) => (e ? reject(e) : resolve(t))));
    const rows = await new Promise<number[][]>((resolve, reject) => X.client.GetKeyboardMapping(X.min_keycode, X.max_keycode - X.min_keycode + 1, (e: Error | null, r: number[][]) => (e ? reject(e) : resolve(r))));
    // the agent's keyboard (built before any bench runs); a baseline types nothing the map lacks, so it never remaps
    const { Keyboard } = require(path.join(ROOT, 'apps/vm-agent/dist/runtimes/x11/keyboard.js'));
    const keyboard = new Keyboard(X.min_keycode, rows, {
      key: (keycode: number, down: boolean) => xtest.FakeInput(down ? xtest.KeyPress : xtest.KeyRelease, keycode, 0, root, 0, 0),
      remap: () => {
        throw new Error('x11grab baseline: a key not on the X server map (the baseline sends only keys it has)');
      },
    }, Date.now);
    const { grab, h264 } = x11grabArgs(ua.display, o);
    const w = o.watch;
    // the region goes out beside the stream, frame for frame (passthrough: neither output drops or
    // repeats one; numbered, as two captures within one 1/fps tick would give the raw muxer equal timestamps)
    const args = w
      ? [...grab, '-filter_complex', `[0:v]split[v][w];[w]crop=${w.width}:${w.height}:${w.x}:${w.y},format=gray,settb=1/${o.fps},setpts=N[region]`,
        '-map', '[v]', '-fps_mode', 'passthrough', ...h264, '-map', '[region]', '-fps_mode', 'passthrough', '-f', 'rawvideo', 'pipe:3']
      : [...grab, ...h264];
    const ffmpeg = spawn('ffmpeg', args, { env: ua.env, stdio: ['ignore', 'pipe', 'inherit', w ? 'pipe' : 'ignore'] });
    ua.own(ffmpeg);
    readFlv(ffmpeg.stdout!, sinks);
    if (w && sinks.watch) {
      const size = w.width * w.height;
      let pending: Buffer = Buffer.alloc(0);
      (ffmpeg.stdio[3] as NodeJS.ReadableStream).on('data', (chunk: Buffer) => {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        for (; pending.length >= size; pending = pending.subarray(size)) sinks.watch!(Buffer.from(pending.subarray(0, size)));
      });
    }
    return {
      ua,
      key: (code, key, down) => (down ? keyboard.keyDown(code, key) : keyboard.keyUp(code, key)),
      close: async () => {
        X.client.terminate?.();
        await ua.close();
      },
    };
  } catch (e) {
    await ua.close();
    throw e;
  }
}

export async function startX11grabBaseline(opts: { display: number; width: number; height: number; fps: number }): Promise<Baseline> {
  let decoder: FrameDecoder | null = null;
  let lastCentre = -1;
  let waiting: { before: number; resolve: (t: number) => void } | null = null;
  let queue = Promise.resolve();
  const grab = await startX11grab(opts, {
    config: (avcC) => {
      decoder = createNodeDecoder({ codec: 'H264', width: opts.width, height: opts.height, description: avcC, fps: opts.fps });
    },
    frame: (keyframe, data) => {
      const d = decoder;
      if (!d) return;
      queue = queue.then(async () => {
        const f = await d.decode(data, keyframe);
        const i = ((f.height >> 1) * f.width + (f.width >> 1)) * 4;
        lastCentre = f.data[i]! + f.data[i + 1]! + f.data[i + 2]!;
        if (process.env.BENCH_DEBUG) process.stderr.write(`x11grab frame centre ${lastCentre}\n`);
        if (waiting && Math.abs(lastCentre - waiting.before) > 60) {
          const w = waiting;
          waiting = null;
          w.resolve(now());
        }
      }).catch((e: Error) => {
        if (process.env.BENCH_DEBUG) process.stderr.write(`x11grab decode: ${e.message}\n`);
      });
    },
  });
  try {
    await until('the first x11grab frame decoded', 15_000, async () => lastCentre >= 0);
    const roundTrip = (ms = 5000) => new Promise<number>((resolve, reject) => {
      const t = now();
      const timer = setTimeout(() => {
        waiting = null;
        reject(new Error(`x11grab baseline: no changed frame in ${ms} ms`));
      }, ms);
      waiting = { before: lastCentre, resolve: (at) => { clearTimeout(timer); resolve(at - t); } };
      grab.key('KeyA', 'a', true);
      grab.key('KeyA', 'a', false);
    });
    // the probe takes its key presses once it listens: until then a press changes nothing
    await until('the probe answering key presses', 20_000, () => roundTrip(1000).then(() => true));
    return {
      roundTrip: () => roundTrip(),
      close: async () => {
        await decoder?.close();
        await grab.close();
      },
    };
  } catch (e) {
    await (decoder as FrameDecoder | null)?.close(); // set by the stream's first tag
    await grab.close();
    throw e;
  }
}

export interface X11grabPipeline {
  /** pids of its Xvfb, program and ffmpeg (with their children: the CPU the pipeline costs) */
  pids(): number[];
  /**
   * sends `down`, waits (up to `timeoutMs`) for the first frame whose picture shows it, sends `up`;
   * resolves with the ms from `down` sent to that frame's access unit received, null when none came
   */
  roundTrip(down: InputEvent, up: InputEvent, timeoutMs: number): Promise<number | null>;
  close(): Promise<void>;
}

const keyOf = (e: InputEvent): { code: string; key: string; down: boolean } => {
  if (e.kind !== 'key') throw new Error(`x11grab pipeline: sends key events only, not ${e.kind}`);
  return { code: e.code, key: e.key, down: e.type === 'down' };
};

/**
 * One pipeline of `ua` for density: access units counted (`onFrame`), never decoded. The picture
 * showing an input: `watch` (a region the input changes: the probe's centre, xterm's first line,
 * scroll's marker) read from the same capture, the first of two equal pictures of it that differ
 * from the one before the input (a single odd picture, a drawing caught half done, decides nothing).
 */
export async function startX11grabPipeline(o: { ua: string; width: number; height: number; fps: number; watch: Region; onFrame: () => void }): Promise<X11grabPipeline> {
  /** arrival time of recent access units by index (capture order, as the watched pictures) */
  const arrived = new Map<number, number>();
  let units = 0;
  let pictures = 0;
  let latest: Buffer | null = null;
  /** the region as it last stood for two pictures in a row */
  let settled: Buffer | null = null;
  let waiting: { before: Buffer; candidate: { index: number; picture: Buffer } | null; shown: number | null; resolve: (at: number) => void } | null = null;
  const settle = () => {
    const w = waiting;
    const at = w?.shown !== null && w?.shown !== undefined ? arrived.get(w.shown) : undefined;
    if (!w || at === undefined) return;
    waiting = null;
    w.resolve(at);
  };
  const grab = await startX11grab(o, {
    config: () => undefined,
    frame: () => {
      arrived.set(units, now());
      arrived.delete(units - 10 * o.fps);
      units++;
      o.onFrame();
      settle();
    },
    watch: (picture) => {
      const index = pictures++;
      if (latest?.equals(picture)) settled = picture;
      latest = picture;
      const w = waiting;
      if (!w || w.shown !== null) return;
      if (picture.equals(w.before)) w.candidate = null;
      else if (w.candidate?.picture.equals(picture)) w.shown = w.candidate.index;
      else w.candidate = { index, picture };
      settle();
    },
  });
  try {
    await until('the first x11grab picture and access unit', 15_000, async () => settled !== null && units > 0);
    return {
      pids: () => grab.ua.pids(),
      roundTrip: async (down, up, timeoutMs) => {
        const d = keyOf(down);
        const u = keyOf(up);
        const t = now();
        const shown = new Promise<number | null>((resolve) => {
          const timer = setTimeout(() => {
            waiting = null;
            resolve(null);
          }, timeoutMs);
          waiting = { before: settled!, candidate: null, shown: null, resolve: (at) => { clearTimeout(timer); resolve(at); } };
        });
        grab.key(d.code, d.key, d.down);
        const at = await shown;
        grab.key(u.code, u.key, u.down);
        return at === null ? null : at - t;
      },
      close: () => grab.close(),
    };
  } catch (e) {
    await grab.close();
    throw e;
  }
}
