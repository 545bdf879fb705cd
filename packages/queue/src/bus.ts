// The one small message-bus module of the platform: the VMM and the VMs talk UVE-2/UVE-5 through
// it. BullMQ (the maintained successor of bull) on Redis gives durable, acknowledged delivery, so a
// command sent to a VM that is restarting waits for it instead of being lost like a pub/sub message.
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import IORedis, { type Redis } from 'ioredis';
import { VMM_QUEUE, vmCommandQueue, type VmCommand, type VmEventMessage } from '@uve/protocol';

export interface BusMessage {
  type: string;
}

export interface Consumer {
  /**
   * Since when (epoch ms) this consumer has been connected without a break; null while it is not:
   * for as long as it is null, nothing sent to its queue can arrive (the VMM's liveness sweep
   * judges no VM by silence then).
   */
  connectedSince(): number | null;
  close(): Promise<void>;
}

export interface ConsumeOptions {
  /** parallel handlers in this process; 1 keeps a queue's messages in order */
  concurrency?: number;
}

/** Which hand-over of a message a handler is running. */
export interface Delivery {
  /**
   * The message's id in its queue, the same on every hand-over of it (a retry, or a redelivery
   * after its consumer died); the same content sent again is another message with another id
   * (BullMQ counts them: no sender can give a message the id an earlier one had).
   */
  id: string;
  /** 1 the first time (a redelivery after its consumer died runs the same attempt again) */
  attempt: number;
  /** how many it gets in all (1 + the retries it was sent with): a failure of the last one is final */
  attempts: number;
}

/**
 * What a handler throws for a message that can never be handled (a bug, data nothing will
 * accept): the queue does not hand it over again, whatever retries it was sent with.
 */
export class PermanentFailure extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'PermanentFailure';
  }
}

/** Messages of one queue by state (BullMQ job counts). */
export type QueueCounts = Record<'waiting' | 'active' | 'delayed' | 'failed' | 'prioritized', number>;

/** How a message is delivered to its consumer. */
export interface SendOptions {
  /**
   * times the consumer may be handed the message again after its handler threw (a dependency of
   * the consumer's was down), after 0.5 s, 1 s, 2 s ... (default 0: handled once, whatever happens);
   * none after it threw a PermanentFailure
   */
  retries?: number;
}

export type Handler<M> = (message: M, delivery: Delivery) => Promise<void>;

export interface MessageBus {
  /** with `sendTimeoutMs`, rejects within it when Redis is unreachable (the caller retries) */
  send(queue: string, message: BusMessage, options?: SendOptions): Promise<void>;
  /** how many messages wait, run, are delayed or failed in a queue */
  counts(queue: string): Promise<QueueCounts>;
  /** a handler that throws gets the message again if it was sent with retries left, unless it threw a PermanentFailure */
  consume<M extends BusMessage>(queue: string, handler: Handler<M>, options?: ConsumeOptions): Consumer;
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
  /**
   * Fail fast: a send rejects after this long (default: waits for Redis, as long as it takes).
   * The VMM sets it, so a request never hangs on a Redis outage; its outbox sends again later.
   */
  sendTimeoutMs?: number;
  onError?: (error: Error) => void;
}

/** first delay before a message whose handler threw is handed over again; doubles each time */
const RETRY_DELAY_MS = 500;

/*
 * A message whose consumer died while handling it (kill -9, OOM, a host lost) is handed over again
 * to a consumer of its queue: a running handler holds a lock on its message, renewed every
 * LOCK_MS / 2, and every consumer looks every STALLED_CHECK_MS (one look per interval across them
 * all) for messages whose lock is gone. LOCK_MS stays BullMQ's 30 s: a consumer whose event loop
 * or Redis stalls for less than 15 s keeps its messages. A message during whose handling consumers
 * died twice (it may be what kills them) is failed, not handed over a third time.
 */
const LOCK_MS = 30_000;
const STALLED_CHECK_MS = 10_000;
const MAX_STALLED = 1;
/**
 * The longest a message whose consumer died waits to be handed over again while another consumer
 * of its queue runs; when none does, it comes at most STALLED_CHECK_MS after one starts, if later.
 */
export const REDELIVERY_MS = LOCK_MS + STALLED_CHECK_MS;

/**
 * UVE-5 reports are handed to the VMM again when its handler threw for a reason that may pass
 * (PostgreSQL down, say; it throws a PermanentFailure for the others): 9 retries, 0.5 s doubling,
 * reach 4 min 15.5 s after the first try, inside the age a report may have (UVE_VM_REPORT_MAX_AGE_S,
 * 5 min by default); a 10th would come at 8 min 31.5 s, always refused as stale. Heartbeats are not: the next one follows in 2 s, and a late one is refused as stale anyway.
 */
const REPORT_RETRIES = 9;

function bounded<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: Redis did not answer in ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

class BullMqBus implements MessageBus {
  /** the producers' connection (queues); the workers have their own */
  private readonly connection: Redis;
  private readonly queues = new Map<string, Queue>();
  private readonly consumers = new Map<Worker, Redis>();
  private readonly prefix: string;

  constructor(private readonly options: BusOptions) {
    this.prefix = options.prefix ?? 'uve';
    const failFast = options.sendTimeoutMs !== undefined;
    // failing fast: commands are refused while disconnected instead of queued in the client
    this.connection = new IORedis(options.redisUrl, failFast ? { maxRetriesPerRequest: 1, enableOfflineQueue: false } : { maxRetriesPerRequest: null });
    this.connection.on('error', (e) => this.error(e));
  }

  /** Every client reports here; a Redis that is down errors on each reconnection attempt, so once per 5 s. */
  private lastError = 0;
  private error(e: Error): void {
    if (Date.now() - this.lastError < 5000) return;
    this.lastError = Date.now();
    this.options.onError?.(e);
  }

  private bound<T>(what: string, p: Promise<T>): Promise<T> {
    return this.options.sendTimeoutMs ? bounded(what, p, this.options.sendTimeoutMs) : p;
  }

  private queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, {
        connection: this.connection,
        prefix: this.prefix,
        defaultJobOptions: { removeOnComplete: true, removeOnFail: { count: 1000 }, attempts: 1 },
      });
      q.on('error', (e) => this.error(e));
      this.queues.set(name, q);
    }
    return q;
  }

  async send(queue: string, message: BusMessage, options: SendOptions = {}): Promise<void> {
    const retries = options.retries ?? 0;
    const opts = retries > 0 ? { attempts: retries + 1, backoff: { type: 'exponential', delay: RETRY_DELAY_MS } } : undefined;
    await this.bound(`sending ${message.type} to ${queue}`, this.queue(queue).add(message.type, message, opts));
  }

  async counts(queue: string): Promise<QueueCounts> {
    const c = await this.bound(`counting ${queue}`, this.queue(queue).getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized'));
    return { waiting: c.waiting ?? 0, active: c.active ?? 0, delayed: c.delayed ?? 0, failed: c.failed ?? 0, prioritized: c.prioritized ?? 0 };
  }

  consume<M extends BusMessage>(queue: string, handler: Handler<M>, options: ConsumeOptions = {}): Consumer {
    const ttl = this.options.ttlMs;
    // BullMQ requires maxRetriesPerRequest: null on connections that block (workers)
    const connection = new IORedis(this.options.redisUrl, { maxRetriesPerRequest: null });
    connection.on('error', (e) => this.error(e));
    let since: number | null = null;
    connection.on('ready', () => (since = Date.now()));
    connection.on('close', () => (since = null));
    const worker = new Worker(
      queue,
      async (job: Job) => {
        // A command that waited longer than its TTL (the VM was down) is dropped, not replayed late.
        if (ttl && Date.now() - job.timestamp > ttl) return;
        try {
          // attemptsMade: the hand-overs that failed before this one (a stalled one did not fail)
          await handler(job.data as M, { id: String(job.id), attempt: job.attemptsMade + 1, attempts: job.opts.attempts ?? 1 });
        } catch (e) {
          // BullMQ's way of saying "no more attempts"
          if (e instanceof PermanentFailure) throw new UnrecoverableError(e.message);
          throw e;
        }
      },
      {
        connection, prefix: this.prefix, concurrency: options.concurrency ?? 1, autorun: true,
        lockDuration: LOCK_MS, stalledInterval: STALLED_CHECK_MS, maxStalledCount: MAX_STALLED,
      },
    );
    worker.on('error', (e) => this.error(e));
    worker.on('failed', (job, e) => this.options.onError?.(new Error(`handler for ${job?.name ?? 'message'} on ${queue} failed: ${e.message}`)));
    this.consumers.set(worker, connection);
    return {
      connectedSince: () => since,
      close: async () => {
        this.consumers.delete(worker);
        await this.closeWorker(worker, connection);
      },
    };
  }

  /**
   * Lets a running handler finish when Redis answers; when it does not (down, or gone at
   * shutdown), closing would wait for ever on it: the connections are dropped instead.
   */
  private async closeWorker(worker: Worker, connection: Redis): Promise<void> {
    const up = connection.status === 'ready';
    await bounded('closing a consumer', worker.close(!up), up ? 5000 : 500).catch(() => undefined);
    connection.disconnect();
    await bounded('disconnecting a consumer', worker.disconnect(), 500).catch(() => undefined);
  }

  async destroyQueue(queue: string): Promise<void> {
    const q = this.queue(queue);
    await this.bound(`destroying ${queue}`, q.obliterate({ force: true }));
    await this.bound(`closing ${queue}`, q.close());
    this.queues.delete(queue);
  }

  async close(): Promise<void> {
    await Promise.all([...this.consumers].map(([w, c]) => this.closeWorker(w, c)));
    this.consumers.clear();
    const up = this.connection.status === 'ready';
    await bounded('closing the queues', Promise.all([...this.queues.values()].map((q) => q.close())), up ? 2000 : 200).catch(() => undefined);
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
  reportToVmm: (bus: MessageBus, event: VmEventMessage) => bus.send(VMM_QUEUE, event, { retries: event.type === 'vm.heartbeat' ? 0 : REPORT_RETRIES }),
  consumeVmCommands: (bus: MessageBus, vmId: string, handler: (c: VmCommand) => Promise<void>) => bus.consume<VmCommand>(vmCommandQueue(vmId), handler),
  consumeVmEvents: (bus: MessageBus, handler: Handler<VmEventMessage>, options?: ConsumeOptions) =>
    bus.consume<VmEventMessage>(VMM_QUEUE, handler, options),
};
