// UVE-5: what VMs report to the VMM, routed to the services that own each part once the report
// guard has checked who sent it (signed by a provisioned VM, fresh, not a replay). Session reports go
// through the inbox (ordered, exactly once in effect); acks settle outbox commands; VM reports
// (register, heartbeat, stopping, deployments) are idempotent updates of the VM's record.
import { uve, type Consumer } from '@uve/queue';
import type { VmEventMessage } from '@uve/protocol';
import type { Services } from '../../services';
import { isSessionReport } from './vm-reports.service';
import type { AdmittedReport } from './report-guard';

export function consumeVmReports(services: Services): Consumer {
  const { vms, reports, commands, log } = services;
  const handle = async (m: VmEventMessage): Promise<void> => {
    if (isSessionReport(m)) return reports.receive(m);
    switch (m.type) {
      case 'command.ack':
        return commands.onAck(m);
      case 'vm.register':
        return vms.onRegister(m);
      case 'vm.heartbeat':
        return vms.onHeartbeat(m);
      case 'vm.stopping':
        return vms.onStopping(m);
      case 'deployment.changed':
        return vms.onDeploymentChanged(m);
      default: {
        const unknown: { type?: string } = m;
        log.warn('unknown UVE-5 message ignored', { type: unknown.type });
      }
    }
  };
  // several handlers at once: reports of different VMs (and sessions) do not wait for each other;
  // the inbox keeps one session's reports in order. A report whose handling threw is handed over
  // again by the queue (uve.reportToVmm's retries), except a heartbeat: the next one follows.
  return uve.consumeVmEvents(services.bus, async (m) => {
    let admitted: AdmittedReport | null = null;
    try {
      admitted = await services.reportGuard.admit(m);
      if (!admitted) return;
      await handle(m);
    } catch (e) {
      // a sign of life that could not be recorded: the VM's silence is not judged over it
      if (m.type === 'vm.heartbeat' || m.type === 'vm.register') vms.livenessUnrecorded();
      services.metrics.vmReportsFailed.inc({ type: String(m.type).slice(0, 40) });
      await admitted?.release();
      log.error(m.type === 'vm.heartbeat' ? 'UVE-5 heartbeat not recorded' : 'UVE-5 report failed; the queue hands it over again', { type: m.type, vmId: m.vmId, error: (e as Error).message });
      throw e;
    }
  }, { concurrency: 4 });
}

/**
 * The VMM's housekeeping on a short interval: silent VMs go OFFLINE (their sessions DISCONNECTED),
 * reconnect windows close, monitorings and invitations of ended sessions lapse, stopped VMs are destroyed and old records pruned.
 */
export function startVmWatchdog(services: Services, reports: Consumer): { stop(): Promise<void> } {
  const every = Math.max(250, Math.min(1000, Math.floor(services.config.vmHeartbeatTimeoutMs / 4)));
  let running: Promise<void> | null = null;
  let passes = 0;
  const pass = async (): Promise<void> => {
    // silence counts only while this gateway can hear VMs (their reports come through `reports`)
    await services.vms.sweepSilentVms(reports.connectedSince());
    await services.sessions.closeReconnectWindows();
    // watchers and guests of sessions that are over leave them; unanswered invitations expire
    await services.watchers.sweep();
    await services.invitations.sweep();
    await services.vms.reapStoppedVms();
    await services.uas.sweepRemovals();
    // applied reports are worth a day for inspection; pruning is cheap but needs no hurry
    if (passes++ % 60 === 0) await services.reports.prune(24 * 3600_000);
  };
  const timer = setInterval(() => {
    running ??= pass()
      .catch((e: Error) => services.log.error('VM watchdog failed', { error: e.message }))
      .finally(() => (running = null));
  }, every);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
