// A real browser for end-to-end tests of the SDK's browser code: the test page (browser-page/)
// bundled with esbuild, served from 127.0.0.1 (a secure context, so WebCodecs is there), opened in
// Debian's Chromium through playwright-core.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import * as esbuild from 'esbuild';
import { chromium, type Browser } from 'playwright-core';

/** CI installs Debian's chromium package; the browser suite needs exactly this binary. */
export const CHROMIUM_PATH = '/usr/bin/chromium';
export const PAGE_DIR = path.join(__dirname, 'browser-page');

export async function launchChromium(): Promise<Browser> {
  try {
    fs.accessSync(CHROMIUM_PATH, fs.constants.X_OK);
  } catch {
    throw new Error(`no Chromium at ${CHROMIUM_PATH}: the browser end-to-end tests need Debian's chromium package (apt-get install chromium)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * Bundles browser-page/entry.ts into a fresh temporary directory, the way a web app bundles the SDK:
 * the package's `browser` field leaves its Node-only parts (decoders, CLI, ws) out.
 */
export async function bundlePage(): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-browser-page-'));
  const result = await esbuild
    .build({
      entryPoints: [path.join(PAGE_DIR, 'entry.ts')],
      outfile: path.join(dir, 'bundle.js'),
      bundle: true,
      platform: 'browser',
      format: 'esm',
      target: 'chrome120',
      sourcemap: 'inline',
      logLevel: 'silent',
    })
    // esbuild's service process would otherwise live as long as jest (the teardown's leak check)
    .finally(() => esbuild.stop());
  if (result.errors.length) throw new Error(`bundling the test page failed: ${JSON.stringify(result.errors)}`);
  fs.copyFileSync(path.join(PAGE_DIR, 'index.html'), path.join(dir, 'index.html'));
  return dir;
}

export interface PageServer {
  url: string;
  close(): Promise<void>;
}

/** Serves index.html and bundle.js of `dir` on a free port of 127.0.0.1. */
export async function servePage(dir: string): Promise<PageServer> {
  const files: Record<string, { file: string; type: string }> = {
    '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
    '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
    '/bundle.js': { file: 'bundle.js', type: 'text/javascript; charset=utf-8' },
  };
  const server = http.createServer((req, res) => {
    const f = files[new URL(req.url ?? '/', 'http://x').pathname];
    if (req.method !== 'GET' || !f) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': f.type, 'cache-control': 'no-store' });
    res.end(fs.readFileSync(path.join(dir, f.file)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
