#!/usr/bin/env node
// `uve`: a command-line UC. `uve play` logs in, requests a UA (UVE-1), connects to the selected VM
// (UVE-3), decodes the Output Stream, optionally sends input, saves pictures as PNG and prints
// frame rate and latency figures.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { InputEvent, ReconnectionMethod, VideoCodec } from '@uve/protocol';
import { nodeDecoderFactory } from './decoders';
import { GatewayClient, GatewayError } from './gateway-client';
import { packUa } from './pack';
import { StreamClient, StreamCloseError, type FrameEvent } from './stream-client';

const MAIN_HELP = `uve - command-line UVE client

Usage:
  uve play <ua-name-or-id> --gateway URL --user U --password P [options]
  uve pack <folder> --out FILE
  uve --help | uve play --help | uve pack --help

Commands:
  play    request a UA, stream it, optionally send input, save frames as PNG
  pack    check a UA folder's manifest and build its package (tar.gz); prints sha256 and size`;

const PACK_HELP = `uve pack <folder> --out FILE - build a UA package (docs/packages.md)

Checks <folder>/manifest.json and the files, writes a reproducible tar.gz to FILE and prints a
JSON line {"file","sha256","sizeBytes","files","manifest"}: what a storefront declares in
provideApplication (sha256, sizeBytes) next to the package's URL.

Options:
  --out FILE           where to write the package (required)
  -h, --help           this help

Exit status: 0 when the package was written, 1 when the folder is not a valid UA, 2 on bad usage.`;

const PLAY_HELP = `uve play <ua-name-or-id> - request a UA and stream it

Options:
  --gateway URL        base URL of the UVE gateway (VMM), e.g. http://127.0.0.1:4000  (required)
  --user U             user name (required)
  --password P         password (required)
  --codec C            H264 or MJPEG (default H264)
  --width W            terminal screen width  (default 1280)
  --height H           terminal screen height (default 720)
  --fps N              highest frame rate the terminal wants (default 30)
  --frames N           stop after N decoded frames (default 30)
  --timeout S          stop after S seconds even with fewer frames (default 20)
  --out DIR            save the last frame as DIR/last.png
  --every N            with --out: also save every Nth frame as DIR/frame-<seq>.png
  --type TEXT          after the first frame, type TEXT (text input)
  --keys K1,K2,...     after the first frame, press these keys (KeyboardEvent.key names, e.g. Enter,ArrowUp,a)
  --click X,Y          after the first frame, click at stream pixel X,Y
  --method M           reconnection method: NORMAL or NO_LOSS (default NORMAL); after a drop the
                       client asks for the UA again by itself and prints how it came back
  --keep               do not end the session at the end (leave it to the VMM)
  -h, --help           this help

Exit status: 0 when at least one frame was decoded, 1 on errors, 2 on bad usage.`;

class UsageError extends Error {}

interface PlayArgs {
  ua: string;
  gateway: string;
  user: string;
  password: string;
  codec: VideoCodec;
  width: number;
  height: number;
  fps: number;
  frames: number;
  timeoutS: number;
  out: string | null;
  every: number;
  type: string | null;
  keys: string[];
  click: { x: number; y: number } | null;
  keep: boolean;
  method: ReconnectionMethod;
}

function parsePlay(argv: string[]): PlayArgs | null {
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  const boolean = new Set(['keep', 'help', 'h']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h') return null;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (boolean.has(name)) flags.set(name, true);
      else if (eq > 0) flags.set(name, a.slice(eq + 1));
      else if (i + 1 < argv.length) flags.set(name, argv[++i]);
      else throw new UsageError(`--${name} needs a value`);
    } else positional.push(a);
  }
  if (flags.has('help')) return null;
  const known = new Set(['gateway', 'user', 'password', 'codec', 'width', 'height', 'fps', 'frames', 'timeout', 'out', 'every', 'type', 'keys', 'click', 'keep', 'method', 'help']);
  for (const k of flags.keys()) if (!known.has(k)) throw new UsageError(`unknown option --${k}`);
  const str = (k: string): string | null => {
    const v = flags.get(k);
    return typeof v === 'string' ? v : null;
  };
  const need = (k: string): string => {
    const v = str(k);
    if (!v) throw new UsageError(`--${k} is required`);
    return v;
  };
  const num = (k: string, def: number, min: number, max: number): number => {
    const v = str(k);
    if (v === null) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${k} must be an integer in [${min}, ${max}]`);
    return n;
  };
  if (positional.length !== 1) throw new UsageError('give exactly one UA name or id');
  const codec = (str('codec') ?? 'H264').toUpperCase();
  if (codec !== 'H264' && codec !== 'MJPEG') throw new UsageError('--codec must be H264 or MJPEG');
  const method = (str('method') ?? 'NORMAL').toUpperCase();
  if (method !== 'NORMAL' && method !== 'NO_LOSS') throw new UsageError('--method must be NORMAL or NO_LOSS');
  let click: PlayArgs['click'] = null;
  const c = str('click');
  if (c) {
    const m = /^(\d+),(\d+)$/.exec(c);
    if (!m) throw new UsageError('--click must be X,Y');
    click = { x: Number(m[1]), y: Number(m[2]) };
  }
  return {
    ua: positional[0],
    gateway: need('gateway'),
    user: need('user'),
    password: need('password'),
    codec,
    method,
    width: num('width', 1280, 16, 4096),
    height: num('height', 720, 16, 4096),
    fps: num('fps', 30, 1, 120),
    frames: num('frames', 30, 1, 1_000_000),
    timeoutS: num('timeout', 20, 1, 86_400),
    out: str('out'),
    every: num('every', 0, 0, 1_000_000),
    type: str('type'),
    keys: (str('keys') ?? '').split(',').map((k) => k.trim()).filter(Boolean),
    click,
    keep: flags.get('keep') === true,
  };
}

/** KeyboardEvent.code for a key name, good enough for a CLI (letters, digits, named keys). */
function codeFor(key: string): string {
  if (/^[a-z]$/i.test(key)) return `Key${key.toUpperCase()}`;
  if (/^\d$/.test(key)) return `Digit${key}`;
  if (key === ' ') return 'Space';
  return key;
}

const pct = (xs: number[], p: number): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (n: number): string => (Number.isFinite(n) ? `${n.toFixed(1)} ms` : 'n/a');

async function savePng(f: FrameEvent, file: string): Promise<void> {
  const d = f.decoded!;
  await sharp(Buffer.from(d.data.buffer, d.data.byteOffset, d.data.byteLength), { raw: { width: d.width, height: d.height, channels: 4 } }).png().toFile(file);
}

async function play(a: PlayArgs): Promise<number> {
  const gw = new GatewayClient(a.gateway);
  await gw.login(a.user, a.password);
  const uas = await gw.uas();
  const ua = uas.find((u) => u.id === a.ua) ?? uas.find((u) => u.name.toLowerCase() === a.ua.toLowerCase());
  if (!ua) throw new Error(`no UA ${JSON.stringify(a.ua)} (available: ${uas.map((u) => u.name).join(', ') || 'none'})`);

  const t0 = performance.now();
  // `sessionId`: a reconnection names the session it was in (its drop may not have reached the VMM yet)
  const request = async (sessionId?: string) => {
    const s = await gw.requestApplication({
      uaId: ua.id,
      terminal: { screenWidth: a.width, screenHeight: a.height, pixelRatio: 1, codecs: [a.codec], maxFrameRate: a.fps, localResources: [], touch: false, platform: 'uve-cli' },
      reconnectionMethod: a.method,
      sessionId,
    });
    if (!s.connection) throw new Error(`session ${s.id} has no connection (state ${s.state})`);
    return { ...s, connection: s.connection };
  };
  // the H264 decoder's ffmpeg starts before the request, as a browser's page and decoder are up
  // before its user picks an app: its start (exec, libraries) is then off the first picture's way
  // and off the cores the VM starts the session on (docs/performance.md, session)
  const decoder = nodeDecoderFactory({ fps: a.fps, codecs: [a.codec] });
  decoder.prepare!();
  let opened: StreamClient | null = null;
  try {
    let session = await request();
    const tAssigned = performance.now();

    if (a.out) await mkdir(a.out, { recursive: true });
    // after a drop: ask for the UA again (seed B.1), which resumes the session, with its VM Data
    const client = new StreamClient({
      browserResources: false,
      reconnect: async () => {
        session = await request(session.id);
        return session.connection;
      },
    });
    opened = client;
    const say = (line: string) => process.stderr.write(`uve: ${line}\n`);
    client.on('state', (e) => say(`${e.state}`));
    client.on('reconnected', (e) => say(`reconnected to session ${e.sessionId} after ${e.attempts} attempt(s)`));
    client.on('restored', (e) => say(`VM Data ${e.snapshotId} (${e.kind}) restored${e.preparedAhead ? ' (prepared while you were away)' : ''}`));
    client.on('fresh', (e) => say(`VM Data ${e.snapshotId} not restored, the UA started afresh: ${e.reason}`));
    const latencies: number[] = [];
    const inputLatencies: number[] = [];
    const pendingInputs: Array<{ seq: number; at: number }> = [];
    let frames = 0;
    let firstFrameAt = 0;
    let last: FrameEvent | null = null;
    let saving: Promise<unknown> = Promise.resolve();
    let inputSent = false;

    const done = new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), a.timeoutS * 1000);
      client.on('ended', (e) => resolve(`session ended: ${e.reason}`));
      client.on('state', (e) => {
        if (e.state !== 'ended') return; // also when reconnecting gave up
        clearTimeout(timer);
        resolve('the connection ended');
      });
      client.on('close', (e) => {
        if (e.reconnecting) return;
        clearTimeout(timer);
        resolve(`connection closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`);
      });
      client.on('error', (e) => process.stderr.write(`uve: ${e.message}\n`));
      client.on('frame', (f) => {
        const now = performance.now();
        frames++;
        last = f;
        if (!firstFrameAt) firstFrameAt = now;
        // the first frame may be a keyframe kept from before the UC connected: not a latency sample
        if (client.clock && frames > 1) latencies.push(client.latencyOf(f.header));
        while (pendingInputs.length && f.header.inputSeq >= pendingInputs[0].seq) inputLatencies.push(now - pendingInputs.shift()!.at);
        if (a.out && a.every > 0 && frames % a.every === 0) saving = saving.then(() => savePng(f, join(a.out!, `frame-${f.header.seq}.png`)));
        if (!inputSent) {
          inputSent = true;
          const sendAll = (evs: InputEvent[]): void => {
            for (const ev of evs) pendingInputs.push({ seq: client.sendInput(ev), at: performance.now() });
          };
          if (a.click) sendAll([{ kind: 'pointer', type: 'down', button: 0, ...a.click }, { kind: 'pointer', type: 'up', button: 0, ...a.click }]);
          for (const k of a.keys) sendAll([{ kind: 'key', type: 'down', code: codeFor(k), key: k }, { kind: 'key', type: 'up', code: codeFor(k), key: k }]);
          if (a.type) sendAll([{ kind: 'text', text: a.type }]);
        }
        if (frames >= a.frames) {
          clearTimeout(timer);
          resolve('frames');
        }
      });
    });

    const welcome = await client.connect({
      url: session.connection.url,
      token: session.connection.token,
      decoder,
    });
    const tWelcome = performance.now();
    process.stderr.write(`uve: session ${session.id} on VM ${session.connection.vmId}: ${welcome.codec} ${welcome.width}x${welcome.height} up to ${welcome.maxFps} fps (${welcome.role})\n`);

    const why = await done;
    const elapsed = (performance.now() - (firstFrameAt || tWelcome)) / 1000;
    if (client.connected) await client.bye().catch(() => undefined);
    await client.drain();
    await saving;
    if (a.out && last) await savePng(last, join(a.out, 'last.png'));
    if (!a.keep) await gw.endSession(session.id).catch((e: Error) => process.stderr.write(`uve: could not end the session: ${e.message}\n`));

    const lines = [
      `frames: ${frames} in ${elapsed.toFixed(2)} s (${frames > 1 ? ((frames - 1) / elapsed).toFixed(1) : '0'} fps), stopped by ${why}`,
      `request -> VM assigned: ${ms(tAssigned - t0)}; connect -> welcome: ${ms(tWelcome - tAssigned)}; welcome -> first frame: ${ms(firstFrameAt ? firstFrameAt - tWelcome : NaN)}`,
      `capture -> decoded latency: p50 ${ms(pct(latencies, 50))}, p95 ${ms(pct(latencies, 95))} (clock offset ${client.clock ? ms(client.clock.offsetMs) : 'n/a'}, rtt ${client.clock ? ms(client.clock.rttMs) : 'n/a'})`,
    ];
    if (inputLatencies.length) {
      lines.push(`first input -> decoded frame: ${ms(inputLatencies[0])}`);
      if (inputLatencies.length > 1) lines.push(`all ${inputLatencies.length} inputs (sent at once) -> decoded frame: p50 ${ms(pct(inputLatencies, 50))}, max ${ms(Math.max(...inputLatencies))} (frames are capped at ${welcome.maxFps} fps)`);
    }
    if (a.out && last) lines.push(`saved ${join(a.out, 'last.png')}`);
    process.stdout.write(lines.join('\n') + '\n');
    if (!frames) throw new Error(`no frame decoded (${why})`);
    return 0;
  } finally {
    // every way out, an error before the stream connected too: the connection (and its
    // reconnecting) ends, and no ffmpeg outlives the command, whether a decoder took it or not
    if (opened && opened.state !== 'ended') opened.close();
    await opened?.drain();
    decoder.release!();
  }
}

export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(MAIN_HELP + '\n');
    return cmd ? 0 : 2;
  }
  if (cmd === 'pack') return runPack(rest);
  if (cmd !== 'play') {
    process.stderr.write(`uve: unknown command ${cmd}\n\n${MAIN_HELP}\n`);
    return 2;
  }
  let args: PlayArgs | null;
  try {
    args = parsePlay(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`uve play: ${e.message}\n(see uve play --help)\n`);
      return 2;
    }
    throw e;
  }
  if (!args) {
    process.stdout.write(PLAY_HELP + '\n');
    return 0;
  }
  try {
    return await play(args);
  } catch (e) {
    const msg = e instanceof GatewayError ? `gateway refused (${e.code}): ${e.message}` : e instanceof StreamCloseError ? `VM refused the connection: ${e.message}` : (e as Error).message;
    process.stderr.write(`uve: ${msg}\n`);
    return 1;
  }
}

async function runPack(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(PACK_HELP + '\n');
    return 0;
  }
  const folders: string[] = [];
  let out: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--out') out = argv[++i] ?? null;
    else if (a.startsWith('--out=')) out = a.slice(6);
    else if (a.startsWith('-')) {
      process.stderr.write(`uve pack: unknown option ${a}\n(see uve pack --help)\n`);
      return 2;
    } else folders.push(a);
  }
  if (folders.length !== 1 || !out) {
    process.stderr.write(`uve pack: give one folder and --out FILE\n(see uve pack --help)\n`);
    return 2;
  }
  try {
    const r = await packUa(folders[0]!, out);
    process.stdout.write(JSON.stringify({ file: out, sha256: r.sha256, sizeBytes: r.sizeBytes, files: r.files, manifest: r.manifest }) + '\n');
    return 0;
  } catch (e) {
    process.stderr.write(`uve pack: ${(e as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`uve: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
