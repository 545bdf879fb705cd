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
const ORIGIN = 'http://127.0.0.1:9';
const HTML = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>UVE bench</title><link rel="icon" href="data:,"></head>
<body style="margin:0;background:#000"><canvas id="screen"></canvas><script type="module" src="/bundle.js"></script></body></html>`;

/** The page's script: the SDK's browser build and the page's measuring code, one ES module. */
export async function bundleBenchPage(): Promise<string> {
  const esbuild = require('esbuild') as typeof import('esbuild');
  try {
    const out = await esbuild.build({ entryPoints: [ENTRY], bundle: true, platform: 'browser', format: 'esm', target: 'chrome120', write: false, logLevel: 'silent' });
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

/** A new tab with the bench page loaded and `window.bench` defined. */
export async function openBenchPage(browser: Browser, bundle: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1300, height: 760 } });
  if (process.env.BENCH_DEBUG) page.on('console', (m) => process.stderr.write(`page: ${m.text()}\n`));
  await page.route(`${ORIGIN}/**`, (route) => {
    const p = new URL(route.request().url()).pathname;
    if (p === '/bundle.js') return route.fulfill({ status: 200, contentType: 'text/javascript; charset=utf-8', body: bundle });
    return route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: HTML });
  });
  await page.goto(`${ORIGIN}/`);
  await page.waitForFunction(() => typeof (window as { bench?: unknown }).bench === 'object', undefined, { timeout: 10_000 });
  return page;
}
