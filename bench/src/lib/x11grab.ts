// The baselines' fixed-clock pipeline: the same X program (the LINUX_X11 probe UA) in its own Xvfb,
// captured by `ffmpeg -f x11grab` on a fixed clock, x264 ultrafast/zerolatency, access units read
// from FLV on stdout (the VM agent's own FLV reader) and decoded by the same Node decoder the UVE
// client uses. The stream bench's baseline (startX11grabBaseline) keeps it running and injects input
// through one persistent XTest connection (no cursor drawn: it sits on the centre pixel the check
// reads): what a blind-clock pipeline gives on this machine now. The session bench's starts it on
// request (spawnX11grab) and times its first picture.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createNodeDecoder, type FrameDecoder } from '@uve/client';
import { startProbeDisplay, type ProbeDisplay } from './probe-display';
import { ROOT, until } from './services';
import { now } from './report';

export interface Baseline {
  /** sends a key press (and release) to the probe; resolves with the latency to the decoded frame that shows it */
  roundTrip(): Promise<number>;
  close(): Promise<void>;
}

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

/** `ffmpeg -f x11grab` of the probe's display at `fps` (its own clock), x264 ultrafast/zerolatency, FLV on stdout. */
export function spawnX11grab(probe: Pick<ProbeDisplay, 'display' | 'env'>, opts: { width: number; height: number; fps: number }, sink: X11grabSink): ChildProcess {
  const parser = new (agentFlv().FlvParser)();
  const ffmpeg = spawn('ffmpeg', [
    '-hide_banner', '-nostdin', '-loglevel', 'error', '-f', 'x11grab', '-draw_mouse', '0', '-framerate', String(opts.fps), '-video_size', `${opts.width}x${opts.height}`, '-i', probe.display,
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', String(opts.fps * 10),
    '-f', 'flv', '-flvflags', 'no_duration_filesize', 'pipe:1',
  ], { env: probe.env, stdio: ['ignore', 'pipe', 'inherit'] });
  ffmpeg.stdout!.on('data', (chunk: Buffer) => {
    for (const ev of parser.push(chunk)) {
      if (ev.type === 'config') sink.config(ev.avcC);
      else sink.frame(ev.keyframe, ev.data);
    }
  });
  return ffmpeg;
}

export async function startX11grabBaseline(opts: { display: number; width: number; height: number; fps: number }): Promise<Baseline> {
  const probe = await startProbeDisplay(opts);
  const { display, close } = probe;
  try {
    const x11 = require(path.join(ROOT, 'node_modules/x11'));
    const X = await new Promise<any>((resolve, reject) => x11.createClient({ display }, (e: Error | null, d: any) => (e ? reject(e) : resolve(d))));
    const root = X.screen[0].root;
    const xtest = await new Promise<any>((resolve, reject) => X.client.require('xtest', (e: Error | null, t: any) => (e ? reject(e) : resolve(t))));
    let decoder: FrameDecoder | null = null;
    let lastCentre = -1;
    let waiting: { before: number; resolve: (t: number) => void } | null = null;
    let queue = Promise.resolve();
    probe.own(spawnX11grab(probe, opts, {
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
    }));
    await until('the first x11grab frame decoded', 15_000, async () => lastCentre >= 0);
    const roundTrip = (ms = 5000) => new Promise<number>((resolve, reject) => {
      const t = now();
      const timer = setTimeout(() => {
        waiting = null;
        reject(new Error(`x11grab baseline: no changed frame in ${ms} ms`));
      }, ms);
      waiting = { before: lastCentre, resolve: (at) => { clearTimeout(timer); resolve(at - t); } };
      xtest.FakeInput(xtest.KeyPress, 38, 0, root, 0, 0);
      xtest.FakeInput(xtest.KeyRelease, 38, 0, root, 0, 0);
    });
    // the probe takes its key presses once it listens: until then a press changes nothing
    await until('the probe answering key presses', 20_000, () => roundTrip(1000).then(() => true));
    return {
      roundTrip: () => roundTrip(),
      close: async () => {
        X.client.terminate?.();
        await decoder?.close();
        await close();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}
