// The stream-browser bench's second baseline: the same X program (the LINUX_X11 probe) in its own
// Xvfb, served by Debian's x11vnc as shipped (its own polling: -wait 20 -defer 20 ms, naps when idle)
// and viewed by noVNC's RFB client in the same headless Chromium (browser-page/novnc.ts); x11vnc
// takes the WebSocket handshake on its RFB port itself, so no websockify runs in between.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { VncRoundTrip } from '../browser-page/novnc';
import { bundleBenchPage, NOVNC_ENTRY, openBenchPage, type Browser, type Page } from './browser';
import { startUaDisplay } from './ua-display';
import { until } from './services';

export const NOVNC_DIR = process.env.NOVNC_DIR ?? '/usr/share/novnc';

/** Why this machine cannot run the baseline (what to install), or null when it can. */
export function x11vncMissing(novncDir = NOVNC_DIR): string | null {
  const missing: string[] = [];
  if (spawnSync('x11vnc', ['-version'], { stdio: 'ignore' }).error) missing.push('x11vnc is not on PATH');
  if (!fs.existsSync(path.join(novncDir, 'core/rfb.js'))) missing.push(`no noVNC at ${novncDir} (core/rfb.js; NOVNC_DIR overrides)`);
  return missing.length ? `${missing.join('; ')}: apt-get install x11vnc novnc` : null;
}

/** The port x11vnc announces on stdout ("PORT=5901") once it listens, or null for any other line. */
export function announcedPort(line: string): number | null {
  const m = /^PORT=(\d+)\s*$/.exec(line);
  const port = m ? Number(m[1]) : NaN;
  return port > 0 && port < 65536 ? port : null;
}

export interface X11vncServer {
  /** ws://127.0.0.1:<port>/ */
  url: string;
  close(): Promise<void>;
}

export interface X11vncOptions {
  display: number;
  width: number;
  height: number;
  /** appended to x11vnc's command line (its pacing: "-defer 0 -wait 5"); none: as Debian ships it */
  args?: string[];
}

export async function startX11vncServer(opts: X11vncOptions): Promise<X11vncServer> {
  const probe = await startUaDisplay(opts);
  try {
    // -autoport: the first free port from 5900 (x11vnc's own probe), announced as PORT=
    const vnc = spawn('x11vnc', ['-display', probe.display, '-autoport', '5900', '-localhost', '-nopw', '-forever', '-shared', '-nocursor', ...(opts.args ?? [])], { env: probe.env, stdio: ['ignore', 'pipe', 'pipe'] });
    probe.own(vnc);
    let log = '';
    // x11vnc says on stderr why it did not start
    vnc.stderr!.setEncoding('utf8').on('data', (s: string) => (log = (log + s).slice(-2000)));
    const lastWords = () => log.trim().split('\n').slice(-2).join(' / ');
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`x11vnc did not listen within 15 s: ${lastWords()}`)), 15_000);
      let partial = '';
      vnc.stdout!.setEncoding('utf8').on('data', (s: string) => {
        const lines = (partial + s).split('\n');
        partial = lines.pop()!;
        for (const line of lines) {
          const p = announcedPort(line);
          if (p !== null) {
            clearTimeout(timer);
            resolve(p);
          }
        }
      });
      vnc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`x11vnc exited (${code}) before listening: ${lastWords()}`));
      });
    });
    return { url: `ws://127.0.0.1:${port}/`, close: probe.close };
  } catch (e) {
    await probe.close();
    throw e;
  }
}

export interface X11vncBaseline {
  /** one key press through noVNC at a random phase up to `phaseMs`; null when its picture did not come in 5 s */
  roundTrip(phaseMs: number): Promise<VncRoundTrip | null>;
  errors(): Promise<string[]>;
  close(): Promise<void>;
}

/** x11vnc on the probe's own Xvfb, and a page of `browser` viewing it with noVNC, ready to measure. */
export async function openX11vncBaseline(browser: Browser, opts: X11vncOptions): Promise<X11vncBaseline> {
  const server = await startX11vncServer(opts);
  let page: Page | null = null;
  try {
    page = await openBenchPage(browser, await bundleBenchPage(NOVNC_ENTRY), { global: 'vnc', files: { prefix: '/novnc/', dir: NOVNC_DIR } });
    const p = page;
    const got = await p.evaluate(([url]) => window.vnc.connect(url, 15_000), [server.url] as const);
    if (got.width !== opts.width || got.height !== opts.height) throw new Error(`noVNC shows ${got.width}x${got.height}, not the ${opts.width}x${opts.height} of the baseline's Xvfb`);
    // the probe takes its key presses once it listens: until then a press changes nothing
    await until('the probe answering key presses through x11vnc', 20_000, () => p.evaluate(() => window.vnc.roundTrip(0, 1000)).then(() => true));
    return {
      roundTrip: (phaseMs) => p.evaluate(([ms]) => window.vnc.roundTrip(ms, 5000), [phaseMs] as const).catch(() => null),
      errors: () => p.evaluate(() => window.vnc.errors()).catch(() => [] as string[]),
      close: async () => {
        await p.evaluate(() => window.vnc.stop()).catch(() => undefined);
        await p.close().catch(() => undefined);
        await server.close();
      },
    };
  } catch (e) {
    await page?.close().catch(() => undefined);
    await server.close();
    throw e;
  }
}
