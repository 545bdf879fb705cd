// Debian's HAProxy in front of gateways (tests/e2e/gateway-replicas.test.ts, vmm-tls.test.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stopChild, until } from './services';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => fs.existsSync(p));

/** HAProxy with `config` (its lines, written into `dir`), once `answers` says it serves (bounded). */
export async function startHaproxy(dir: string, config: string[], answers: () => Promise<boolean>): Promise<ChildProcess> {
  if (!HAPROXY) throw new Error('haproxy is not installed (Debian: apt-get install haproxy; scripts/setup installs it)');
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, [...config, ''].join('\n'));
  const child = spawn(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  try {
    await until('haproxy to serve', 15_000, async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited (${child.exitCode}):\n${out}`);
      return answers().catch(() => false);
    }, 100);
  } catch (e) {
    // not left running behind a failed start
    await stopChild(child, 5_000);
    throw new Error(`${(e as Error).message}\n${out}`);
  }
  return child;
}

/** the settings every test proxy shares: HTTP, generous timeouts, WebSockets tunnelled */
export const HAPROXY_DEFAULTS = ['global', '  maxconn 512', 'defaults', '  mode http', '  timeout connect 5s', '  timeout client 120s', '  timeout server 120s', '  timeout tunnel 1h'];
