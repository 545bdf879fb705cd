// bench/decoder: the Node client's H264 decoder (SDK nodeDecoderFactory: an ffmpeg started when the
// stream opens), its first picture against later ones: why a warm session's first decoded picture
// comes ~150 ms after its bytes (docs/performance.md, session).
import { spawn, spawnSync } from 'node:child_process';
import { H264Decoder, h264DecoderArgs, spawnH264Decoder } from '@uve/client';
import { fmt, header, now, parseArgs, spread, table, type BenchOutput } from './lib/report';

const HELP = `bench/decoder: the Node client's H264 decoder, first picture against later ones (1280x720)

Usage: npm run bench -- decoder [--runs 10] [--prepared 500]

--prepared: ms between the decoder's ffmpeg start and the first access unit (the session bench's
client starts it at the hello, ~150 ms before the first frame; 500 = fully started).
Frames: ffmpeg testsrc2, libx264 with the VM's settings, IDR at 0 and 5.`;

const W = 1280;
const H = 720;
const START = Uint8Array.of(0, 0, 0, 1);

interface Stream { avcC: Uint8Array; aus: { avcc: Uint8Array; annexB: Uint8Array; key: boolean }[] }

/** NAL units of an Annex B byte string (without start codes) */
function nals(b: Uint8Array): Uint8Array[] {
  const starts: number[] = [];
  for (let i = 0; i + 3 < b.length; i++) if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1) starts.push(i + 3);
  return starts.map((s, k) => {
    let end = k + 1 < starts.length ? starts[k + 1] - 3 : b.length;
    while (end > s && b[end - 1] === 0) end--; // the next start code's leading zero
    return b.subarray(s, end);
  });
}

/** six 720p frames as the VM encodes them (AUD-delimited), in AVCC with their avcC record */
function encode(): Stream {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${W}x${H}:rate=60`, '-frames:v', '6',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-profile:v', 'baseline', '-pix_fmt', 'yuv420p',
    '-x264-params', 'keyint=5:min-keyint=5:scenecut=0:bframes=0:aud=1', '-f', 'h264', 'pipe:1'], { maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`ffmpeg could not encode the test frames: ${r.stderr}`);
  let sps: Uint8Array | null = null;
  let pps: Uint8Array | null = null;
  const aus: Stream['aus'] = [];
  let cur: Uint8Array[] = [];
  const flush = (): void => {
    if (!cur.length) return;
    const key = cur.some((n) => (n[0] & 0x1f) === 5);
    const avcc = Buffer.concat(cur.flatMap((n) => [Buffer.from([n.length >>> 24, (n.length >>> 16) & 255, (n.length >>> 8) & 255, n.length & 255]), n]));
    aus.push({ avcc, annexB: Buffer.concat(cur.flatMap((n) => [START, n])), key });
    cur = [];
  };
  for (const n of nals(r.stdout)) {
    const type = n[0] & 0x1f;
    if (type === 9) flush();
    else if (type === 7) sps = n;
    else if (type === 8) pps = n;
    else if (type === 1 || type === 5) cur.push(n);
  }
  flush();
  if (!sps || !pps || aus.length < 6) throw new Error('unexpected test stream');
  const avcC = Buffer.concat([Buffer.from([1, sps[1], sps[2], sps[3], 0xff, 0xe1, sps.length >> 8, sps.length & 255]), sps, Buffer.from([1, pps.length >> 8, pps.length & 255]), pps]);
  return { avcC, aus };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** the SDK's path: a prepared ffmpeg, then H264Decoder; ms from decode() to the RGBA picture */
async function sdkRun(s: Stream, preparedMs: number): Promise<number[]> {
  const child = spawnH264Decoder(60);
  await sleep(preparedMs);
  const d = new H264Decoder(W, H, s.avcC, 60, child);
  const out: number[] = [];
  try {
    for (const i of [0, 1, 5]) {
      const t = now();
      await d.decode(s.aus[i].avcc, s.aus[i].key);
      out.push(now() - t);
      await sleep(50);
    }
  } finally {
    await d.close();
  }
  return out;
}

/** the same ffmpeg writing I420 instead of RGBA (no colour conversion, 2.7x fewer bytes); first picture only */
async function i420Run(s: Stream, preparedMs: number): Promise<number> {
  const args = h264DecoderArgs(60).map((a) => (a === 'rgba' ? 'yuv420p' : a));
  const child = spawn('ffmpeg', args, { stdio: ['pipe', 'pipe', 'ignore'] });
  await sleep(preparedMs);
  const sps = s.avcC.subarray(8, 8 + ((s.avcC[6] << 8) | s.avcC[7]));
  const ppsAt = 8 + sps.length + 3;
  const pps = s.avcC.subarray(ppsAt, ppsAt + ((s.avcC[ppsAt - 2] << 8) | s.avcC[ppsAt - 1]));
  const t = now();
  const done = new Promise<number>((resolve, reject) => {
    let got = 0;
    child.stdout.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= (W * H * 3) / 2) resolve(now() - t);
    });
    child.on('close', () => reject(new Error('ffmpeg exited before the picture')));
  });
  child.stdin.write(Buffer.concat([START, sps, START, pps, s.aus[0].annexB, Uint8Array.of(0, 0, 0, 1, 0x09, 0xf0)]));
  try {
    return await done;
  } finally {
    child.kill('SIGKILL');
  }
}

export default async function run(argv: string[]): Promise<BenchOutput> {
  const o = parseArgs(argv, { runs: 10, prepared: 500 }, HELP);
  const s = encode();
  const sdk: number[][] = [];
  const i420: number[] = [];
  for (let r = 0; r < o.runs; r++) {
    // in turns, so that both meet the same machine
    sdk.push(await sdkRun(s, o.prepared));
    i420.push(await i420Run(s, o.prepared));
  }
  const col = (k: number) => spread(sdk.map((x) => x[k]));
  const rows = [
    ['SDK (RGBA out)', String(o.runs), fmt(col(0)), fmt(col(1)), fmt(col(2))],
    ['same ffmpeg, I420 out', String(o.runs), fmt(spread(i420)), '-', '-'],
  ];
  return {
    text: [
      header('decoder', `1280x720 H264 (testsrc2, the VM's x264 settings), ffmpeg started ${o.prepared} ms before the first access unit, ${o.runs} runs`),
      '',
      table(['decoder', 'n', 'first keyframe → picture ms', 'next P frame ms', 'later keyframe ms'], rows),
      '',
      'ms from decode() (the access unit written to ffmpeg) to the whole picture read back; median (min–max).',
      "The first picture pays ffmpeg's first-use costs (zeroed frame pools, the RGBA converter and its buffers; no",
      'stream probing since 2026-12-03, which decoded it twice); later ones, keyframes included, do not.',
    ].join('\n'),
    data: { runs: o.runs, preparedMs: o.prepared, sdk, i420 },
  };
}
