// Builds the agent images that are missing or out of date: lists and hashes their inputs, writes
// the changed layers of the build context, runs `docker build` with docker/agent.Dockerfile.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { materialize } from '../context';
import { buildReplacing, inspectImage, imageLabel, requireEngine } from '../docker';
import { FORMAT, HashCache, layerHash } from '../hashing';
import { log, setQuiet } from '../log';
import { readPackage } from '../node-modules';
import { AGENT_DIR, BUILD_DIR, DOCKER_DIR } from '../paths';
import { collectLayers, ffmpegHasLibx264, LAYERS, type LayerName } from './layers';

const CONTEXT = path.join(BUILD_DIR, 'context');
const HASH_CACHE = path.join(BUILD_DIR, 'hash-cache.json');
const DOCKERFILE = path.join(DOCKER_DIR, 'agent.Dockerfile');

export type Platform = 'wasm' | 'x11';
export const PLATFORMS: Record<Platform, { platform: 'WASM' | 'LINUX_X11'; layers: LayerName[] }> = {
  wasm: { platform: 'WASM', layers: ['base', 'home', 'media', 'modules', 'app'] },
  x11: { platform: 'LINUX_X11', layers: ['base', 'home', 'media', 'x11', 'modules', 'app'] },
};

export function isPlatform(p: string): p is Platform {
  return Object.hasOwn(PLATFORMS, p);
}

export interface BuildOptions {
  /** default both */
  platforms?: Platform[];
  /** run `docker build` even when the image is up to date */
  force?: boolean;
  /** only write the build context */
  contextOnly?: boolean;
  quiet?: boolean;
  /** other image names than imageNames() */
  images?: Partial<Record<Platform, string>>;
}

export interface BuiltImage {
  image: string;
  /** the inputs' hash (label uve.inputs.sha256) */
  hash: string;
  built: boolean;
  seconds: number;
}

function agentVersion(): string {
  return readPackage(AGENT_DIR).version;
}

/** default image names, as the gateway's DockerProvider expects them */
export function imageNames(version = agentVersion()): Record<Platform, string> {
  return { wasm: `uve/vm-agent-wasm:${version}`, x11: `uve/vm-agent-x11:${version}` };
}

/**
 * Builds the images that are missing or out of date.
 * Usable from scripts: await require('./docker/build-images.js').buildImages({ platforms: ['wasm'] }).
 */
export async function buildImages(options: BuildOptions = {}): Promise<Partial<Record<Platform, BuiltImage>>> {
  const platforms = options.platforms ?? ['wasm', 'x11'];
  const images = { ...imageNames(), ...options.images };
  setQuiet(Boolean(options.quiet));
  const t0 = Date.now();
  if (!options.contextOnly) requireEngine();
  const cache = new HashCache(HASH_CACHE);
  const L = collectLayers(platforms.includes('x11'));
  const libx264 = ffmpegHasLibx264();
  const dockerfile = Buffer.concat([fs.readFileSync(DOCKERFILE), Buffer.from(`\0libx264=${libx264}`)]);
  const hashes = Object.fromEntries(LAYERS.map((name) => [name, layerHash(L[name], cache)])) as Record<LayerName, string>;
  cache.save();
  log(`inputs listed and hashed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  const result: Partial<Record<Platform, BuiltImage>> = {};
  const jobs: { platform: Platform; image: string; hash: string }[] = [];
  let systemWritten = false;
  for (const platform of platforms) {
    const image = images[platform];
    const h = crypto.createHash('sha256').update(`format ${FORMAT}\0`).update(dockerfile);
    for (const name of PLATFORMS[platform].layers) h.update(`${name}\0${hashes[name]}\n`);
    const hash = h.digest('hex');
    if (!options.force && !options.contextOnly && imageLabel(image, 'uve.inputs.sha256') === hash) {
      log(`${image} is up to date (inputs ${hash.slice(0, 12)})`);
      result[platform] = { image, hash, built: false, seconds: 0 };
      continue;
    }
    for (const name of PLATFORMS[platform].layers) {
      if (materialize(L[name], hashes[name], CONTEXT)) {
        log(`context ${name}/ written (${L[name].entries.size} entries)`);
        if (name !== 'modules' && name !== 'app') systemWritten = true;
      }
    }
    result[platform] = { image, hash, built: false, seconds: 0 };
    if (!options.contextOnly) jobs.push({ platform, image, hash });
  }
  // a layer the Dockerfile copies but a platform does not use must still exist
  for (const name of LAYERS) fs.mkdirSync(path.join(CONTEXT, name), { recursive: true });

  const run = async (job: (typeof jobs)[number]) => {
    const started = Date.now();
    log(`building ${job.image} (inputs ${job.hash.slice(0, 12)})`);
    await buildReplacing(job.image, [
      'build', '--quiet',
      '--file', DOCKERFILE,
      '--tag', job.image,
      '--build-arg', `PLATFORM=${job.platform}`,
      '--build-arg', `UVE_VM_PLATFORM=${PLATFORMS[job.platform].platform}`,
      '--build-arg', `VERSION=${agentVersion()}`,
      '--build-arg', `INPUTS_SHA256=${job.hash}`,
      '--build-arg', `FFMPEG_LIBX264=${libx264}`,
      CONTEXT,
    ]);
    const seconds = (Date.now() - started) / 1000;
    const size = inspectImage(job.image, '{{.Size}}');
    log(`${job.image} built in ${seconds.toFixed(1)} s, ${(Number(size) / 1024 / 1024).toFixed(0)} MiB`);
    result[job.platform] = { image: job.image, hash: job.hash, built: true, seconds };
  };
  // Both images at once when only their upper layers changed (most of the time goes into sending
  // the context); one after the other when the shared lower layers are new, so that the second
  // build finds them in the cache.
  if (!systemWritten) await Promise.all(jobs.map(run));
  else for (const job of jobs) await run(job);
  log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return result;
}
