// One transaction and what it leaves to do once committed: session events to publish, UVE-2
// commands (already in the outbox, in the same transaction) to send at once. Every service that
// changes state and tells a VM or a subscriber about it goes through here.
import type { DataSource, EntityManager } from 'typeorm';
import type { VmCommand } from '@uve/protocol';
import type { Logger } from './logger';
import type { NotificationPayload, SessionEventPayload, UvePubSub } from './pubsub';
import { fanoutTrace } from './fanout-trace';

/** A command written to the outbox by a transaction, to send once it has committed. */
export interface QueuedCommand {
  id: string;
  vmId: string;
  command: VmCommand;
  expiresAt: Date;
}

/** The outbox as a transaction sees it (modules/vmm/vm-commands.service.ts). */
export interface CommandOutbox {
  enqueue(em: EntityManager, vmId: string, command: VmCommand, sessionId?: string | null): Promise<QueuedCommand>;
  flush(queued: QueuedCommand[], committedAt?: number): Promise<void>;
}

/** how long a request waits for its commands to reach the queue before leaving them to the relay */
const FLUSH_WAIT_MS = 1_000;

export class UnitOfWork {
  readonly events: SessionEventPayload[] = [];
  readonly commands: QueuedCommand[] = [];
  /** notifications to users other than the session's owner (watchers, invitees), sent after the commit */
  readonly notifications: { userId: string; payload: NotificationPayload }[] = [];

  constructor(readonly em: EntityManager, private readonly outbox: CommandOutbox) {}

  /** Writes a UVE-2 command to the outbox; it leaves when the transaction has committed. */
  async command(vmId: string, command: VmCommand, sessionId: string | null = null): Promise<void> {
    this.commands.push(await this.outbox.enqueue(this.em, vmId, command, sessionId));
  }

  /** Tells a user (their `notifications` subscription) once the transaction has committed. */
  notify(userId: string, payload: Omit<NotificationPayload, 'at'> & { at?: string }): void {
    this.notifications.push({ userId, payload: { at: payload.at ?? new Date().toISOString(), ...payload } });
  }
}

export class Transactions {
  private readonly committedListeners: ((uow: UnitOfWork) => void)[] = [];

  constructor(
    private readonly ds: DataSource,
    private readonly pubsub: UvePubSub,
    private readonly outbox: CommandOutbox,
    private readonly log: Logger,
  ) {}

  /** told after every commit (the pool manager listens for load changes) */
  onCommitted(listener: (uow: UnitOfWork) => void): void {
    this.committedListeners.push(listener);
  }

  async run<T>(fn: (uow: UnitOfWork) => Promise<T>): Promise<T> {
    let uow!: UnitOfWork;
    const result = await this.ds.transaction((em) => fn((uow = new UnitOfWork(em, this.outbox))));
    const committedAt = Date.now();
    for (const ev of uow.events) {
      fanoutTrace?.published(ev.id);
      this.pubsub.publish('SESSION_EVENT', ev.sessionId, ev);
      this.pubsub.publish('NOTIFICATION', ev.ownerId, { at: ev.at, sessionEvent: ev, invitationId: null });
    }
    for (const n of uow.notifications) this.pubsub.publish('NOTIFICATION', n.userId, n.payload);
    // Sent now so the VM hears at once; the outbox keeps them if this fails or stalls (Redis
    // unreachable), and the relay sends them later: the caller waits a bounded time, never longer.
    const flushed = this.outbox.flush(uow.commands, committedAt).catch((e: Error) => this.log.warn('UVE-2 commands left to the relay', { error: e.message }));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([flushed, new Promise<void>((resolve) => (timer = setTimeout(resolve, FLUSH_WAIT_MS)))]);
    clearTimeout(timer);
    for (const l of this.committedListeners) l(uow);
    return result;
  }
}
