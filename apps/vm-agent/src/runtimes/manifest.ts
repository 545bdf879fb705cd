// What every UA package manifest has (docs/packages.md): the one definition is @uve/protocol's
// checkManifest; here it is read from a folder, and each runtime checks its own fields on the raw
// object it gets back.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { checkManifest, isPlainObject, MANIFEST_FILE, type Platform, type UaManifest } from '@uve/protocol';

/** The fields both runtimes use, as the one manifest type defines them. */
export type BaseManifest<P extends Platform> = Pick<UaManifest<P>, 'name' | 'version' | 'platform' | 'requiredResources' | 'minWidth' | 'minHeight'>;

export const isObj = isPlainObject;

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
    text = await readFile(path.join(dir, MANIFEST_FILE), 'utf8');
  } catch (e) {
    return fail((e as NodeJS.ErrnoException).code === 'ENOENT' ? 'manifest.json not found' : `manifest.json cannot be read: ${(e as Error).message}`);
  }
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return fail('manifest.json is not valid JSON');
  }
  let checked;
  try {
    checked = checkManifest(m, { platform, resourcesOptional });
  } catch (e) {
    return fail((e as Error).message);
  }
  return {
    raw: m as Record<string, unknown>,
    base: {
      name: checked.name,
      version: checked.version,
      platform,
      requiredResources: checked.requiredResources,
      ...(checked.minWidth !== undefined ? { minWidth: checked.minWidth } : {}),
      ...(checked.minHeight !== undefined ? { minHeight: checked.minHeight } : {}),
    },
  };
}
