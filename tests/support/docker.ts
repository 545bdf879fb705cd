// The real Docker engine for the DOCKER provider's tests: its presence (a missing engine fails the
// run with a clear message; CI's .ci/run starts one), the agent images (docker/build-images.js, a
// no-op when they are up to date), container events as a Collector, and clean-up by label.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import Docker from 'dockerode';
import { Collector, REPO_ROOT } from './agent-harness';

export interface DockerEvent {
  /** container id */
  id: string;
  /** create, start, die, kill, stop, destroy, "health_status: healthy", ... */
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  time: number;
}

/** Fails (does not skip) when no engine answers: these tests are about the engine. */
export async function requireDocker(docker: Docker, timeoutMs = 5_000): Promise<void> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    await (docker.ping as (o: { abortSignal: AbortSignal }) => Promise<unknown>)({ abortSignal: ac.signal });
  } catch (e) {
    throw new Error(
      `No Docker engine answers at ${process.env.DOCKER_HOST || 'unix:///var/run/docker.sock'} (${(e as Error).message}). ` +
        'The DOCKER provider tests need one: start it with `dockerd --iptables=false --bridge=none &` (CI\'s .ci/run does).',
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs docker/build-images.js (nothing is rebuilt when the images match their inputs); `args` such
 * as --wasm-image NAME:TAG give a suite images of its own.
 */
export function buildAgentImages(timeoutMs = 15 * 60_000, args: string[] = []): Promise<string> {
  return buildImages('build-images.js', timeoutMs, args);
}

/** Runs docker/build-stack-images.js (cached by input hash like the agent images). */
export function buildStackImages(timeoutMs = 15 * 60_000, args: string[] = []): Promise<string> {
  return buildImages('build-stack-images.js', timeoutMs, args);
}

function buildImages(name: string, timeoutMs: number, args: string[]): Promise<string> {
  const script = join(REPO_ROOT, 'docker', name);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, '--quiet', ...args], { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${script} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(`${stdout}${stderr}`);
    });
  });
}

/** Container events (from now on) matching `filters`, collected for waitFor. */
export interface ContainerEvents {
  events: Collector<DockerEvent>;
  /** calls `fn` with every later event until the returned function is called */
  subscribe(fn: (e: DockerEvent) => void): () => void;
  close(): void;
}

export async function containerEvents(docker: Docker, filters: Record<string, string[]>): Promise<ContainerEvents> {
  const events = new Collector<DockerEvent>();
  const listeners = new Set<(e: DockerEvent) => void>();
  const stream = (await docker.getEvents({ filters: { type: ['container'], ...filters } })) as NodeJS.ReadableStream & { destroy(): void };
  let buf = '';
  stream.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!line) continue;
      const e = JSON.parse(line) as DockerEvent;
      const ev = { ...e, id: e.id ?? e.Actor?.ID };
      events.push(ev);
      for (const fn of [...listeners]) fn(ev);
    }
  });
  stream.on('error', () => undefined);
  return {
    events,
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    close: () => stream.destroy(),
  };
}

/** Force-removes every container carrying `label` (key=value); returns how many. */
export async function removeContainersLabelled(docker: Docker, label: string): Promise<number> {
  const list = await docker.listContainers({ all: true, filters: { label: [label] } });
  await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  return list.length;
}

/** `docker <args>` with the CLI, as an operator would type it. */
export function dockerCli(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('docker', args, { timeout: 60_000, ...opts }, (err, stdout, stderr) => (err ? reject(new Error(`docker ${args.join(' ')}: ${err.message} ${stderr}`)) : resolve(stdout)));
  });
}

/** the last lines of a container's output (for failure messages) */
export async function containerLogs(docker: Docker, id: string, tail = 60): Promise<string> {
  try {
    const buf = (await docker.getContainer(id).logs({ stdout: true, stderr: true, tail, follow: false })) as unknown as Buffer;
    // no TTY: frames of [stream, 0, 0, 0, size (uint32 BE)] + payload, stdout and stderr interleaved
    let text = '';
    for (let at = 0; at + 8 <= buf.length; ) {
      const size = buf.readUInt32BE(at + 4);
      text += buf.subarray(at + 8, at + 8 + size).toString('utf8');
      at += 8 + size;
    }
    return text;
  } catch (e) {
    return `(no logs: ${(e as Error).message})`;
  }
}
