// The SDK's browser code in a real browser (Debian's Chromium through playwright-core), end to end:
// the gateway with its warm pool of PROCESS VMs, a page bundled from the SDK with esbuild that uses
// StreamClient over the browser's WebSocket, attachCanvas (WebCodecs for H264, createImageBitmap for
// MJPEG) and captureInput, real mouse and keyboard input, and UVE-4 answered by the browser's
// geolocation API.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import fs from 'node:fs';
import { freshDatabase, startRedis, until, type TestRedis } from '../support/services';
import { ADMIN, gql, login, ok, registerUser, startGateway, type GatewayProcess } from '../support/gateway';
import { requestUa, uaId } from '../support/stream';
import { bundlePage, launchChromium, servePage, type PageServer } from '../support/browser';
import type { PageReport, Rgb, WatchSpec } from '../support/browser-page/entry';

let redis: TestRedis;
let gw: GatewayProcess;
let user: { token: string; id: string };
let browser: Browser;
let site: PageServer;
let pageDir: string;
const measured: Record<string, string[]> = {};

const W = 640;
const H = 480;
const CLICK = { x: 200, y: 150 };
const WAIT_MS = 15_000;

beforeAll(async () => {
  // the browser first: without Chromium the suite fails at once, with the reason
  browser = await launchChromium();
  pageDir = await bundlePage();
  site = await servePage(pageDir);
  redis = await startRedis();
  gw = await startGateway({ DATABASE_URL: await freshDatabase(), REDIS_URL: redis.url, UVE_QUEUE_PREFIX: 'browser', UVE_SAMPLE_UAS: 'true', UVE_WARM_VMS: '1' });
  const admin = (await login(gw, ADMIN.username, ADMIN.password)).token;
  user = await registerUser(gw, 'browseruser');
  await until('an idle WASM VM', 30_000, async () => ((await gql(gw, `{ vms(status: IDLE, platform: WASM) { id } }`, {}, admin)).data?.vms?.length ?? 0) > 0, 100);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await site?.close();
  await gw?.stop();
  await redis?.stop();
  if (pageDir) fs.rmSync(pageDir, { recursive: true, force: true });
  const lines = Object.entries(measured).map(([k, v]) => `${k}: ${v.join(', ')}`);
  if (lines.length) process.stdout.write(`\nbrowser-client measurements (headless Chromium, loopback)\n  ${lines.join('\n  ')}\n`);
});

/** A fresh browser context with the test page loaded; page errors are collected. */
async function openPage(setup?: (c: BrowserContext, origin: string) => Promise<void>): Promise<{ context: BrowserContext; page: Page; pageErrors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
  await setup?.(context, new URL(site.url).origin);
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`);
  });
  await page.goto(site.url);
  await page.waitForFunction(() => typeof window.uve === 'object', null, { timeout: WAIT_MS });
  return { context, page, pageErrors };
}

/** Waits (bounded) for a condition evaluated in the page; a timeout says what the page saw. */
async function waitInPage<A>(page: Page, what: string, fn: (arg: A) => boolean, arg: A): Promise<void> {
  try {
    // A is plain JSON here, for which playwright's Unboxed<A> is A itself
    await page.waitForFunction(fn as (arg: unknown) => boolean, arg, { timeout: WAIT_MS });
  } catch (e) {
    const r = await report(page).catch(() => null);
    const seen = r && { ...r, drawLatencies: r.drawLatencies.length };
    throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}; the page reports ${JSON.stringify(seen)} (${(e as Error).message.split('\n')[0]})`);
  }
}

/** Waits (bounded) until the canvas pixel at (x, y) has the colour `rgb`, within `tol`. */
function waitForPixel(page: Page, x: number, y: number, rgb: Rgb, what: string, tol = 40): Promise<void> {
  return waitInPage(page, `${what}: pixel (${x}, ${y}) near ${JSON.stringify(rgb)}`, (a) => window.uve.pixel(a.x, a.y).every((v, i) => Math.abs(v - a.rgb[i]!) <= a.tol), { x, y, rgb, tol });
}

const report = (page: Page): Promise<PageReport> => page.evaluate(() => window.uve.report());
const watch = (page: Page, spec: WatchSpec): Promise<number> => page.evaluate((s) => window.uve.watch(s), spec);

/** The page position (CSS px) of stream pixel (sx, sy) in a canvas scaled with object-fit: contain. */
async function pagePoint(page: Page, sx: number, sy: number): Promise<{ x: number; y: number; scale: number }> {
  const box = (await page.locator('#screen').boundingBox())!;
  const scale = Math.min(box.width / W, box.height / H);
  const left = box.x + (box.width - W * scale) / 2;
  const top = box.y + (box.height - H * scale) / 2;
  return { x: left + (sx + 0.25) * scale, y: top + (sy + 0.25) * scale, scale };
}

/** How many characters paint drew on the text line that starts at (x, y) (12 px advance, red glyphs). */
async function charsDrawnAfter(page: Page, x: number, y: number): Promise<number> {
  const [x0, w, h] = [x + 4, 240, 14]; // from x + 4: right of the brush dot, still inside the first glyph
  const d = await page.evaluate((a) => window.uve.rgba(a.x0, a.y, a.w, a.h), { x0, y, w, h });
  let right = -1;
  for (let i = 0; i < d.length; i += 4) if (d[i]! > 150 && d[i + 1]! < 110 && d[i + 2]! < 110) right = Math.max(right, x0 + ((i / 4) % w));
  return right < 0 ? 0 : Math.floor((right - x) / 12) + 1;
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
const record = (k: string, v: string): number => (measured[k] ??= []).push(v);

// attachCanvas's default draw path ('auto' settles on the faster) and, forced, the one it picks in
// this software-only Chromium (VideoFrame.copyTo + putImageData): both must show the right pixels
describe.each([
  ['H264', undefined],
  ['H264', 'copyTo'],
  ['MJPEG', undefined],
] as const)('paint over %s in Chromium (draw path %s)', (codec, draw) => {
  it('draws the first frame, a real mouse click paints the pixel under it, typed keys draw text', async () => {
    const { context, page, pageErrors } = await openPage();
    const s = await requestUa(gw, user.token, await uaId(gw, user.token, 'paint'), { codec, width: W, height: H });
    try {
      if (codec === 'H264') expect(await page.evaluate(() => window.uve.supports('avc1.42C01F', 640, 480))).toBe(true);
      const welcome = await page.evaluate(([t, d]) => window.uve.play(t, d), [s.connection, draw] as const);
      expect(welcome).toEqual({ role: 'PLAYER', codec, width: W, height: H });

      // the first picture: the canvas took the stream's size and shows paint's white background
      await waitInPage(page, 'the first frame (white background)', () => window.uve.report().draws > 0 && window.uve.pixel(400, 300).every((v) => v > 215), null);
      expect(await page.locator('#screen').evaluate((c: HTMLCanvasElement) => [c.width, c.height])).toEqual([W, H]);
      const first = await report(page);
      expect(first.codec).toMatchObject({ codec, width: W, height: H });

      // a real click on the CSS-scaled, letterboxed canvas, where stream pixel (200, 150) is shown
      const at = await pagePoint(page, CLICK.x, CLICK.y);
      expect(at.scale).not.toBeCloseTo(1, 2); // the canvas is really scaled
      expect((await page.evaluate(() => window.uve.pixel(200, 150))).every((v) => v > 215)).toBe(true);
      await watch(page, { what: 'click', trigger: 'pointerdown', kind: 'pixel', x: CLICK.x, y: CLICK.y, rgb: [255, 0, 0], tol: 40 });
      await page.mouse.click(at.x, at.y);
      await waitForPixel(page, CLICK.x, CLICK.y, [255, 0, 0], 'after a mouse click on stream pixel (200, 150)');
      // only there: the rest stays white
      for (const [x, y] of [[400, 300], [CLICK.x + 12, CLICK.y - 12], [CLICK.x - 12, CLICK.y + 12]] as const) {
        expect((await page.evaluate(({ x, y }) => window.uve.pixel(x, y), { x, y })).every((v) => v > 215)).toBe(true);
      }

      // typed keys: paint draws text at its cursor, the click position (text goes right and down from it)
      const textRect = { x: CLICK.x + 4, y: CLICK.y, w: 32, h: 14 };
      const before = await page.evaluate((r) => window.uve.ink(r.x, r.y, r.w, r.h), textRect);
      await watch(page, { what: 'typing', trigger: 'keydown', kind: 'ink', ...textRect, min: before + 12 }); // the first glyph
      await page.keyboard.type('abc');
      await waitInPage(page, 'typed text next to the click', (a) => window.uve.ink(a.r.x, a.r.y, a.r.w, a.r.h) >= a.min, { r: textRect, min: before + 40 });
      // a second click, away from the text: once it shows, the VM has applied every key before it
      const far = await pagePoint(page, 400, 300);
      await page.mouse.click(far.x, far.y);
      await waitForPixel(page, 400, 300, [255, 0, 0], 'after a second click on stream pixel (400, 300)');
      const typed = await charsDrawnAfter(page, CLICK.x, CLICK.y);

      const r = await report(page);
      await page.screenshot({ path: `/tmp/uve-browser-${codec}.png` });
      expect(r.errors).toEqual([]);
      expect(pageErrors).toEqual([]);
      if (codec === 'H264') {
        // WebCodecs did the decoding, configured for low latency with the stream's avcC record
        expect(r.videoDecoder.configs.length).toBeGreaterThan(0);
        expect(r.videoDecoder.configs[0]).toMatchObject({ codedWidth: W, codedHeight: H, optimizeForLatency: true, description: true });
        expect(r.videoDecoder.configs[0]!.codec).toMatch(/^avc1\.42/);
        expect(r.videoDecoder.supported).toBe(true);
        expect(r.videoDecoder.outputs).toBeGreaterThan(0);
        // the view counts what the decoder gave (the bench's motion rows read it)
        expect(r.view!.decoded).toBe(r.videoDecoder.outputs);
        expect(r.bitmaps).toBe(0);
      } else {
        // WebCodecs' ImageDecoder decoded the JPEGs (this Chromium has it)
        expect(r.videoDecoder.configs).toEqual([]);
        expect(r.imageDecodes).toBeGreaterThan(0);
        // decoded once a decode resolved: one may still be on its way
        expect(r.view!.decoded).toBeGreaterThanOrEqual(r.imageDecodes - 1);
        expect(r.view!.decoded).toBeLessThanOrEqual(r.imageDecodes);
        expect(r.bitmaps).toBe(0);
      }
      // a forced path stays in use (no fallback to drawImage): the pixels above came through it
      // ('auto' may still be measuring: paint sends a picture only when it changes)
      if (draw) expect(r.drawPath).toBe(draw);
      // what captureInput sent: the clicks at exactly the stream pixels under the mouse (toStreamPoint
      // undid the CSS scaling and letterboxing), keys as key events and the typed letters as text
      const sent = r.sent.map((x) => x.ev);
      for (const p of [CLICK, { x: 400, y: 300 }]) {
        expect(sent).toContainEqual({ kind: 'pointer', type: 'down', button: 0, ...p });
        expect(sent).toContainEqual({ kind: 'pointer', type: 'up', button: 0, ...p });
      }
      expect(sent.flatMap((e) => (e.kind === 'key' && e.type === 'down' ? [`${e.code}:${e.key}`] : []))).toEqual(['KeyA:a', 'KeyB:b', 'KeyC:c']);
      expect(sent.flatMap((e) => (e.kind === 'text' ? [e.text] : [])).join('')).toBe('abc');
      // every letter reached the UA once: the VM drops a key's text echo (docs/protocol.md)
      expect(typed).toBe(3);
      const [click, typing] = r.watches;
      expect(click!.latencyMs).not.toBeNull();
      expect(typing!.latencyMs).not.toBeNull();
      record(`${codec} time to first frame (play() to first draw)`, `${(r.firstDrawAt! - r.playAt!).toFixed(1)} ms (welcome after ${(r.welcomeAt! - r.playAt!).toFixed(1)} ms)`);
      record(`${codec} click to red pixel on the canvas`, `${click!.latencyMs!.toFixed(1)} ms`);
      record(`${codec} first key to its glyph on the canvas`, `${typing!.latencyMs!.toFixed(1)} ms`);
      record(`${codec} characters drawn for 'abc'`, String(typed));
      record(`${codec} capture to draw (VM clock), median of ${r.drawLatencies.length}`, `${median(r.drawLatencies).toFixed(1)} ms`);
    } finally {
      await page.evaluate(() => window.uve.stop()).catch(() => undefined);
      await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token).catch(() => undefined);
      await context.close();
    }
  });
});

describe('sensors in Chromium (UVE-4 through the browser geolocation API)', () => {
  it("answers the UA's GEOLOCATION request with the browser's position", async () => {
    const { context, page, pageErrors } = await openPage(async (c, origin) => {
      await c.grantPermissions(['geolocation'], { origin });
      await c.setGeolocation({ latitude: 45, longitude: 7, accuracy: 5 });
    });
    const s = await requestUa(gw, user.token, await uaId(gw, user.token, 'sensors'), { codec: 'MJPEG', resources: ['GEOLOCATION'] });
    try {
      await page.evaluate((t) => window.uve.play(t), s.connection);
      await waitForPixel(page, 8, 8, [0, 200, 0], 'the geolocation square');
      // the latitude band: 45° → x < (45 + 90) · 640 / 180 = 480 is blue
      await waitForPixel(page, 470, 28, [0, 0, 255], 'the latitude band');
      await waitForPixel(page, 490, 28, [60, 60, 60], 'after the latitude band');
      const r = await report(page);
      expect(r.resourceRequests).toContain('GEOLOCATION');
      expect(r.errors).toEqual([]);
      expect(pageErrors).toEqual([]);
      await page.screenshot({ path: '/tmp/uve-browser-sensors.png' });
    } finally {
      await page.evaluate(() => window.uve.stop()).catch(() => undefined);
      await ok(gw, `mutation { endSession(sessionId: "${s.id}") { state } }`, {}, user.token).catch(() => undefined);
      await context.close();
    }
  });
});
