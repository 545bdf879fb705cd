// The VM's side of UVE-2/UVE-5 on the message bus: commands in (in order, one at a time), events
// out (in order, retried until Redis takes them, never throwing into the session that reported).
import { reportKey, signReport, uve, type MessageBus, type Consumer } from '@uve/queue';
import type { VmCommand, VmEventMessage } from '@uve/protocol';
import { clipReportText } from '@uve/protocol';
import type { Logger } from '../common/log';
import { errorMessage } from '../common/errors';
import { CommandGate } from './command-gate';

/** longest pause between two attempts at one report */
const REPORT_RETRY_MAX_MS = 2_000;

/** A UVE-5 event as the agent composes it; the link adds vmId, the time, a nonce and its signature. */
export type VmReport = VmEventMessage extends infer E ? (E extends VmEventMessage ? Omit<E, 'vmId' | 'at'> : never) : never;

export class VmmLink {
  private chain: Promise<void> = Promise.resolve();
  private consumer: Consumer | null = null;
  private readonly gate = new CommandGate();
  private closed = false;
  /** reports handed to report() and not yet accepted by Redis, oldest first (their times) */
  private readonly undelivered: number[] = [];
  /** signs each report: sha256 of the VM secret, the key the VMM holds as the secret's hash */
  private readonly key: Buffer;

  constructor(
    private readonly bus: MessageBus,
    private readonly vmId: string,
    vmSecret: string,
    private readonly log: Logger,
  ) {
    this.key = reportKey(vmSecret);
  }

  /** Queues one UVE-5 event; events leave in the order they were reported. */
  report(event: VmReport): Promise<void> {
    // a text over the VMM's limit would get the whole report refused at its edge
    const message = signReport({ ...clipReportText(event), vmId: this.vmId, at: new Date().toISOString() } as VmEventMessage, this.key);
    this.undelivered.push(Date.now());
    this.chain = this.chain.then(async () => {
      // retried until Redis takes it: the VMM applies a session's reports in seq order, so a
      // dropped one would hold back every later report of its session
      for (let attempt = 1; ; attempt++) {
        try {
          await uve.reportToVmm(this.bus, message);
          this.log.debug('reported', { type: message.type });
          break;
        } catch (e) {
          if (this.closed) {
            this.log.error('report not delivered: the link is closed', { type: message.type, error: errorMessage(e) });
            break;
          }
          const delay = Math.min(REPORT_RETRY_MAX_MS, 100 * 2 ** Math.min(attempt - 1, 10));
          this.log.warn('could not report to the VMM; retrying', { type: message.type, attempt, inMs: delay, error: errorMessage(e) });
          await new Promise((r) => setTimeout(r, delay));
        }
      }
      this.undelivered.shift();
    });
    return this.chain;
  }

  /**
   * Takes UVE-2 commands one at a time. Handlers must return quickly (long work such as a download
   * runs in the background), or they would hold up a terminate queued behind them.
   */
  consumeCommands(handler: (c: VmCommand) => Promise<void>): void {
    this.consumer = uve.consumeVmCommands(this.bus, this.vmId, (c) => this.handle(c, handler));
  }

  /**
   * One UVE-2 command per the delivery rules (CommandGate): run once per commandId, dropped when
   * expired, and acknowledged (command.ack) when it carries an id, whatever the outcome.
   */
  async handle(c: VmCommand, handler: (c: VmCommand) => Promise<void>): Promise<void> {
    const type = (c as { type?: string }).type;
    const id = c.commandId;
    const admission = this.gate.admit(c);
    if (admission.action === 'duplicate') {
      this.log.info('repeated command ignored', { type, command: id });
      // the first ack may be what was lost: say again how it went (nothing while it still runs)
      if (admission.outcome) void this.report({ type: 'command.ack', commandId: id!, outcome: admission.outcome, error: admission.error ?? null });
      return;
    }
    if (admission.action === 'expired') {
      this.log.warn('expired command dropped', { type, command: id, expiresAt: c.expiresAt });
      if (id) void this.report({ type: 'command.ack', commandId: id, outcome: 'expired' });
      return;
    }
    let error: string | null = null;
    try {
      await handler(c);
    } catch (e) {
      error = errorMessage(e);
      this.log.error('command failed', { type, command: id, error });
    }
    if (!id) return;
    const outcome = error === null ? 'done' : 'failed';
    this.gate.settle(id, outcome, error);
    void this.report({ type: 'command.ack', commandId: id, outcome, ...(error !== null ? { error } : {}) });
  }

  /** reports not yet accepted by Redis */
  get pendingReports(): number {
    return this.undelivered.length;
  }

  /** how long the oldest report not yet accepted by Redis has waited (0 when none waits) */
  oldestPendingMs(now = Date.now()): number {
    return this.undelivered.length ? now - this.undelivered[0] : 0;
  }

  async stopCommands(): Promise<void> {
    const c = this.consumer;
    this.consumer = null;
    await c?.close();
  }

  /** stops retrying reports (the VM is going away) */
  close(): void {
    this.closed = true;
  }

  /** waits until every queued report was handed to Redis */
  flush(): Promise<void> {
    return this.chain;
  }
}
