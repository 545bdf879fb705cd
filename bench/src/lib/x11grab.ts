// The stream bench's baseline: the same X program (the LINUX_X11 probe UA) in its own Xvfb, captured
// by `ffmpeg -f x11grab` on a fixed clock at the same fps, x264 ultrafast/zerolatency, access units
// read from FLV on stdout and decoded by the same Node decoder the UVE client uses; input injected
// through one persistent XTest connection (no cursor drawn: it sits on the centre pixel the check reads). What a blind-clock pipeline gives on this machine now.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createNodeDecoder, type FrameDecoder } from '@uve/client';
import { startProbeDisplay } from './probe-display';
import { ROOT, until } from './services';
import { now } from './report';

export interface Baseline {
  /** sends a key press (and release) to the probe; resolves with the latency to the decoded frame that shows it */
  roundTrip(): Promise<number>;
  close(): Promise<void>;
}

/** FLV video tags from a byte stream: (avcPacketType, data) for each, data being AVCC (or the avcC record). */
function flvReader(onTag: (type: number, keyframe: boolean, data: Buffer) => void): (chunk: Buffer) => void {
  let buf = Buffer.alloc(0);
  let headerDone = false;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (!headerDone) {
      if (buf.length < 13) return;
      buf = buf.subarray(13); // FLV header (9) + PreviousTagSize0 (4)
      headerDone = true;
    }
    while (buf.length >= 11) {
      const size = buf.readUIntBE(1, 3);
      if (buf.length < 11 + size + 4) return;
      if (buf[0] === 9) {
        const body = buf.subarray(11, 11 + size);
        onTag(body[1]!, body[0]! >> 4 === 1, Buffer.from(body.subarray(5)));
      }
      buf = buf.subarray(11 + size + 4);
    }
  };
}

export async function startX11grabBaseline(opts: { display: number; width: number; height: number; fps: number }): Promise<Baseline> {
  const probe = await startProbeDisplay(opts);
  const { display, env, close } = probe;
  try {
    const x11 = require(path.join(ROOT, 'node_modules/x11'));
    const X = await new Promise<any>((resolve, reject) => x11.createClient({ display }, (e: Error | null, d: any) => (e ? reject(e) : resolve(d))));
    const root = X.screen[0].root;
    const xtest = await new Promise<any>((resolve, reject) => X.client.require('xtest', (e: Error | null, t: any) => (e ? reject(e) : resolve(t))));
    const ffmpeg = spawn('ffmpeg', [
      '-hide_banner', '-nostdin', '-loglevel', 'error', '-f', 'x11grab', '-draw_mouse', '0', '-framerate', String(opts.fps), '-video_size', `${opts.width}x${opts.height}`, '-i', display,
      '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-g', String(opts.fps * 10),
      '-f', 'flv', '-flvflags', 'no_duration_filesize', 'pipe:1',
    ], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    probe.own(ffmpeg);
    let decoder: FrameDecoder | null = null;
    let lastCentre = -1;
    let waiting: { before: number; resolve: (t: number) => void } | null = null;
    let queue = Promise.resolve();
    ffmpeg.stdout!.on('data', flvReader((type, keyframe, data) => {
      if (type === 0) {
        decoder = createNodeDecoder({ codec: 'H264', width: opts.width, height: opts.height, description: data, fps: opts.fps });
        return;
      }
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
