// A one-node Docker Swarm on the test engine for the SWARM provider's tests: `docker swarm init`
// unless the engine is already in a swarm, this node labelled for the platforms under test, and
// afterwards this suite's services removed, the labels taken off and the swarm left (only when
// this suite made it). Suites on the swarm take turns (a lock file): one leaving the swarm it made
// must not pull it from under another that found it there.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import { dockerCli } from './docker';
import { until } from './services';

const LOCK = path.join(os.tmpdir(), 'uve-test-swarm.lock');

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** the swarm for this process alone: waits (bounded) while another suite's process holds it */
async function lockSwarm(timeoutMs: number): Promise<() => void> {
  await until('the other swarm suite to finish', timeoutMs, async () => {
    try {
      fs.writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
      return true;
    } catch {
      const holder = Number(fs.readFileSync(LOCK, 'utf8').trim() || 0);
      if (holder && !alive(holder)) fs.rmSync(LOCK, { force: true }); // left by a killed run
      return null;
    }
  }, 500);
  return () => {
    if (fs.readFileSync(LOCK, 'utf8').trim() === String(process.pid)) fs.rmSync(LOCK, { force: true });
  };
}

export interface SwarmMembership {
  nodeId: string;
  /** whether this suite initialized the swarm (and so leaves it) */
  initialized: boolean;
  leave(): Promise<void>;
}

export async function joinSwarm(docker: Docker, gatewayLabel: string, platforms: string[], waitMs = 15 * 60_000): Promise<SwarmMembership> {
  const unlock = await lockSwarm(waitMs);
  try {
    return await join(docker, gatewayLabel, platforms, unlock);
  } catch (e) {
    unlock();
    throw e;
  }
}

async function join(docker: Docker, gatewayLabel: string, platforms: string[], unlock: () => void): Promise<SwarmMembership> {
  const state = ((await docker.info()) as { Swarm?: { LocalNodeState?: string } }).Swarm?.LocalNodeState;
  const initialized = state !== 'active';
  if (initialized) await dockerCli(['swarm', 'init', '--advertise-addr', '127.0.0.1']);
  const nodeId = ((await docker.info()) as { Swarm: { NodeID: string } }).Swarm.NodeID;
  const labels = platforms.map((p) => `uve.platform.${p}`);
  await dockerCli(['node', 'update', ...labels.flatMap((l) => ['--label-add', `${l}=true`]), nodeId]);
  const removeServices = async () => {
    const services = await docker.listServices({ filters: { label: [`uve.gateway=${gatewayLabel}`] } });
    await Promise.all(services.map((s) => docker.getService(s.ID).remove().catch(() => undefined)));
  };
  await removeServices(); // left by an earlier, interrupted run
  return {
    nodeId,
    initialized,
    async leave() {
      try {
        await removeServices();
        if (initialized) {
          // the manager may answer "context deadline exceeded" while tasks are still going away: asked again (bounded)
          await until('the node to leave the swarm', 60_000, () => dockerCli(['swarm', 'leave', '--force']).then(() => true, (e: Error) => (/not part of a swarm/.test(e.message) ? true : null)), 1_000);
        } else {
          await dockerCli(['node', 'update', ...labels.flatMap((l) => ['--label-rm', l]), nodeId]).catch(() => undefined);
        }
      } finally {
        unlock();
      }
    },
  };
}
