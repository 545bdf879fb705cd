// When a report from a VM is a sign of life: pure rules VmsService applies to registrations and
// heartbeats (no PostgreSQL here, so each rule is unit-tested on its own).
import type { Vm } from './vms.entity';

/** statusReason of a VM the watchdog found silent: the one OFFLINE that is only the VMM's guess */
export const HEARTBEAT_LOST_REASON = 'heartbeat lost';

/**
 * Whether a report was sent after the VM's record last changed (it went OFFLINE): one queued before
 * (while no gateway ran, its VM since stopped) says nothing about the VM now.
 */
export const sentSinceOffline = (vm: Pick<Vm, 'updatedAt'>, at: string): boolean => Date.parse(at) > vm.updatedAt.getTime();

/**
 * Whether a heartbeat brings an OFFLINE VM back to IDLE: only when the VMM went by its silence
 * alone (a network hiccup) and the heartbeat was sent since. A VM its provider saw go (its
 * container died, its service was removed) or that said it was stopping still heartbeats while it
 * winds down (a swarm task's stop grace): that is no sign of life, and brought back it would be
 * picked for sessions and by the pool as a warm VM until the heartbeat timeout.
 */
export function heartbeatRevives(vm: Pick<Vm, 'status' | 'statusReason' | 'updatedAt' | 'destroyedAt'>, at: string): boolean {
  return vm.status === 'OFFLINE' && !vm.destroyedAt && vm.statusReason === HEARTBEAT_LOST_REASON && sentSinceOffline(vm, at);
}
