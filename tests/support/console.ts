// The built console (apps/console, `next start`) as a child process in its own process group, so
// stopping it ends every process it started.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { ROOT } from './gateway';
import { freePort } from './services';

export const CONSOLE_DIR = path.join(ROOT, 'apps/console');

export interface ConsoleProcess {
  url: string;
  child: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

export async function startConsole(gatewayUrl: string): Promise<ConsoleProcess> {
  if (!fs.existsSync(path.join(CONSOLE_DIR, '.next/BUILD_ID'))) throw new Error('the console is not built: run `npm run build` first');
  const port = await freePort();
  const child = spawn(process.execPath, [require.resolve('next/dist/bin/next', { paths: [CONSOLE_DIR] }), 'start', '--hostname', '127.0.0.1', '--port', String(port)], {
    cwd: CONSOLE_DIR,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', NEXT_TELEMETRY_DISABLED: '1', UVE_GATEWAY_URL: gatewayUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const stop = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        resolve();
      }
    });
  const url = `http://127.0.0.1:${port}`;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the console did not start in 60 s:\n${out}`)), 60_000);
      child.stdout!.on('data', () => {
        if (/Ready in|✓ Ready/.test(out)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the console exited with ${code}:\n${out}`));
      });
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, child, output: () => out, stop };
}
