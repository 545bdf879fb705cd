// A VM that speaks UVE-2/UVE-5 over the real queue but hosts nothing: enough for the VMM's own
// tests (selection, state machine, liveness). The real agent has its own suites.
import { randomUUID } from 'node:crypto';
import { createMessageBus, uve, type MessageBus } from '@uve/queue';
import type { Platform, VideoCodec, VmCommand, VmEventMessage } from '@uve/protocol';
import { Collector } from './services';

export interface FakeVm {
  id: string;
  commands: VmCommand[];
  /** sends a UVE-5 report; a session report without `seq` gets the session's next one */
  report(event: FakeReport): Promise<void>;
  nextCommand(type: VmCommand['type'], pred?: (c: VmCommand) => boolean, ms?: number): Promise<VmCommand>;
  /** stops heartbeats (the VM "dies" without saying so) */
  silence(): void;
  close(): Promise<void>;
}

type Unsent<E> = E extends { seq: number } ? Omit<E, 'vmId' | 'at' | 'seq'> & { seq?: number } : Omit<E, 'vmId' | 'at'>;
export type FakeReport = VmEventMessage extends infer E ? (E extends VmEventMessage ? Unsent<E> : never) : never;

export async function startFakeVm(opts: {
  redisUrl: string; prefix: string; platform?: Platform; codecs?: VideoCodec[]; capacity?: number; heartbeatMs?: number;
  /** acknowledge commands as a real VM does (default true) */
  ackCommands?: boolean;
}): Promise<FakeVm> {
  const bus: MessageBus = createMessageBus({ redisUrl: opts.redisUrl, prefix: opts.prefix });
  const id = randomUUID();
  const commands = new Collector<VmCommand>();
  const at = () => new Date().toISOString();
  // like a real VM, it acknowledges each command it took, so the VMM's outbox stops re-sending
  const consumer = uve.consumeVmCommands(bus, id, async (c) => {
    commands.push(c);
    if (c.commandId && opts.ackCommands !== false) await uve.reportToVmm(bus, { type: 'command.ack', vmId: id, at: at(), commandId: c.commandId, outcome: 'done' });
  });
  const seqs = new Map<string, number>();
  const codecs = opts.codecs ?? ['H264', 'MJPEG'];
  const capacity = opts.capacity ?? 2;
  await uve.reportToVmm(bus, {
    type: 'vm.register', vmId: id, at: at(), name: `fake-${id.slice(0, 6)}`, platform: opts.platform ?? 'WASM', provider: 'PROCESS',
    endpoint: `ws://127.0.0.1:9/${id}`, codecs, capacity, agentVersion: 'test', deployed: [],
  });
  const beat = setInterval(() => {
    void uve.reportToVmm(bus, { type: 'vm.heartbeat', vmId: id, at: at(), activeSessions: 0, capacity, codecs, cpuLoad: 0, rssBytes: 0, deployed: [] }).catch(() => undefined);
  }, opts.heartbeatMs ?? 500);
  return {
    id,
    commands: commands.items,
    report: (event) => {
      const message = { ...event, vmId: id, at: at() } as VmEventMessage & { seq?: number };
      if ('sessionId' in event) {
        message.seq ??= (seqs.get(event.sessionId) ?? 0) + 1;
        seqs.set(event.sessionId, Math.max(seqs.get(event.sessionId) ?? 0, message.seq));
      }
      return uve.reportToVmm(bus, message as VmEventMessage);
    },
    nextCommand: (type, pred = () => true, ms = 10_000) =>
      commands.waitFor((c) => c.type === type && pred(c), `a ${type} command on VM ${id} (got ${commands.items.map((c) => c.type).join(', ')})`, ms),
    silence: () => clearInterval(beat),
    close: async () => {
      clearInterval(beat);
      await consumer.close();
      await bus.close();
    },
  };
}
