// The baselines' X program: a LINUX_X11 sample UA (the probe by default: its window one colour,
// switched by every key press) in an Xvfb of its own, started from its manifest's command and
// environment, so that a baseline pipeline sees what the UVE X11 case sees. No window manager: a
// program that does not size itself to the screen (xterm) keeps its own size, as it would in any Xvfb.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, stopChild, until } from './services';

const UAS = path.join(ROOT, 'apps/vm-agent/uas-x11');

export interface UaDisplay {
  /** ":<n>" */
  display: string;
  /** the environment an X client of this display runs with */
  env: NodeJS.ProcessEnv;
  /** adds a process the display's close() stops first (the pipeline reading it) */
  own(child: ChildProcess): void;
  /** pids of Xvfb, the program and the owned processes (their children are theirs to count) */
  pids(): number[];
  /** stops the owned processes, the program and Xvfb, newest first */
  close(): Promise<void>;
}

/** `ua`'s manifest command and environment (a `node` command runs on this Node). */
function uaCommand(ua: string): { file: string; args: string[]; cwd: string; env: Record<string, string> } {
  const dir = path.join(UAS, ua);
  const file = path.join(dir, 'manifest.json');
  if (!fs.existsSync(file)) throw new Error(`no LINUX_X11 sample UA "${ua}" (${file})`);
  const m = JSON.parse(fs.readFileSync(file, 'utf8')) as { command: string[]; env?: Record<string, string> };
  const [cmd, ...args] = m.command;
  return { file: cmd === 'node' ? process.execPath : cmd!, args, cwd: dir, env: m.env ?? {} };
}

/** Xvfb's display number: `display` when given, else the first free one (-displayfd: Xvfb binds it and says which, once it listens). */
async function xvfbReady(xvfb: ChildProcess, display: number | undefined): Promise<number> {
  if (display !== undefined) {
    await until(`Xvfb :${display}`, 10_000, async () => fs.existsSync(`/tmp/.X11-unix/X${display}`));
    return display;
  }
  const fd3 = xvfb.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
  return new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('Xvfb did not report a display within 10 s')), 10_000);
    xvfb.once('exit', (code) => reject(new Error(`Xvfb exited during start (${code})`)));
    fd3.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      const m = /^(\d+)\n/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      fd3.destroy();
      resolve(Number(m[1]));
    });
  });
}

export async function startUaDisplay(opts: { display?: number; width: number; height: number; ua?: string }): Promise<UaDisplay> {
  const ua = uaCommand(opts.ua ?? 'probe');
  const children: ChildProcess[] = [];
  const close = async () => {
    for (const c of children.splice(0).reverse()) await stopChild(c, 3000);
  };
  try {
    const auto = opts.display === undefined;
    const xvfb = spawn('Xvfb', [...(auto ? ['-displayfd', '3'] : [`:${opts.display}`]), '-screen', '0', `${opts.width}x${opts.height}x24`, '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'ignore', auto ? 'pipe' : 'ignore'] });
    children.push(xvfb);
    const display = `:${await xvfbReady(xvfb, opts.display)}`;
    const env = { ...process.env, DISPLAY: display };
    children.push(spawn(ua.file, ua.args, { cwd: ua.cwd, env: { ...env, ...ua.env }, stdio: ['ignore', 'ignore', 'inherit'] }));
    return { display, env, own: (c) => children.push(c), pids: () => children.map((c) => c.pid!).filter(Boolean), close };
  } catch (e) {
    await close();
    throw e;
  }
}
