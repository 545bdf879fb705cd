// Where the image builders find things: the repository, docker/, the build folder; and where the
// repository goes in an image.
import fs from 'node:fs';
import path from 'node:path';

/** docker/ (this file runs from docker/dist, or from docker/src under the tests) */
export const DOCKER_DIR = path.resolve(__dirname, '..');
export const ROOT = path.resolve(DOCKER_DIR, '..');
/** build contexts and hash caches (git-ignored) */
export const BUILD_DIR = path.join(DOCKER_DIR, '.build');
export const AGENT_DIR = path.join(ROOT, 'apps', 'vm-agent');
/** the app's place in the image: the repository layout is kept below it */
export const APP_ROOT = '/app';

/** a file of the repository at its place in the image (below /app) */
export function appPath(hostPath: string): string {
  return path.posix.join(APP_ROOT, path.relative(ROOT, hostPath));
}

export function readJson<T = unknown>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}
