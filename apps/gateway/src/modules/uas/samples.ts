// The sample UAs shipped with the agent (apps/vm-agent/uas*/<name>/build), registered at start so
// that a fresh install has something to use. They come from a "UVE samples" storefront and are
// deployed by reference (builtin:<name>): the agent has the files already.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { checkManifest, type UaManifest } from '@uve/protocol';
import type { Logger } from '../../common/logger';
import { AGENT_ROOT } from '../../common/paths';
import { Storefront } from '../storefronts/storefronts.entity';
import { Ua, UaVersion } from './uas.entity';

const SAMPLES_STOREFRONT = 'UVE samples';
/** samples that give their user a shell (with the VM's rights): registered only when named */
export const SHELL_SAMPLES: readonly string[] = ['xterm'];

interface SamplePackage {
  name: string;
  dir: string;
  manifest: UaManifest;
}

function findSamples(): SamplePackage[] {
  const out: SamplePackage[] = [];
  for (const group of ['uas', 'uas-x11']) {
    const root = path.join(AGENT_ROOT, group);
    if (!fs.existsSync(root)) continue;
    for (const name of fs.readdirSync(root).sort()) {
      const dir = path.join(root, name, 'build');
      const file = path.join(dir, 'manifest.json');
      if (!fs.existsSync(file)) continue;
      try {
        out.push({ name, dir, manifest: checkManifest(JSON.parse(fs.readFileSync(file, 'utf8')), { resourcesOptional: true }) });
      } catch {
        // not a sample this gateway can offer (the agent's own checks say why at deploy time)
      }
    }
  }
  return out;
}

/** Content hash of a package folder: a rebuilt sample is a new version. */
function hashDir(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        h.update(path.relative(dir, p));
        h.update(fs.readFileSync(p));
      }
    }
  };
  walk(dir);
  return h.digest('hex');
}

/** Registers the listed samples; `true` in the list stands for every sample but SHELL_SAMPLES. */
export async function registerSampleUas(ds: DataSource, log: Logger, wanted: readonly string[] = ['true']): Promise<number> {
  const found = findSamples();
  const unknown = wanted.filter((w) => w !== 'true' && !found.some((s) => s.name === w));
  if (unknown.length) log.warn('UVE_SAMPLE_UAS names samples that do not exist', { unknown: unknown.join(','), known: found.map((s) => s.name).join(',') });
  const samples = found.filter((s) => wanted.includes(s.name) || (wanted.includes('true') && !SHELL_SAMPLES.includes(s.name)));
  if (samples.length === 0) {
    log.warn('no sample UAs found; build the agent (npm run build) to get them', { dir: AGENT_ROOT });
    return 0;
  }
  await ds.createQueryBuilder().insert().into(Storefront)
    .values({ name: SAMPLES_STOREFRONT, baseUrl: 'https://samples.uve.invalid/', enabled: true, apiKeyHash: createHash('sha256').update(randomBytes(32)).digest('hex') })
    .orIgnore().execute();
  const storefront = await ds.getRepository(Storefront).findOneByOrFail({ name: SAMPLES_STOREFRONT });
  for (const s of samples) {
    const sha256 = hashDir(s.dir);
    const version = `${s.manifest.version}+${sha256.slice(0, 8)}`;
    const sizeBytes = fs.readdirSync(s.dir).reduce((n, f) => n + fs.statSync(path.join(s.dir, f)).size, 0);
    const required = s.manifest.requiredResources;
    await ds.transaction(async (em) => {
      await em.createQueryBuilder().insert().into(Ua)
        .values({ name: s.manifest.name, platform: s.manifest.platform, currentVersion: version, requiredResources: required, minScreenWidth: s.manifest.minWidth ?? null, minScreenHeight: s.manifest.minHeight ?? null, storefrontId: storefront.id, storefrontAppId: `uve.sample.${s.name}` })
        .orIgnore().execute();
      const ua = await em.findOneByOrFail(Ua, { storefrontId: storefront.id, storefrontAppId: `uve.sample.${s.name}` });
      await em.createQueryBuilder().insert().into(UaVersion).values({ uaId: ua.id, version, packageUrl: `builtin:${s.name}`, sha256, sizeBytes, status: 'AVAILABLE' }).orIgnore().execute();
      await em.update(Ua, ua.id, { name: s.manifest.name, currentVersion: version, requiredResources: required });
    });
  }
  log.info('sample UAs registered', { samples: samples.map((s) => s.name) });
  return samples.length;
}
