// Builds the stack's images that are missing or out of date, each from its own build context
// (docker/.build/stack/<image>/), cached by the hash of its inputs like the agent images.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { materialize } from '../context';
import { buildReplacing, imageLabel, requireEngine } from '../docker';
import { FORMAT, HashCache, layerHash } from '../hashing';
import { log, setQuiet } from '../log';
import { readPackage } from '../node-modules';
import { BUILD_DIR, ROOT } from '../paths';
import { collect, IMAGES, type StackImage } from './layers';

export { IMAGES, type StackImage };

const STACK_BUILD = path.join(BUILD_DIR, 'stack');
const HASH_CACHE = path.join(STACK_BUILD, 'hash-cache.json');

export interface StackOptions {
  force?: boolean;
  quiet?: boolean;
  /** replaces "uve/" in the names */
  prefix?: string;
  /** default the repository's version */
  tag?: string;
  /** default all */
  only?: readonly StackImage[];
}

export const version = (): string => readPackage(ROOT).version;

export function isStackImage(name: string): name is StackImage {
  return (IMAGES as readonly string[]).includes(name);
}

/** the image names for a prefix and tag: { postgres: 'uve/postgres:0.1.0', ... } */
export function stackImageNames(prefix = 'uve/', tag = version()): Record<StackImage, string> {
  return Object.fromEntries(IMAGES.map((n) => [n, `${prefix}${n}:${tag}`])) as Record<StackImage, string>;
}

/** Builds the stack images that are missing or out of date. */
export async function buildStackImages(options: StackOptions = {}): Promise<Partial<Record<StackImage, { image: string; built: boolean; seconds: number }>>> {
  const { force = false, quiet = false, prefix = 'uve/', tag = version(), only = IMAGES } = options;
  setQuiet(quiet);
  const t0 = Date.now();
  requireEngine();
  const cache = new HashCache(HASH_CACHE);
  const images = collect(only);
  const names = stackImageNames(prefix, tag);
  const result: Partial<Record<StackImage, { image: string; built: boolean; seconds: number }>> = {};
  for (const [name, spec] of Object.entries(images) as [StackImage, NonNullable<(typeof images)[StackImage]>][]) {
    const image = names[name];
    const hashes = spec.layers.map((l) => layerHash(l, cache));
    const dockerfile = ['FROM scratch', 'COPY base/ /', ...spec.tail,
      `LABEL org.opencontainers.image.title="${spec.title}" org.opencontainers.image.version="${tag}" org.opencontainers.image.licenses="Apache-2.0" uve.stack.image="${name}"`].join('\n') + '\n';
    const hash = crypto.createHash('sha256').update(`format ${FORMAT}\0${dockerfile}`).update(hashes.join('\n')).digest('hex');
    if (!force && imageLabel(image, 'uve.inputs.sha256') === hash) {
      log(`${image} is up to date (inputs ${hash.slice(0, 12)})`);
      result[name] = { image, built: false, seconds: 0 };
      continue;
    }
    const started = Date.now();
    const context = path.join(STACK_BUILD, name);
    fs.mkdirSync(context, { recursive: true });
    spec.layers.forEach((l, i) => materialize(l, hashes[i]!, context));
    fs.writeFileSync(path.join(context, 'Dockerfile'), dockerfile);
    log(`building ${image} (inputs ${hash.slice(0, 12)})`);
    await buildReplacing(image, ['build', '--quiet', '--tag', image, '--label', `uve.inputs.sha256=${hash}`, context]);
    const seconds = (Date.now() - started) / 1000;
    log(`${image} built in ${seconds.toFixed(1)} s`);
    result[name] = { image, built: true, seconds };
  }
  cache.save();
  log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return result;
}
