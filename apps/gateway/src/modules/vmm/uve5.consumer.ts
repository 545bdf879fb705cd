// UVE-5: what VMs report to the VMM, routed to the services that own each part once the report
// guard has checked who sent it (signed by a provisioned VM, fresh, not a replay) and its fields have
// been checked (@uve/protocol's checkVmReport: a report that breaks one fails for good, below, before
// any handler reads it). Session reports go through the inbox (ordered, exactly once in effect);
// acks settle outbox commands; VM reports (register, heartbeat, stopping, deployments) are
// idempotent updates of the VM's record.
import { PermanentFailure, uve, type Consumer } from '@uve/queue';
import { checkVmReport, type VmEventMessage } from '@uve/protocol';
import type { Services } from '../../services';
import { mayPassOnRetry } from '../../common/transient-errors';
import { isSessionReport } from './vm-reports.service';

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
  // the inbox keeps one session's reports in order. A report whose handling failed for a reason
  // that may pass (a dependency down, a transaction that lost to others) is handed over again by the
  // queue (uve.reportToVmm's retries), except a heartbeat: the next one follows. Any other failure
  // (a bug, data PostgreSQL refuses, a report whose fields do not fit) would fail the same way each
  // time: it is logged once and not handed over again. A session report's own application never
  // fails here (the inbox keeps it and retries it itself): what does is storing it, or the inbox's
  // queries around applying it (once stored, its sweeper applies it whatever this hand-over did). Every hand-over of a report (a retry, or a redelivery
  // after the gateway handling it was killed) is the same queue message: the report guard admits it
  // again, as it refuses the same report in another message. Handled again, a report does nothing more
  // (see the top: the inbox, idempotent updates).
  return uve.consumeVmEvents(services.bus, async (m, delivery) => {
    try {
      if (!(await services.reportGuard.admit(m, delivery.id))) return;
      checkVmReport(m);
      await handle(m);
    } catch (e) {
      const transient = mayPassOnRetry(e);
      // a sign of life that could not be recorded for now: the VM's silence is not judged over it
      // (one that fails for good, say malformed, is no sign of life, and must not blind liveness for all)
      if (transient && (m.type === 'vm.heartbeat' || m.type === 'vm.register')) vms.livenessUnrecorded();
      const retried = transient && delivery.attempt < delivery.attempts;
      services.metrics.vmReportsFailed.inc({ type: String(m.type).slice(0, 40), retried: String(retried) });
      const about = { type: m.type, vmId: m.vmId, attempt: delivery.attempt, attempts: delivery.attempts, error: (e as Error).message };
      if (retried) {
        log.warn('UVE-5 report failed; the queue hands it over again', about);
        throw e;
      }
      if (!transient) {
        log.error('UVE-5 report failed for good; it is not handed over again', about);
        throw new PermanentFailure(e);
      }
      if (m.type === 'vm.heartbeat') log.warn('UVE-5 heartbeat not recorded', about);
      else log.error('UVE-5 report failed on its last hand-over; given up', about);
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
  // a tick this late means the gateway itself did not run (a long GC pause, its process stopped or
  // starved): the heartbeats that queued meanwhile are not recorded yet, and judging now would find
  // every VM silent and disconnect all their sessions (tests/faults/gateway-stall.test.ts)
  const lateAfterMs = Math.max(2 * every, Math.floor(services.config.vmHeartbeatTimeoutMs / 2));
  let lastTickAt = Date.now();
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
    const now = Date.now();
    const gap = now - lastTickAt;
    lastTickAt = now;
    if (gap > lateAfterMs) {
      services.log.warn('the gateway did not run for a while: VM silence is judged again once it has listened for a heartbeat timeout', { stalledMs: gap - every });
      services.vms.livenessUnrecorded();
      // nor is anything else judged on this tick: what queued meanwhile (a reconnecting request at
      // its window's end) is handled first
      return;
    }
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
