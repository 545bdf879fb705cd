// The reference storefront (UVE-7): a small HTTP server holding a catalog of UA packages (built by
// `uve pack`, docs/packages.md) and serving their bytes to the VMs the VMM directs to it.
//   GET /catalog            the catalog, as JSON (each entry with a download URL)
//   GET /packages/<file>    a package's bytes; with a token secret, only with ?token=<valid token>
//   GET /healthz            "ok"
// A download token is `<expiry unix seconds>.<HMAC-SHA256(secret, file:expiry)>`: short-lived, bound
// to one file, checked without any state.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { MANIFEST_FILE, type LocalResourceKind, type Platform, type UaManifest } from '@uve/protocol';
import { packUa } from '@uve/client/dist/pack';

/** One catalog entry: what provideApplication needs (docs/api/uve.graphql ProvideApplicationInput). */
export interface CatalogEntry {
  storefrontAppId: string;
  name: string;
  version: string;
  platform: Platform;
  /** file name under /packages/ */
  file: string;
  sha256: string;
  sizeBytes: number;
  requiredResources: LocalResourceKind[];
  minScreenWidth?: number | null;
  minScreenHeight?: number | null;
}

export interface StorefrontOptions {
  /** folder the package files are kept in (default: a new temporary folder) */
  dir?: string;
  host?: string;
  port?: number;
  /** with a secret, downloads need a token (see tokenFor) */
  tokenSecret?: string | null;
  tokenTtlSec?: number;
}

/** Manifest fields a publisher may change when publishing a folder (tests, re-versioned samples). */
export type ManifestOverrides = Partial<Pick<UaManifest, 'id' | 'name' | 'version' | 'platform'>>;

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

export class Storefront {
  private readonly entries = new Map<string, CatalogEntry>();
  private server: http.Server | null = null;
  private ownDir = false;
  dir = '';
  url = '';

  constructor(private readonly opts: StorefrontOptions = {}) {}

  async start(): Promise<string> {
    if (this.opts.dir) this.dir = this.opts.dir;
    else {
      this.dir = await mkdtemp(join(tmpdir(), 'uve-storefront-'));
      this.ownDir = true;
    }
    const server = (this.server = http.createServer((req, res) => void this.handle(req, res)));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => resolve());
    });
    const { address, port } = server.address() as AddressInfo;
    this.url = `http://${address.includes(':') ? `[${address}]` : address}:${port}/`;
    return this.url;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (this.ownDir) await rm(this.dir, { recursive: true, force: true });
  }

  catalog(): CatalogEntry[] {
    return [...this.entries.values()];
  }

  /** Absolute download URL of a catalog file (with a fresh token when tokens are on). */
  downloadUrl(file: string): string {
    const u = new URL(`packages/${encodeURIComponent(file)}`, this.url);
    if (this.opts.tokenSecret) u.searchParams.set('token', this.tokenFor(file));
    return u.toString();
  }

  tokenFor(file: string, ttlSec = this.opts.tokenTtlSec ?? 600): string {
    const exp = Math.floor(Date.now() / 1000) + ttlSec;
    return `${exp}.${this.sign(file, exp)}`;
  }

  /**
   * Packs a UA folder (with `uve pack`) into the catalog. Overrides rewrite the manifest of a copy,
   * so one folder can be published under another id or version.
   */
  async publishFolder(folder: string, storefrontAppId: string, overrides: ManifestOverrides = {}): Promise<CatalogEntry> {
    let src = folder;
    let tmp: string | null = null;
    if (Object.keys(overrides).length) {
      tmp = await mkdtemp(join(tmpdir(), 'uve-publish-'));
      await cp(folder, tmp, { recursive: true });
      const manifest = JSON.parse(await readFile(join(tmp, MANIFEST_FILE), 'utf8')) as Record<string, unknown>;
      await writeFile(join(tmp, MANIFEST_FILE), JSON.stringify({ ...manifest, ...overrides }, null, 2));
      src = tmp;
    }
    try {
      const probe = JSON.parse(await readFile(join(src, MANIFEST_FILE), 'utf8')) as { version?: string };
      const file = `${storefrontAppId}-${probe.version ?? '0'}.tar.gz`.replace(/[^A-Za-z0-9._-]/g, '_');
      const r = await packUa(src, join(this.dir, file));
      return this.add({
        storefrontAppId, name: r.manifest.name, version: r.manifest.version, platform: r.manifest.platform, file,
        sha256: r.sha256, sizeBytes: r.sizeBytes, requiredResources: r.manifest.requiredResources,
        minScreenWidth: r.manifest.minWidth ?? null, minScreenHeight: r.manifest.minHeight ?? null,
      });
    } finally {
      if (tmp) await rm(tmp, { recursive: true, force: true });
    }
  }

  /** Puts raw bytes in the catalog under the entry's file name (its declared sha256 and size as given). */
  async publishBytes(entry: CatalogEntry, bytes: Uint8Array): Promise<CatalogEntry> {
    if (!FILE_NAME.test(entry.file)) throw new Error(`invalid package file name ${JSON.stringify(entry.file)}`);
    await writeFile(join(this.dir, entry.file), bytes);
    return this.add(entry);
  }

  private add(entry: CatalogEntry): CatalogEntry {
    this.entries.set(`${entry.storefrontAppId}@${entry.version}`, entry);
    return entry;
  }

  private sign(file: string, exp: number): string {
    return createHmac('sha256', this.opts.tokenSecret ?? '').update(`${file}:${exp}`).digest('base64url');
  }

  private tokenValid(file: string, token: string | null): boolean {
    const m = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token ?? '');
    if (!m) return false;
    const exp = Number(m[1]);
    if (exp < Date.now() / 1000) return false;
    const want = Buffer.from(this.sign(file, exp));
    const got = Buffer.from(m[2]!);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const fail = (status: number, message: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(`${message}\n`);
    };
    try {
      const u = new URL(req.url ?? '/', 'http://storefront.invalid');
      if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'only GET');
      if (u.pathname === '/healthz') return fail(200, 'ok');
      if (u.pathname === '/catalog') {
        const body = JSON.stringify({ packages: this.catalog().map((e) => ({ ...e, packageUrl: this.downloadUrl(e.file) })) });
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        return;
      }
      const m = /^\/packages\/([^/]+)$/.exec(u.pathname);
      if (!m) return fail(404, 'not found');
      const file = decodeURIComponent(m[1]!);
      if (!FILE_NAME.test(file) || basename(file) !== file) return fail(404, 'not found');
      if (this.opts.tokenSecret && !this.tokenValid(file, u.searchParams.get('token'))) return fail(403, 'download token missing, wrong or expired');
      const path = join(this.dir, file);
      const st = await stat(path).catch(() => null);
      if (!st?.isFile()) return fail(404, 'not found');
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': String(st.size) });
      if (req.method === 'HEAD') return void res.end();
      createReadStream(path).pipe(res);
    } catch (e) {
      fail(500, (e as Error).message);
    }
  }
}
