// One motion session's VM side without the network, in its own process: the `game` sample on the
// WASM runtime (or the `scroll` sample on the LINUX_X11 runtime), the frame pump and the encoder of
// the agent build under `root`, a sink that takes every frame at once. Prints one JSON line: fps,
// the agent's CPU (all its threads), the encoder process's and the UA's own processes' (X11: the
// program and its Xvfb) CPU per frame, gaps between frames, encode() call -> output.
// Run by motion-frame.ts: node motion-vm.js <repo root> <fps> <seconds> <H264|MJPEG> [game|scroll <scroll package dir>]
import fs from 'node:fs';
import path from 'node:path';
import { percentile } from './report';

/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any */
const [root, fpsArg, secondsArg, codec, uaName = 'game', scrollDir = ''] = process.argv.slice(2) as [string, string, string, string, string?, string?];
const fps = Number(fpsArg);
const agent = (p: string): any => require(path.join(root, 'apps/vm-agent/dist', p));
const cpuMs = (pid: number): number => {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10; // utime + stime, 100 ticks/s
  } catch {
    return 0; // exited
  }
};

async function main(): Promise<void> {
  const x11 = uaName === 'scroll';
  // the X11 sample from this checkout (a build before it may not have it): only the agent is compared
  const runtime = x11 ? new (agent('runtimes/x11/x11-runtime.js').X11Runtime)() : new (agent('runtimes/wasm/wasm-runtime.js').WasmRuntime)();
  // the picture format the agent's session would pick (builds before I420 had none: RGBA)
  const pickFormat = agent('encoders/encoder.js').sessionPixelFormat;
  const pixelFormat = pickFormat ? pickFormat(codec, runtime.pixelFormats, 1280, 720) : undefined;
  const opts = { width: 1280, height: 720, maxFps: fps, bitrateKbps: 2000, pixelFormat };
  const encoder = codec === 'MJPEG' ? new (agent('encoders/mjpeg.js').MjpegEncoder)(opts) : new (agent('encoders/h264.js').H264Encoder)(opts);
  let pump: any = null;
  const ua = await runtime.start({
    ua: x11 ? { uaId: 'scroll', version: '1', dir: scrollDir } : { uaId: 'game', version: '1', dir: path.join(root, 'apps/vm-agent/uas/game/build') },
    width: 1280, height: 720, pixelFormat,
    resources: { request: async () => ({ ok: false, reason: 'none here' }) },
    onDamage: () => pump?.damage(),
    onExit: (e?: Error) => { if (e) process.stderr.write(`UA exited: ${e.message}\n`); },
  });
  const gaps: number[] = [];
  const encodeMs: number[] = [];
  let frames = 0;
  let last = 0;
  pump = new (agent('stream/frame-pump.js').FramePump)({
    source: { capture: () => ua.capture(), captureFull: () => ua.captureFull() },
    encoder, maxFps: fps, inputSeq: () => 0,
    onError: (e: Error) => process.stderr.write(`encode: ${e.message}\n`),
    onFrame: () => {
      const t = performance.now();
      if (last) gaps.push(t - last);
      last = t;
      encodeMs.push(pump.stats.lastEncodeMs);
      frames++;
    },
  });
  await encoder.ready();
  await pump.warmUp();
  pump.addSink({ bufferedAmount: () => 0, sendFrame: (_m: Uint8Array, written: () => void) => setImmediate(written), sendCodec: () => undefined });
  // a key starts a round (and a new one after a crash): the game animates throughout
  const press = (): void => {
    ua.input({ kind: 'key', type: 'down', code: 'ArrowLeft', key: 'ArrowLeft' });
    if (x11) ua.input({ kind: 'key', type: 'up', code: 'ArrowLeft', key: 'ArrowLeft' }); // no auto-repeat
  };
  press();
  const presser = setInterval(press, 500);
  await new Promise((r) => setTimeout(r, 1500)); // warm: JIT, the encoder's spare
  const pids = (): number[] => (codec === 'MJPEG' ? [] : Object.values(encoder.pids() as Record<string, number | undefined>).filter((p): p is number => !!p));
  const uaPids = (): number[] => (x11 ? [...ua.processes(), ua.xvfbPid] : []);
  const enc0 = new Map(pids().map((p) => [p, cpuMs(p)]));
  const ua0 = new Map(uaPids().map((p) => [p, cpuMs(p)]));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const f0 = frames;
  gaps.length = encodeMs.length = 0;
  await new Promise((r) => setTimeout(r, Number(secondsArg) * 1000));
  const n = frames - f0;
  const s = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(cpu0);
  const encoderMs = pids().reduce((a, p) => a + cpuMs(p) - (enc0.get(p) ?? 0), 0);
  const uaMs = uaPids().reduce((a, p) => a + cpuMs(p) - (ua0.get(p) ?? 0), 0);
  clearInterval(presser);
  pump.close();
  await encoder.close();
  await ua.close();
  await runtime.close();
  process.stdout.write(JSON.stringify({
    fps: n / s,
    agentMsPerFrame: (c.user + c.system) / 1000 / n,
    encoderMsPerFrame: encoderMs / n,
    uaMsPerFrame: uaMs / n,
    gapP50: percentile(gaps, 50), gapP95: percentile(gaps, 95),
    encodeP50: percentile(encodeMs, 50), encodeP95: percentile(encodeMs, 95),
  }) + '\n');
}

main().then(() => process.exit(0), (e: Error) => {
  process.stderr.write(`${e.stack ?? e.message}\n`);
  process.exit(1);
});
