// motion-frame: what one full-motion 720p frame of the WASM `game` (or of the LINUX_X11 `scroll`
// sample) costs the VM, without the network and the client: fps delivered at the fps asked for, CPU
// per frame of the agent (all its threads: pump, guest, copies, pipe writes), of the encoder process
// and of the UA's own processes (X11: the program and its Xvfb), gaps between frames and the
// encode's time. With --before <repo root>, that build's agent in turns with this one
// (before, after, before, ...) on the same machine.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fmt, header, loadavg, parseArgs, spread, table, type BenchOutput } from './lib/report';

const HELP = `bench/motion-frame: one motion session's VM side (WASM game or LINUX_X11 scroll, frame pump, encoder; no network,
no client), fps and CPU per frame, optionally against another build in turns

Usage: npm run bench -- motion-frame [--uas game,scroll] [--fps 30,60] [--codecs H264] [--seconds 6] [--reps 2]
                                     [--before /path/to/other/repo]
--uas:    game (WASM, default), scroll (LINUX_X11: the program and Xvfb are counted apart, as "UA")
--before: the root of another built checkout (its apps/vm-agent/dist and uas/game/build), run in turns with this one;
          the scroll sample is this checkout's for both.`;

const ROOT = path.resolve(__dirname, '../..');

interface Run { fps: number; agentMsPerFrame: number; encoderMsPerFrame: number; uaMsPerFrame?: number; gapP50: number; gapP95: number; encodeP50: number; encodeP95: number }

export default async function motionFrame(argv: string[]): Promise<BenchOutput> {
  const o = parseArgs(argv, { uas: ['game'], fps: ['30', '60'], codecs: ['H264'], seconds: 6, reps: 2, before: '' }, HELP);
  const unknown = o.uas.filter((u) => u !== 'game' && u !== 'scroll');
  if (unknown.length) throw new Error(`--uas: unknown ${unknown.join(',')} (game, scroll)`);
  const scrollDir = path.join(ROOT, 'apps/vm-agent/uas-x11/scroll/build');
  const builds = o.before ? [{ name: 'before', root: path.resolve(o.before) }, { name: 'this build', root: ROOT }] : [{ name: 'this build', root: ROOT }];
  const runs = new Map<string, Run[]>();
  const load: number[][] = [loadavg()];
  for (let r = 0; r < o.reps; r++) {
    for (const ua of o.uas) {
      for (const codec of o.codecs) {
        for (const fps of o.fps) {
          for (const b of builds) {
            const out = execFileSync(process.execPath, [path.join(__dirname, 'lib/motion-vm.js'), b.root, fps, String(o.seconds), codec, ua, scrollDir], { encoding: 'utf8' });
            const run = JSON.parse(out.trim().split('\n').pop()!) as Run;
            const key = `${b.name}|${ua}|${codec}|${fps}`;
            runs.set(key, [...(runs.get(key) ?? []), run]);
            process.stdout.write(`  rep ${r + 1} ${b.name} ${ua} ${codec} @${fps}: ${run.fps.toFixed(1)} fps, ${(run.agentMsPerFrame + run.encoderMsPerFrame + (run.uaMsPerFrame ?? 0)).toFixed(2)} ms CPU / frame\n`);
          }
        }
      }
    }
    load.push(loadavg());
  }
  const rows = [...runs].map(([key, rs]) => {
    const [build, ua, codec, fps] = key.split('|');
    const s = (f: (r: Run) => number): string => fmt(spread(rs.map(f)), 2);
    return [`${build}, ${ua}, ${codec}`, fps!, s((r) => r.fps), s((r) => r.agentMsPerFrame), s((r) => r.encoderMsPerFrame), s((r) => r.uaMsPerFrame ?? 0), s((r) => r.agentMsPerFrame + r.encoderMsPerFrame + (r.uaMsPerFrame ?? 0)), s((r) => r.gapP50), s((r) => r.gapP95), s((r) => r.encodeP50), s((r) => r.encodeP95)];
  });
  const text = [
    header('motion-frame', `one motion UA's VM side at 1280x720 (${o.uas.join(', ')}), ${o.reps} x ${o.seconds} s per case${o.before ? `, in turns with ${o.before}` : ''}`),
    '',
    table(['build, UA, codec', 'fps requested', 'fps', 'agent CPU ms / frame', 'encoder CPU ms / frame', 'UA CPU ms / frame', 'total', 'gap p50 ms', 'gap p95 ms', 'encode p50 ms', 'encode p95 ms'], rows),
    '',
    `load average (1 min) after each round: ${load.map((l) => l[0]).join(', ')}`,
    'agent: the process running the UA, pump and encoder client (all threads, process.cpuUsage); encoder: the ffmpeg process(es)',
    'from /proc (MJPEG encodes in the agent); UA: a LINUX_X11 UA\'s program and Xvfb from /proc (a WASM UA runs in the agent);',
    'gap: between frames handed to the sink; encode: encode() call -> output.',
  ].join('\n');
  return { text, data: { options: o, runs: Object.fromEntries(runs), load } };
}
