// UVE-5: what VMs report to the VMM, routed to the services that own each part.
import { uve, type Consumer } from '@uve/queue';
import type { VmEventMessage } from '@uve/protocol';
import type { Services } from '../services';

export function consumeVmReports(services: Services): Consumer {
  const { vms, sessions, log } = services;
  const handle = async (m: VmEventMessage): Promise<void> => {
    switch (m.type) {
      case 'vm.register':
        return vms.onRegister(m);
      case 'vm.heartbeat':
        return vms.onHeartbeat(m);
      case 'vm.stopping':
        return vms.onStopping(m);
      case 'deployment.changed':
        return vms.onDeploymentChanged(m);
      case 'session.connected':
        return sessions.onConnected(m);
      case 'session.disconnected':
        return sessions.onDisconnected(m);
      case 'session.failed':
        return sessions.onFailed(m);
      case 'session.ended':
        return sessions.onEndedByUa(m);
      case 'session.resourceRequested':
        return sessions.onResourceRequested(m);
      case 'session.suspended':
      case 'vmdata.updated':
        // the VMM already moved the session when it sent the command; VM Data lands with reconnection
        log.debug('UVE-5 report noted', { type: m.type, vmId: m.vmId });
        return;
      default: {
        const unknown: { type?: string } = m;
        log.warn('unknown UVE-5 message ignored', { type: unknown.type });
      }
    }
  };
  // several handlers at once: reports of different VMs do not wait for each other
  return uve.consumeVmEvents(services.bus, async (m) => {
    try {
      await handle(m);
    } catch (e) {
      log.error('UVE-5 report failed', { type: m.type, vmId: m.vmId, error: (e as Error).message });
    }
  }, { concurrency: 4 });
}

/** Marks silent VMs OFFLINE (and their sessions DISCONNECTED) on a short interval. */
export function startVmWatchdog(services: Services): { stop(): void } {
  const every = Math.max(250, Math.min(1000, Math.floor(services.config.vmHeartbeatTimeoutMs / 4)));
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    services.vms
      .sweepSilentVms()
      .catch((e: Error) => services.log.error('VM watchdog failed', { error: e.message }))
      .finally(() => (running = false));
  }, every);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
