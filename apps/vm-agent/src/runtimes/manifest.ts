// What every UA package manifest has (docs/wasm-abi.md, docs/linux-x11.md): read and checked once
// here; each runtime checks its own fields on the raw object it gets back.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { LOCAL_RESOURCE_KINDS, type LocalResourceKind, type Platform } from '@uve/protocol';

export interface BaseManifest<P extends Platform> {
  name: string;
  version: string;
  platform: P;
  requiredResources: LocalResourceKind[];
  minWidth?: number;
  minHeight?: number;
}

export const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 16384;

/**
 * Reads `dir/manifest.json`; `fail` throws the runtime's own error with a reason a storefront can act
 * on. `requiredResources` may be omitted (none) when `resourcesOptional`.
 */
export async function readBaseManifest<P extends Platform>(
  dir: string,
  platform: P,
  fail: (reason: string) => never,
  resourcesOptional = false,
): Promise<{ base: BaseManifest<P>; raw: Record<string, unknown> }> {
  let text: string;
  try {
    text = await readFile(path.join(dir, 'manifest.json'), 'utf8');
  } catch (e) {
    return fail((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'manifest.json not found' : `manifest.json cannot be read: ${(e as Error).message}`);
  }
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return fail('manifest.json is not valid JSON');
  }
  if (!isObj(m)) return fail('manifest.json must be a JSON object');
  if (typeof m.name !== 'string' || m.name === '') fail('manifest "name" must be a non-empty string');
  if (typeof m.version !== 'string' || m.version === '') fail('manifest "version" must be a non-empty string');
  if (m.platform !== platform) fail(`manifest "platform" must be "${platform}" (got ${JSON.stringify(m.platform)})`);
  const resources = m.requiredResources ?? (resourcesOptional ? [] : undefined);
  if (!Array.isArray(resources)) fail('manifest "requiredResources" must be an array');
  for (const r of resources as unknown[]) {
    if (!(LOCAL_RESOURCE_KINDS as readonly unknown[]).includes(r)) fail(`manifest "requiredResources" has unknown kind ${JSON.stringify(r)} (known: ${LOCAL_RESOURCE_KINDS.join(', ')})`);
  }
  for (const k of ['minWidth', 'minHeight'] as const) {
    if (m[k] !== undefined && !isPositiveInt(m[k])) fail(`manifest "${k}" must be a positive integer of at most 16384`);
  }
  return {
    raw: m,
    base: {
      name: m.name as string,
      version: m.version as string,
      platform,
      requiredResources: [...new Set(resources as LocalResourceKind[])],
      ...(m.minWidth !== undefined ? { minWidth: m.minWidth as number } : {}),
      ...(m.minHeight !== undefined ? { minHeight: m.minHeight as number } : {}),
    },
  };
}
