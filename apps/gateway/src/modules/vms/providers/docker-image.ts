// The Docker engine and the VM agent images, as the DOCKER provider needs them. Images are built
// by `npm run docker:images` (docker/build-images.js, FROM scratch from local files); the gateway
// never builds or pulls one, it only checks that they are there (docs/docker.md).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Docker from 'dockerode';
import type { Platform } from '@uve/protocol';

/** the command that builds the images (root package.json script running docker/build-images.js) */
export const BUILD_IMAGES_COMMAND = 'npm run docker:images';
/** image label holding the hash of the image's inputs (set by docker/build-images.js) */
export const INPUTS_LABEL = 'uve.inputs.sha256';

/** An engine connection: a dockerode instance, or its options (default: DOCKER_HOST, else /var/run/docker.sock). */
export type DockerConnection = Docker | Docker.DockerOptions;

export function connectDocker(conn?: DockerConnection): Docker {
  if (conn instanceof Docker) return conn;
  // dockerode reads DOCKER_HOST (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH) when given no options
  return conn && Object.keys(conn).length ? new Docker(conn) : new Docker();
}

/** where a connection points, for messages */
export function describeConnection(conn?: DockerConnection): string {
  const o = (conn instanceof Docker ? (conn.modem as { socketPath?: unknown; host?: string; port?: number | string }) : conn) ?? {};
  // docker-modem keeps a function (the default socket's lookup) here when none was given
  if (typeof o.socketPath === 'string') return `unix://${o.socketPath}`;
  if (o.host) return `${String(o.host)}${o.port ? `:${String(o.port)}` : ''}`;
  return process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
}

let cachedVersion: string | null = null;

/** version of apps/vm-agent (its package.json), the tag of the default images */
export function agentVersion(): string {
  if (cachedVersion) return cachedVersion;
  // src/ and dist/ sit at the same depth: apps/gateway/{src,dist}/modules/vms/providers
  const candidates = [path.resolve(__dirname, '..', '..', '..', '..', '..', 'vm-agent', 'package.json')];
  try {
    candidates.push(require.resolve('@uve/vm-agent/package.json'));
  } catch {
    // not installed as a package
  }
  for (const file of candidates) {
    try {
      const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
      if (typeof v === 'string' && v) return (cachedVersion = v);
    } catch {
      // next
    }
  }
  throw new Error('cannot tell the VM agent version (apps/vm-agent/package.json not found); set the images explicitly');
}

/** default image of each platform: uve/vm-agent-wasm:<agent version>, uve/vm-agent-x11:<agent version> */
export function defaultImages(version = agentVersion()): Record<Platform, string> {
  return { WASM: `uve/vm-agent-wasm:${version}`, LINUX_X11: `uve/vm-agent-x11:${version}` };
}

/** True when a Docker engine answers a ping within `timeoutMs`. */
export async function dockerAvailable(options: { docker?: DockerConnection; timeoutMs?: number } = {}): Promise<boolean> {
  const timeoutMs = options.timeoutMs ?? 2_000;
  const docker = connectDocker(options.docker);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    // ping takes an abortSignal at run time; @types/dockerode does not declare the options
    await (docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>)({ abortSignal: ac.signal });
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export class MissingImageError extends Error {
  constructor(readonly missing: { platform: Platform; image: string }[], engine: string) {
    super(
      `Docker image${missing.length > 1 ? 's' : ''} ${missing.map((m) => `${m.image} (${m.platform} VMs)`).join(', ')} ` +
        `not found on the Docker engine at ${engine}. Build ${missing.length > 1 ? 'them' : 'it'} on that engine's machine with ` +
        `\`${BUILD_IMAGES_COMMAND}\` (node docker/build-images.js) after \`npm run build\`; the gateway does not build or pull images.`,
    );
    this.name = 'MissingImageError';
  }
}

export interface ImageInfo {
  platform: Platform;
  image: string;
  id: string;
  /** hash of the build inputs (label uve.inputs.sha256), null for images not made by build-images.js */
  inputsHash: string | null;
}

/**
 * Checks that the image of every platform in `platforms` exists; throws a MissingImageError naming
 * the build command otherwise.
 */
export async function ensureImages(
  images: Partial<Record<Platform, string>>,
  platforms: Platform[] = Object.keys(images) as Platform[],
  conn?: DockerConnection,
): Promise<ImageInfo[]> {
  const docker = connectDocker(conn);
  const found: ImageInfo[] = [];
  const missing: { platform: Platform; image: string }[] = [];
  for (const platform of platforms) {
    const image = images[platform];
    if (!image) throw new Error(`no Docker image configured for ${platform} VMs`);
    try {
      const info = await docker.getImage(image).inspect();
      found.push({ platform, image, id: info.Id, inputsHash: info.Config?.Labels?.[INPUTS_LABEL] ?? null });
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) missing.push({ platform, image });
      else throw e;
    }
  }
  if (missing.length) throw new MissingImageError(missing, describeConnection(conn));
  return found;
}
