// Headless Chromium (Debian's, through playwright-core) with bench/src/browser-page bundled by
// esbuild the way a web app bundles the SDK. The page is served from memory through request
// interception at http://127.0.0.1 (a secure context, so WebCodecs is there): no server to run.
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './services';

/* eslint-disable @typescript-eslint/no-require-imports */
type Playwright = typeof import('playwright-core');
export type Browser = Awaited<ReturnType<Playwright['chromium']['launch']>>;
export type Page = Awaited<ReturnType<Browser['newPage']>>;

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ENTRY = path.join(ROOT, 'bench/src/browser-page/entry.ts');
/** the x11vnc baseline's page: noVNC's client, measured (window.vnc) */
export const NOVNC_ENTRY = path.join(ROOT, 'bench/src/browser-page/novnc.ts');
const ORIGIN = 'http://127.0.0.1:9';
const HTML = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>UVE bench</title><link rel="icon" href="data:,"></head>
<body style="margin:0;background:#000"><canvas id="screen"></canvas><script type="module" src="/bundle.js"></script></body></html>`;

/** The page's script: the SDK's browser build and the page's measuring code, one ES module. */
export async function bundleBenchPage(entry = ENTRY): Promise<string> {
  const esbuild = require('esbuild') as typeof import('esbuild');
  try {
    const out = await esbuild.build({ entryPoints: [entry], bundle: true, platform: 'browser', format: 'esm', target: 'chrome120', write: false, logLevel: 'silent' });
    return out.outputFiles[0]!.text;
  } finally {
    await esbuild.stop();
  }
}

export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM_PATH)) throw new Error(`no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`);
  const { chromium } = require('playwright-core') as Playwright;
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // an intercepted page has no address of its own, so Chromium's Local Network Access checks
    // would take the VM's loopback socket for a public page reaching into the local network
    args: ['--disable-features=LocalNetworkAccessChecks', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-background-timer-throttling', '--disable-renderer-backgrounding'],
  });
}

/**
 * The file under `dir` that a request path names (`/novnc/core/rfb.js` under `prefix` "/novnc/"),
 * or null when the path is outside the prefix or would leave `dir`.
 */
export function staticFile(dir: string, prefix: string, pathname: string): string | null {
  if (!pathname.startsWith(prefix)) return null;
  const root = path.resolve(dir);
  let rel: string;
  try {
    rel = decodeURIComponent(pathname.slice(prefix.length));
  } catch {
    return null;
  }
  const file = path.resolve(root, rel);
  return file.startsWith(root + path.sep) ? file : null;
}

export interface PageOptions {
  /** the global the bundle defines once loaded */
  global?: 'bench' | 'vnc';
  /** a folder served as it is under a path prefix (noVNC's ES modules) */
  files?: { prefix: string; dir: string };
}

/** A new tab with the bench page loaded and its global (`window.bench` by default) defined. */
export async function openBenchPage(browser: Browser, bundle: string, opts: PageOptions = {}): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1300, height: 760 } });
  if (process.env.BENCH_DEBUG) page.on('console', (m) => process.stderr.write(`page: ${m.text()}\n`));
  await page.route(`${ORIGIN}/**`, (route) => {
    const p = new URL(route.request().url()).pathname;
    const file = opts.files && staticFile(opts.files.dir, opts.files.prefix, p);
    if (file) return fs.existsSync(file) ? route.fulfill({ path: file }) : route.fulfill({ status: 404, body: `no ${p}` });
    if (p === '/bundle.js') return route.fulfill({ status: 200, contentType: 'text/javascript; charset=utf-8', body: bundle });
    return route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: HTML });
  });
  await page.goto(`${ORIGIN}/`);
  const global = opts.global ?? 'bench';
  await page.waitForFunction((g) => typeof (window as unknown as Record<string, unknown>)[g] === 'object', global, { timeout: 10_000 });
  return page;
}
