#!/usr/bin/env node
// bench/stream: what a user feels, measured from the client side on loopback.
// For each codec: input -> decoded frame latency (p50/p95 over N inputs sent at random phase),
// frame rate of an animating UA, and CPU per stream (the VM agent and its encoder processes).
// Starts its own gateway on embedded defaults (with a warm PROCESS VM) unless --gateway is given.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GatewayClient, StreamClient, createNodeDecoder, type FrameEvent } from '@uve/client';
import type { InputEvent, VideoCodec } from '@uve/protocol';

interface Options { gateway: string | null; user: string; password: string; inputs: number; seconds: number; width: number; height: number; codecs: VideoCodec[]; uas: string[] }

const HELP = `bench/stream: input-to-decoded-frame latency, fps and CPU per stream, per codec

Usage: node bench/dist/stream.js [--inputs N] [--seconds S] [--codecs H264,MJPEG] [--uas paint,game,probe]
                                 [--width 1280 --height 720] [--gateway URL --user U --password P]
Without --gateway it starts a gateway on embedded defaults in a temporary folder.`;

function parse(argv: string[]): Options {
  const o: Options = { gateway: null, user: 'admin', password: 'bench-admin-password', inputs: 100, seconds: 5, width: 1280, height: 720, codecs: ['MJPEG', 'H264'], uas: ['paint', 'game', 'probe'] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--help' || a === '-h') { process.stdout.write(HELP + '\n'); process.exit(0); }
    else if (a === '--gateway') o.gateway = v();
    else if (a === '--user') o.user = v();
    else if (a === '--password') o.password = v();
    else if (a === '--inputs') o.inputs = Number(v());
    else if (a === '--seconds') o.seconds = Number(v());
    else if (a === '--width') o.width = Number(v());
    else if (a === '--height') o.height = Number(v());
    else if (a === '--codecs') o.codecs = v().split(',') as VideoCodec[];
    else if (a === '--uas') o.uas = v().split(',');
    else throw new Error(`unknown argument ${a}; see --help`);
  }
  if (!(o.inputs >= 1) || !(o.seconds > 0)) throw new Error('--inputs and --seconds must be positive');
  return o;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const now = () => performance.timeOrigin + performance.now();

async function startGateway(password: string): Promise<{ url: string; child: ChildProcess; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-bench-'));
  const main = path.resolve(__dirname, '../../apps/gateway/dist/main.js');
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, UVE_DATA_DIR: dir, UVE_PORT: '0', UVE_ADMIN_PASSWORD: password, UVE_WARM_VMS: '1', UVE_POOL_PLATFORMS: 'WASM,LINUX_X11', UVE_DOCKER: 'off', UVE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b;
      const m = /listening on (http:\/\/\S+)\/graphql/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`gateway exited with ${code}`)));
  });
  return { url, child, dir };
}

/** CPU seconds used so far by a process and its direct children alive now (the agent; its ffmpeg encoders; on LINUX_X11 also Xvfb and the UA): see bench/README.md. */
function cpuSeconds(rootPid: number): number {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pid = Number(e);
      const ppid = Number(f[1]);
      if (pid === rootPid || ppid === rootPid) total += (Number(f[11]) + Number(f[12])) / tick;
    } catch {
      /* exited */
    }
  }
  return total;
}

function agentPid(vmId: string): number | null {
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/environ`, 'utf8').split('\0').includes(`UVE_VM_ID=${vmId}`)) return Number(e);
    } catch {
      /* not ours */
    }
  }
  return null;
}

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

async function measure(gw: GatewayClient, ua: string, codec: VideoCodec, o: Options) {
  const uaInfo = (await gw.uas()).find((u) => u.name === ua);
  if (!uaInfo) throw new Error(`no UA named ${ua}`);
  const request = () => gw.requestApplication({ uaId: uaInfo.id, terminal: { screenWidth: o.width, screenHeight: o.height, codecs: [codec], localResources: [], maxFrameRate: 60 } });
  // a fresh gateway's pool is still starting its first VM
  const deadline = Date.now() + 30_000;
  let session = await request().catch((e: Error) => e);
  while (session instanceof Error && /UNAVAILABLE/.test(session.message) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    session = await request().catch((e: Error) => e);
  }
  if (session instanceof Error) throw session;
  const conn = session.connection!;
  const client = new StreamClient({ browserResources: false });
  let waiting: { seq: number; shows: (f: FrameEvent) => boolean; resolve: (f: FrameEvent) => void } | null = null;
  let frames = 0;
  let bytes = 0;
  let last: FrameEvent | null = null;
  client.on('frame', (f) => {
    frames++;
    bytes += f.payload.byteLength;
    last = f;
    if (waiting && f.header.inputSeq >= waiting.seq && waiting.shows(f)) {
      const w = waiting;
      waiting = null;
      w.resolve(f);
    }
  });
  await client.connect({ url: conn.url, token: conn.token, decoder: (c) => createNodeDecoder({ codec: c.codec as 'H264' | 'MJPEG', width: c.width, height: c.height, description: c.description }) });
  const latencies: number[] = [];
  try {
    // warm up: first keyframe and encoder start are not what a running session feels
    for (let i = 0; i < 5; i++) await roundTrip(i);
    for (let i = 0; i < o.inputs; i++) {
      await new Promise((r) => setTimeout(r, Math.random() * 50)); // random phase against the VM's frame pacing
      latencies.push(await roundTrip(i));
    }
    // fps and CPU: the game animates while a round runs; paint shows what an idle stream costs
    const pid = agentPid(conn.vmId);
    const cpu0 = pid ? cpuSeconds(pid) : NaN;
    const f0 = frames;
    const b0 = bytes;
    const t0 = now();
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    const dt = (now() - t0) / 1000;
    const fps = (frames - f0) / dt;
    const cpu = pid ? ((cpuSeconds(pid) - cpu0) / dt) * 100 : NaN;
    const kbps = ((bytes - b0) * 8) / 1000 / dt;
    return { latencies, fps, cpu, kbps };
  } finally {
    await client.bye().catch(() => undefined);
    client.close();
    await gw.endSession(session.id).catch(() => undefined);
  }

  async function roundTrip(i: number): Promise<number> {
    const [down, up] = probeInput(ua, i, o);
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
  }
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const own = o.gateway ? null : await startGateway(o.password);
  const url = o.gateway ?? own!.url;
  try {
    const gw = new GatewayClient(url);
    await gw.login(o.user, o.password);
    const rows: string[] = [];
    process.stdout.write(`bench/stream: ${o.width}x${o.height}, ${o.inputs} inputs per row at random phase, ${o.seconds} s for fps/CPU, loopback, ${os.cpus().length} cores\n`);
    for (const ua of o.uas) {
      for (const codec of o.codecs) {
        const r = await measure(gw, ua, codec, o);
        rows.push(`| ${ua.padEnd(6)} | ${codec.padEnd(5)} | ${pct(r.latencies, 50).toFixed(1).padStart(6)} | ${pct(r.latencies, 95).toFixed(1).padStart(6)} | ${r.fps.toFixed(1).padStart(5)} | ${r.cpu.toFixed(0).padStart(4)} % | ${r.kbps.toFixed(0).padStart(7)} |`);
        process.stdout.write(`${rows.at(-1)}\n`);
      }
    }
    process.stdout.write(`\n| UA     | codec | p50 ms | p95 ms |   fps | CPU/stream | kbit/s |\n|--------|-------|--------|--------|-------|------|---------|\n${rows.join('\n')}\n`);
    process.stdout.write('latency = input sent -> frame that applied it decoded (Node decoder: sharp for MJPEG, ffmpeg for H264), client clock only\n');
  } finally {
    if (own) {
      own.child.kill('SIGTERM');
      await new Promise((r) => own.child.once('exit', r));
      fs.rmSync(own.dir, { recursive: true, force: true });
    }
  }
}

main().catch((e: Error) => {
  process.stderr.write(`bench/stream: ${e.message}\n`);
  process.exit(1);
});
