// bench/session's baselines, sampled in turns with its own samples: the raw parts of a session's
// start without the platform.
// - warm: the LINUX_X11 probe already running in its own Xvfb (as a warm VM's UA runtime is up), and
//   on request the x11grab pipeline (lib/x11grab.ts) started: its first picture decoded by the SDK's
//   Node decoder, its ffmpeg prepared at the same instant (the Node client prepares it when the
//   stream opens), or relayed over a bare WebSocket to the bench page, decoded by WebCodecs and drawn
//   into the same prepared canvas (browser-page/raw-h264.ts).
// - cold: the floor of what starts a VM: the agent image run by the engine with the gateway's own
//   container options (dockerode, host network, limits, init) and a trivial command (`node -e ''`),
//   create -> exited; for a PROCESS VM, a bare `node -e ''` spawned -> exited.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { nodeDecoderFactory, type FrameDecoderLike } from '@uve/client';
import type { Page } from './browser';
import type { UaDisplay } from './ua-display';
import { now } from './report';
import { ROOT, stopChild } from './services';
import { agentFlv, spawnX11grab, type X11grabSink } from './x11grab';

/** One baseline sample: when it started and its stages, ms since epoch (the host's one clock). */
export interface BaselineSample {
  t0: number;
  at: Record<string, number>;
}
export interface BaselineRunner {
  /**
   * Readies a sample (the browser's page opened and prepared, as the web client's is before the
   * bench's pause) and returns its start: t0 is taken when that is called.
   */
  ready(): Promise<() => Promise<BaselineSample>>;
  close(): Promise<void>;
}

const FIRST_PICTURE_MS = 15_000;
type Stream = { width: number; height: number; fps: number };

/**
 * The pipeline started at t0 and fed to `sink` until `done` settles; stops ffmpeg either way.
 * at.avcAt / at.auAt: the avcC record and the first access unit out of ffmpeg (read by the bench).
 */
async function x11grabRun(probe: UaDisplay, stream: Stream, at: Record<string, number>, sink: X11grabSink, done: Promise<void>): Promise<void> {
  const child: ChildProcess = spawnX11grab(probe, stream, {
    config: (avcC) => {
      at.avcAt ||= now();
      sink.config(avcC);
    },
    frame: (keyframe, data) => {
      at.auAt ||= now();
      sink.frame(keyframe, data);
    },
  });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`x11grab ffmpeg exited (${code}) before the first picture`))));
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`x11grab baseline: no picture in ${FIRST_PICTURE_MS} ms`)), FIRST_PICTURE_MS)));
  try {
    await Promise.race([done, exited, bound]);
  } finally {
    clearTimeout(timer);
    await stopChild(child, 3000);
  }
}

/** Warm, Node: x11grab's first picture out of the SDK's Node decoder. */
export function x11grabNodeBaseline(probe: UaDisplay, stream: Stream): BaselineRunner {
  return {
    ready: async () => async () => {
      const factory = nodeDecoderFactory({ codecs: ['H264'], fps: stream.fps });
      let decoder: FrameDecoderLike | null = null;
      const at: Record<string, number> = {};
      const t0 = now();
      factory.prepare!();
      let decoded!: (t: number) => void;
      let failed!: (e: Error) => void;
      const done = new Promise<number>((resolve, reject) => ((decoded = resolve), (failed = reject)));
      try {
        await x11grabRun(probe, stream, at, {
          config: (avcC) => {
            at.codec = now();
            decoder = factory({ codec: 'H264', mime: '', width: stream.width, height: stream.height, description: avcC });
          },
          frame: (keyframe, data) => {
            if (at.firstFrame || !decoder) return;
            at.firstFrame = now();
            decoder.decode(data, keyframe).then(() => decoded(now()), failed);
          },
        }, done.then(() => undefined));
        at.decoded = await done;
        return { t0, at };
      } finally {
        await (decoder as FrameDecoderLike | null)?.close().catch(() => undefined);
        factory.release?.();
      }
    },
    close: async () => undefined,
  };
}

/**
 * Warm, browser: x11grab's access units relayed as they come over a WebSocket of this process to
 * a bench page opened and prepared before t0 (as the web client's is), decoded and drawn there.
 */
export async function x11grabBrowserBaseline(probe: UaDisplay, stream: Stream, openPage: () => Promise<Page>): Promise<BaselineRunner> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve, reject) => wss.once('listening', resolve).once('error', reject));
  const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
  const { avcCodecString } = agentFlv();
  return {
    async ready() {
      const page = await openPage();
      return async () => {
        const at: Record<string, number> = {};
        let socket: WebSocket | null = null;
        const pending: (string | Uint8Array)[] = [];
        const send = (m: string | Uint8Array): void => void (socket ? socket.send(m) : pending.push(m));
        const onConnection = (ws: WebSocket): void => {
          socket = ws;
          for (const m of pending.splice(0)) ws.send(m);
        };
        wss.once('connection', onConnection);
        try {
          const t0 = now();
          const played = page.evaluate(([u, ms]) => window.bench.playRaw(u, ms), [url, FIRST_PICTURE_MS] as const);
          await x11grabRun(probe, stream, at, {
            config: (avcC) => send(JSON.stringify({ codec: avcCodecString(avcC), width: stream.width, height: stream.height, description: Buffer.from(avcC).toString('base64') })),
            frame: (_keyframe, data) => send(data),
          }, played.then(() => undefined));
          const f = await played;
          return { t0, at: { ...at, calledAt: f.calledAt, codec: f.codecAt, firstFrame: f.receivedAt, decoded: f.decodedAt, drawn: f.drawnAt } };
        } finally {
          wss.off('connection', onConnection);
          (socket as WebSocket | null)?.terminate();
          await page.close().catch(() => undefined);
        }
      };
    },
    close: () => new Promise<void>((resolve) => wss.close(() => resolve())),
  };
}

/**
 * Cold DOCKER: the engine's floor. The agent image with the container options the gateway's DOCKER
 * provider gives a VM (its own code), the entrypoint replaced by `node -e ''`, no health check, a
 * label of its own; created, started, waited for, then removed (not timed).
 */
export function containerFloor(): BaselineRunner {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DockerProvider, defaultImages } = require(path.join(ROOT, 'apps/gateway/dist/modules/vms/providers/docker.provider.js'));
  // the image the bench's gateway runs (UVE_VM_IMAGE_WASM is passed on to it)
  const image: string = process.env.UVE_VM_IMAGE_WASM ?? defaultImages().WASM;
  const provider = new DockerProvider({ images: { WASM: image, LINUX_X11: image } });
  return {
    ready: async () => async () => {
      const id = crypto.randomUUID();
      const spec = { vmId: id, name: 'floor', platform: 'WASM', capacity: 1, secret: id, gatewayUrl: 'http://127.0.0.1:9', redisUrl: 'redis://127.0.0.1:9', queuePrefix: 'floor' };
      const options = { ...provider.containerOptions(spec), name: `uve-bench-floor-${id}`, Labels: { 'uve.bench': 'session-floor' }, Entrypoint: ['/usr/bin/node', '-e', ''], Cmd: [], Healthcheck: { Test: ['NONE'] } };
      const t0 = now();
      const c = await provider.docker.createContainer(options);
      try {
        const floorCreated = now();
        await c.start();
        const floorStarted = now();
        const r = (await c.wait()) as { StatusCode: number };
        const floorExited = now();
        if (r.StatusCode !== 0) throw new Error(`the floor container exited with ${r.StatusCode}`);
        return { t0, at: { floorCreated, floorStarted, floorExited } };
      } finally {
        await c.remove({ force: true, v: true }).catch(() => undefined);
      }
    },
    close: async () => provider.close(),
  };
}

/** A PROCESS VM's floor: the node binary the agent runs on, `node -e ''`, spawned -> exited. */
export function processFloor(): BaselineRunner {
  return {
    ready: async () => async () => {
      const t0 = now();
      const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
      const code = await new Promise<number | null>((resolve, reject) => child.once('exit', resolve).once('error', reject));
      if (code !== 0) throw new Error(`node -e '' exited with ${code}`);
      return { t0, at: { floorExited: now() } };
    },
    close: async () => undefined,
  };
}
