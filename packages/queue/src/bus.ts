// The one small message-bus module of the platform: the VMM and the VMs talk UVE-2/UVE-5 through
// it. BullMQ (the maintained successor of bull) on Redis gives durable, acknowledged delivery, so a
// command sent to a VM that is restarting waits for it instead of being lost like a pub/sub message.
import { Queue, Worker, type Job } from 'bullmq';
import IORedis, { type Redis } from 'ioredis';
import { VMM_QUEUE, vmCommandQueue, type VmCommand, type VmEventMessage } from '@uve/protocol';

export interface BusMessage {
  type: string;
}

export interface Consumer {
  close(): Promise<void>;
}

export interface ConsumeOptions {
  /** parallel handlers in this process; 1 keeps a queue's messages in order */
  concurrency?: number;
}

export interface MessageBus {
  send(queue: string, message: BusMessage): Promise<void>;
  consume<M extends BusMessage>(queue: string, handler: (message: M) => Promise<void>, options?: ConsumeOptions): Consumer;
  /** deletes a queue and whatever still waits in it (a removed VM's commands) */
  destroyQueue(queue: string): Promise<void>;
  close(): Promise<void>;
}

export interface BusOptions {
  redisUrl: string;
  /** key prefix, so several deployments can share one Redis */
  prefix?: string;
  /** how long an unconsumed message lives (ms); stale UVE-2 commands are worse than none */
  ttlMs?: number;
  onError?: (error: Error) => void;
}

class BullMqBus implements MessageBus {
  private readonly connection: Redis;
  private readonly queues = new Map<string, Queue>();
  private readonly consumers = new Set<Worker>();
  private readonly prefix: string;

  constructor(private readonly options: BusOptions) {
    this.prefix = options.prefix ?? 'uve';
    // BullMQ requires maxRetriesPerRequest: null on connections that block (workers).
    this.connection = new IORedis(options.redisUrl, { maxRetriesPerRequest: null, lazyConnect: false });
    this.connection.on('error', (e) => options.onError?.(e));
  }

  private queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, {
        connection: this.connection,
        prefix: this.prefix,
        defaultJobOptions: { removeOnComplete: true, removeOnFail: { count: 1000 }, attempts: 1 },
      });
      q.on('error', (e) => this.options.onError?.(e));
      this.queues.set(name, q);
    }
    return q;
  }

  async send(queue: string, message: BusMessage): Promise<void> {
    await this.queue(queue).add(message.type, message);
  }

  consume<M extends BusMessage>(queue: string, handler: (message: M) => Promise<void>, options: ConsumeOptions = {}): Consumer {
    const ttl = this.options.ttlMs;
    const worker = new Worker(
      queue,
      async (job: Job) => {
        // A command that waited longer than its TTL (the VM was down) is dropped, not replayed late.
        if (ttl && Date.now() - job.timestamp > ttl) return;
        await handler(job.data as M);
      },
      { connection: this.connection.duplicate(), prefix: this.prefix, concurrency: options.concurrency ?? 1, autorun: true },
    );
    worker.on('error', (e) => this.options.onError?.(e));
    worker.on('failed', (job, e) => this.options.onError?.(new Error(`handler for ${job?.name ?? 'message'} on ${queue} failed: ${e.message}`)));
    this.consumers.add(worker);
    return {
      close: async () => {
        this.consumers.delete(worker);
        await worker.close();
        await worker.disconnect();
      },
    };
  }

  async destroyQueue(queue: string): Promise<void> {
    const q = this.queue(queue);
    await q.obliterate({ force: true });
    await q.close();
    this.queues.delete(queue);
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumers].map(async (w) => { await w.close(); await w.disconnect(); }));
    this.consumers.clear();
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
    this.connection.disconnect();
  }
}

export function createMessageBus(options: BusOptions): MessageBus {
  return new BullMqBus(options);
}

/** UVE-2/UVE-5 typed on top of the bus. */
export const uve = {
  /** VMM -> VM */
  sendToVm: (bus: MessageBus, vmId: string, command: VmCommand) => bus.send(vmCommandQueue(vmId), command),
  /** VM -> VMM */
  reportToVmm: (bus: MessageBus, event: VmEventMessage) => bus.send(VMM_QUEUE, event),
  consumeVmCommands: (bus: MessageBus, vmId: string, handler: (c: VmCommand) => Promise<void>) => bus.consume<VmCommand>(vmCommandQueue(vmId), handler),
  consumeVmEvents: (bus: MessageBus, handler: (e: VmEventMessage) => Promise<void>, options?: ConsumeOptions) =>
    bus.consume<VmEventMessage>(VMM_QUEUE, handler, options),
};
