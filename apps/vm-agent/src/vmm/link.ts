// The VM's side of UVE-2/UVE-5 on the message bus: commands in (in order, one at a time), events
// out (in order, never throwing: a lost report is logged, it must not take a session down).
import { uve, type MessageBus, type Consumer } from '@uve/queue';
import type { VmCommand, VmEventMessage } from '@uve/protocol';
import type { Logger } from '../common/log';
import { errorMessage } from '../common/errors';

/** A UVE-5 event as the agent composes it; the link adds vmId and the time. */
export type VmReport = VmEventMessage extends infer E ? (E extends VmEventMessage ? Omit<E, 'vmId' | 'at'> : never) : never;

export class VmmLink {
  private chain: Promise<void> = Promise.resolve();
  private consumer: Consumer | null = null;

  constructor(
    private readonly bus: MessageBus,
    private readonly vmId: string,
    private readonly log: Logger,
  ) {}

  /** Queues one UVE-5 event; events leave in the order they were reported. */
  report(event: VmReport): Promise<void> {
    const message = { ...event, vmId: this.vmId, at: new Date().toISOString() } as VmEventMessage;
    this.chain = this.chain.then(async () => {
      try {
        await uve.reportToVmm(this.bus, message);
        this.log.debug('reported', { type: message.type });
      } catch (e) {
        this.log.error('could not report to the VMM', { type: message.type, error: errorMessage(e) });
      }
    });
    return this.chain;
  }

  /**
   * Takes UVE-2 commands one at a time. Handlers must return quickly (long work such as a download
   * runs in the background), or they would hold up a terminate queued behind them.
   */
  consumeCommands(handler: (c: VmCommand) => Promise<void>): void {
    this.consumer = uve.consumeVmCommands(this.bus, this.vmId, async (c) => {
      try {
        await handler(c);
      } catch (e) {
        this.log.error('command failed', { type: (c as { type?: string }).type, error: errorMessage(e) });
      }
    });
  }

  async stopCommands(): Promise<void> {
    const c = this.consumer;
    this.consumer = null;
    await c?.close();
  }

  /** waits until every queued report was handed to Redis */
  flush(): Promise<void> {
    return this.chain;
  }
}
