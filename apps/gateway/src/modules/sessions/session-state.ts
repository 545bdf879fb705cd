// The one state machine of a session. Every change goes through `assertTransition`; anything else
// is refused with CONFLICT, so a late or duplicated message cannot move a session backwards.
import { conflict } from '../../common/errors';
import type { SessionEventType, SessionState } from './sessions.enums';

const NEXT: Record<SessionState, readonly SessionState[]> = {
  REQUESTED: ['ASSIGNED', 'ENDED', 'FAILED'],
  ASSIGNED: ['ACTIVE', 'DISCONNECTED', 'ENDED', 'FAILED'],
  ACTIVE: ['SUSPENDED', 'DISCONNECTED', 'ENDED', 'FAILED'],
  SUSPENDED: ['ACTIVE', 'DISCONNECTED', 'ENDED', 'FAILED'],
  DISCONNECTED: ['ASSIGNED', 'ACTIVE', 'ENDED', 'FAILED'],
  ENDED: [],
  FAILED: [],
};

/** Sessions a VM is serving now (a lost VM disconnects them); slots are SLOT_SESSION_STATES in @uve/protocol. */
export const LIVE_STATES: readonly SessionState[] = ['ASSIGNED', 'ACTIVE', 'SUSPENDED'];
/** Sessions that are not over. */
export const OPEN_STATES: readonly SessionState[] = ['REQUESTED', 'ASSIGNED', 'ACTIVE', 'SUSPENDED', 'DISCONNECTED'];

export function canTransition(from: SessionState, to: SessionState): boolean {
  return NEXT[from].includes(to);
}

export function assertTransition(from: SessionState, to: SessionState, action: string): void {
  if (!canTransition(from, to)) {
    throw conflict(`Cannot ${action}: the session is ${from}${NEXT[from].length ? ` (from ${from} it can go to ${NEXT[from].join(', ')})` : ' and that is final'}.`, { state: from });
  }
}

/** The event a transition records. */
export function eventFor(from: SessionState, to: SessionState): SessionEventType {
  switch (to) {
    case 'ASSIGNED':
      return from === 'DISCONNECTED' ? 'RECONNECTED' : 'ASSIGNED';
    case 'ACTIVE':
      return from === 'SUSPENDED' ? 'RESUMED' : from === 'DISCONNECTED' ? 'RECONNECTED' : 'CONNECTED';
    case 'REQUESTED':
      return 'REQUESTED';
    default:
      return to;
  }
}
