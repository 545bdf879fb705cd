// UVE_FANOUT_TRACE=<file>: where a session event's time goes on its way to many subscribers, for
// bench/fanout. Per event, on the machine's monotonic clock (process.hrtime, the same in every
// process of the machine, so a client's arrival times compare): its publish after the commit, its
// arrival back from Redis, and each subscriber's payload handed to its socket. A JSON line per
// event, written once the event has been quiet for 300 ms. Unset: nothing is recorded. Also: its
// authorization answered, each result handed to graphql-ws and each message's ws send returning.
import fs from 'node:fs';

/** Monotonic milliseconds, comparable between processes of one machine. */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

interface Entry {
  published?: number;
  received?: number;
  checked?: number;
  written: number[];
  sent: number[];
  touched: number;
}

export class FanoutTrace {
  private readonly events = new Map<string, Entry>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly file: string) {
    this.timer = setInterval(() => this.flush(300), 100).unref();
  }

  private entry(eventId: string): Entry {
    let e = this.events.get(eventId);
    if (!e) this.events.set(eventId, (e = { written: [], sent: [], touched: 0 }));
    e.touched = monotonicMs();
    return e;
  }

  published(eventId: string): void {
    this.entry(eventId).published ??= monotonicMs();
  }

  received(eventId: string): void {
    this.entry(eventId).received ??= monotonicMs();
  }

  /** The event's per-event authorization answered (the users read fresh, the rules asked). */
  checked(eventId: string): void {
    this.entry(eventId).checked ??= monotonicMs();
  }

  /** A subscriber's result handed to graphql-ws to send (its onNext): the event is the id its field selected. */
  written(result: { data?: Record<string, unknown> | null }): string | null {
    const id = (Object.values(result.data ?? {})[0] as { id?: unknown } | null | undefined)?.id;
    if (typeof id !== 'string') return null;
    this.entry(id).written.push(monotonicMs());
    return id;
  }

  /** A subscriber's message written to its socket (ws's send returned: the bytes are with the kernel). */
  sent(eventId: string): void {
    this.entry(eventId).sent.push(monotonicMs());
  }

  /**
   * graphql-ws's onNext for a WebSocketServer: times each `next` both when graphql-ws is handed the
   * result and when ws's send returns (the socket's own send wrapped; one subscription per socket
   * at a time is what the bench has).
   */
  onNextOf(wss: { on(e: 'connection', l: (s: { send: (...a: never[]) => void }) => void): void }): (ctx: { extra: unknown }, id: unknown, payload: unknown, args: unknown, result: { data?: Record<string, unknown> | null }) => void {
    const pending = new WeakMap<object, string>();
    wss.on('connection', (socket) => {
      const send = socket.send.bind(socket) as (...a: unknown[]) => void;
      (socket as { send: (...a: unknown[]) => void }).send = (...a) => {
        send(...a);
        const id = pending.get(socket);
        if (id !== undefined) {
          pending.delete(socket);
          this.sent(id);
        }
      };
    });
    return (ctx, _id, _payload, _args, result) => {
      const id = this.written(result);
      const socket = (ctx.extra as { socket?: object }).socket;
      if (id !== null && socket) pending.set(socket, id);
    };
  }

  /** Writes the events quiet for `quietMs` (all: 0). */
  flush(quietMs = 0): void {
    const t = monotonicMs();
    const lines: string[] = [];
    for (const [event, e] of this.events) {
      if (t - e.touched < quietMs) continue;
      this.events.delete(event);
      lines.push(JSON.stringify({ event, published: e.published ?? null, received: e.received ?? null, checked: e.checked ?? null, written: e.written, sent: e.sent }));
    }
    if (lines.length) fs.appendFileSync(this.file, `${lines.join('\n')}\n`);
  }

  stop(): void {
    clearInterval(this.timer);
    this.flush();
  }
}

/** The gateway's trace, when UVE_FANOUT_TRACE is set (app.ts). */
export let fanoutTrace: FanoutTrace | null = null;

export function startFanoutTrace(file: string | null): void {
  fanoutTrace?.stop();
  fanoutTrace = file ? new FanoutTrace(file) : null;
}
