// The baselines' X program: the LINUX_X11 probe UA (its window one colour, switched by every key
// press) in an Xvfb of its own, so that a baseline pipeline sees what the UVE X11 case sees.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, stopChild, until } from './services';

const PROBE = path.join(ROOT, 'apps/vm-agent/uas-x11/probe/probe.js');

export interface ProbeDisplay {
  /** ":<n>" */
  display: string;
  /** the environment an X client of this display runs with */
  env: NodeJS.ProcessEnv;
  /** adds a process the display's close() stops first (the pipeline reading it) */
  own(child: ChildProcess): void;
  /** stops the owned processes, the probe and Xvfb, newest first */
  close(): Promise<void>;
}

export async function startProbeDisplay(opts: { display: number; width: number; height: number }): Promise<ProbeDisplay> {
  const display = `:${opts.display}`;
  const children: ChildProcess[] = [];
  const close = async () => {
    for (const c of children.splice(0).reverse()) await stopChild(c, 3000);
  };
  try {
    children.push(spawn('Xvfb', [display, '-screen', '0', `${opts.width}x${opts.height}x24`, '-nolisten', 'tcp'], { stdio: 'ignore' }));
    await until(`Xvfb ${display}`, 10_000, async () => fs.existsSync(`/tmp/.X11-unix/X${opts.display}`));
    const env = { ...process.env, DISPLAY: display };
    children.push(spawn(process.execPath, [PROBE], { env, stdio: ['ignore', 'ignore', 'inherit'] }));
    return { display, env, own: (c) => children.push(c), close };
  } catch (e) {
    await close();
    throw e;
  }
}
