// A one-node Docker Swarm on the test engine for the SWARM provider's tests: `docker swarm init`
// unless the engine is already in a swarm, this node labelled for the platforms under test, and
// afterwards this suite's services removed, the labels taken off and the swarm left (only when
// this suite made it).
import type Docker from 'dockerode';
import { dockerCli } from './docker';

export interface SwarmMembership {
  nodeId: string;
  /** whether this suite initialized the swarm (and so leaves it) */
  initialized: boolean;
  leave(): Promise<void>;
}

export async function joinSwarm(docker: Docker, gatewayLabel: string, platforms: string[]): Promise<SwarmMembership> {
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
      await removeServices();
      if (initialized) {
        await dockerCli(['swarm', 'leave', '--force']);
      } else {
        await dockerCli(['node', 'update', ...labels.flatMap((l) => ['--label-rm', l]), nodeId]).catch(() => undefined);
      }
    },
  };
}
