// UVE-4 for one session: the UA asks for a local resource, the VM asks the UC (the session's PLAYER
// socket) and hands the answer back. The terminal's declared local resources (from the UA request)
// bound what may be asked at all, so a UA cannot probe a terminal that never offered a sensor.
import type { LocalResourceKind } from '@uve/protocol';
import type { ResourceAnswer, ResourceBroker } from '../runtimes/runtime';

export const RESOURCE_ANSWER_TIMEOUT_MS = 10_000;

export interface ResourcePeer {
  /** sends `resourceRequest` to the PLAYER; false when no player is connected */
  sendRequest(id: number, kind: LocalResourceKind): boolean;
  /**
   * No player yet, but one is coming: the UA starts when the session is prepared, before its UC
   * connects, so what it asks at start is held for the player (within the same answer timeout).
   */
  expectsPlayer(): boolean;
  /** UVE-5 session.resourceRequested */
  reportRequested(kind: LocalResourceKind): void;
}

interface Pending {
  kind: LocalResourceKind;
  /** handed to a player (else held for the first one) */
  sent: boolean;
  resolve: (a: ResourceAnswer) => void;
  timer: NodeJS.Timeout;
}

export class SessionResourceBroker implements ResourceBroker {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  constructor(
    private readonly offered: readonly LocalResourceKind[],
    private readonly peer: ResourcePeer,
    private readonly timeoutMs = RESOURCE_ANSWER_TIMEOUT_MS,
  ) {}

  request(kind: LocalResourceKind): Promise<ResourceAnswer> {
    if (this.closed) return Promise.resolve({ ok: false, reason: 'session ended' });
    if (!this.offered.includes(kind)) return Promise.resolve({ ok: false, reason: 'not offered by terminal' });
    const id = this.nextId++;
    return new Promise<ResourceAnswer>((resolve) => {
      const timer = setTimeout(() => {
        const p = this.pending.get(id);
        this.settle(id, { ok: false, reason: p?.sent === false ? `no player connected within ${this.timeoutMs / 1000} s` : `no answer within ${this.timeoutMs / 1000} s` });
      }, this.timeoutMs);
      const p: Pending = { kind, sent: false, resolve, timer };
      this.pending.set(id, p);
      if (this.peer.sendRequest(id, kind)) {
        p.sent = true;
        this.peer.reportRequested(kind);
      } else if (!this.peer.expectsPlayer()) {
        this.settle(id, { ok: false, reason: 'no player connected' });
      }
    });
  }

  /** A player connected: it gets the requests held for it. */
  playerJoined(): void {
    for (const [id, p] of this.pending) {
      if (p.sent) continue;
      if (!this.peer.sendRequest(id, p.kind)) return;
      p.sent = true;
      this.peer.reportRequested(p.kind);
    }
  }

  /** The UC's `resource` message. Unknown ids (late answers after a timeout) are ignored. */
  answer(id: number, answer: ResourceAnswer): void {
    const p = this.pending.get(id);
    if (!p) return;
    if (answer.ok && answer.value.kind !== p.kind) {
      this.settle(id, { ok: false, reason: `answer of kind ${answer.value.kind} to a ${p.kind} request` });
      return;
    }
    this.settle(id, answer);
  }

  /** The player went away: nobody will answer what it was asked. */
  playerGone(reason = 'player disconnected'): void {
    for (const [id, p] of [...this.pending]) if (p.sent || !this.peer.expectsPlayer()) this.settle(id, { ok: false, reason });
  }

  close(): void {
    this.closed = true;
    for (const id of [...this.pending.keys()]) this.settle(id, { ok: false, reason: 'session ended' });
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  private settle(id: number, a: ResourceAnswer): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.resolve(a);
  }
}
