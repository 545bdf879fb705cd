// The docker CLI: the engine check, image labels, `docker build` and the removal of the image a
// build replaced.
import { spawn, spawnSync, type SpawnSyncOptions, type SpawnSyncReturns } from 'node:child_process';
import { BuildError } from './log';

export function docker(args: string[], opts: SpawnSyncOptions = {}): SpawnSyncReturns<string> {
  return spawnSync('docker', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts }) as SpawnSyncReturns<string>;
}

/** fails with what to do when the CLI is missing or no engine answers */
export function requireEngine(): void {
  const r = docker(['version', '--format', '{{.Server.Version}}']);
  if (r.error) throw new BuildError(`the docker CLI is not installed (${r.error.message}); Debian: apt-get install docker.io`);
  if (r.status !== 0) throw new BuildError(`no Docker engine answers (${(r.stderr || '').trim()}); start one, e.g. dockerd --iptables=false --bridge=none`);
}

/** one value of an image's inspect output (a Go template), null when there is no such image */
export function inspectImage(image: string, format: string): string | null {
  const r = docker(['image', 'inspect', '--format', format, image]);
  return r.status === 0 ? r.stdout.trim() : null;
}

export function imageLabel(image: string, label: string): string | null {
  return inspectImage(image, `{{ index .Config.Labels "${label}" }}`);
}

/** `docker build` (BuildKit when the CLI has buildx, else the classic builder: the Dockerfiles suit both) */
export function dockerBuild(args: string[], image: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('docker', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { DOCKER_CLI_HINTS: 'false', ...process.env } });
    let out = '';
    const keep = (d: Buffer) => (out = (out + d.toString()).slice(-100_000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (e) => reject(new BuildError(`docker could not run: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new BuildError(`docker build of ${image} failed (exit ${code}):\n${out.trim()}`))));
  });
}

/**
 * Builds `image` with `docker <args>`, then removes the image it replaced, which would stay behind
 * untagged, unless a container still uses it (`docker image rm` refuses) or another name still tags
 * it (the same build under another name, e.g. a test suite's own images).
 */
export async function buildReplacing(image: string, args: string[]): Promise<void> {
  const oldId = inspectImage(image, '{{.Id}}');
  await dockerBuild(args, image);
  if (oldId && inspectImage(image, '{{.Id}}') !== oldId && inspectImage(oldId, '{{len .RepoTags}}') === '0') docker(['image', 'rm', oldId]);
}
