#!/usr/bin/env node
// `uve-storefront`: runs the reference storefront; with --samples it publishes the agent's sample
// UAs (packed with `uve pack`), with --gateway and --api-key it provides its catalog to that VMM.
import fs from 'node:fs';
import path from 'node:path';
import { Storefront } from './storefront';
import { provideApplication } from './provider';

const HELP = `uve-storefront - the reference UVE storefront (UVE-7)

Usage: node apps/storefront/dist/main.js [options]

Options:
  --host H            address to listen on (default 127.0.0.1)
  --port N            port (default 4100; 0 = any free port)
  --dir DIR           folder for the package files (default: a temporary folder)
  --samples           publish the sample UAs built in apps/vm-agent (npm run build first)
  --folder DIR        publish this UA folder (repeatable); its manifest "id" (or folder name) is the app id
  --token-secret S    require short-lived download tokens signed with S
  --gateway URL       provide every catalog entry to this VMM (e.g. http://127.0.0.1:4000)
  --api-key KEY       the storefront's API key (from registerStorefront); also UVE_STOREFRONT_API_KEY
  -h, --help          this help

Register it first (as an admin): registerStorefront(name: "...", baseUrl: "http://HOST:PORT/").`;

const AGENT_ROOT = path.resolve(__dirname, '../../vm-agent');

function sampleFolders(): string[] {
  const out: string[] = [];
  for (const [group, sub] of [['uas', 'build'], ['uas-x11', '']] as const) {
    const root = path.join(AGENT_ROOT, group);
    if (!fs.existsSync(root)) continue;
    for (const name of fs.readdirSync(root).sort()) {
      const dir = path.join(root, name, sub);
      if (fs.existsSync(path.join(dir, 'manifest.json'))) out.push(dir);
    }
  }
  return out;
}

async function main(argv: string[]): Promise<number> {
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') {
      process.stdout.write(HELP + '\n');
      return 0;
    }
    if (a === '--samples') flags.set('samples', ['']);
    else if (a.startsWith('--') && i + 1 < argv.length) flags.set(a.slice(2), [...(flags.get(a.slice(2)) ?? []), argv[++i]!]);
    else {
      process.stderr.write(`uve-storefront: unexpected ${a}\n(see --help)\n`);
      return 2;
    }
  }
  const one = (k: string): string | undefined => flags.get(k)?.at(-1);
  const known = new Set(['host', 'port', 'dir', 'samples', 'folder', 'token-secret', 'gateway', 'api-key']);
  for (const k of flags.keys()) {
    if (!known.has(k)) {
      process.stderr.write(`uve-storefront: unknown option --${k}\n`);
      return 2;
    }
  }
  const port = Number(one('port') ?? 4100);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write('uve-storefront: --port must be 0..65535\n');
    return 2;
  }
  const store = new Storefront({ host: one('host') ?? '127.0.0.1', port, dir: one('dir'), tokenSecret: one('token-secret') ?? null });
  const url = await store.start();
  const folders = [...(flags.has('samples') ? sampleFolders() : []), ...(flags.get('folder') ?? [])];
  for (const dir of folders) {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { id?: string; name?: string };
    const id = manifest.id ?? `uve.sample.${manifest.name ?? path.basename(dir)}`;
    const e = await store.publishFolder(dir, id);
    process.stdout.write(`published ${e.storefrontAppId} ${e.version} (${e.platform}) ${e.sizeBytes} bytes sha256 ${e.sha256}\n`);
  }
  process.stdout.write(`storefront listening on ${url} (catalog: ${url}catalog)\n`);
  const gateway = one('gateway');
  const apiKey = one('api-key') ?? process.env.UVE_STOREFRONT_API_KEY;
  if (gateway) {
    if (!apiKey) {
      process.stderr.write('uve-storefront: --gateway needs --api-key (or UVE_STOREFRONT_API_KEY)\n');
      await store.stop();
      return 2;
    }
    for (const e of store.catalog()) {
      const p = await provideApplication(gateway, apiKey, e, store.downloadUrl(e.file));
      process.stdout.write(`provided ${e.storefrontAppId} ${e.version}: procurement ${p.id} ${p.status}\n`);
    }
  }
  const stop = () => void store.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return -1; // keep serving
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (e) => {
    process.stderr.write(`uve-storefront: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
