// A VM that speaks UVE-2/UVE-5 over the real queue but hosts nothing: enough for the VMM's own
// tests (selection, state machine, liveness). The real agent has its own suites.
import { randomUUID } from 'node:crypto';
import { createMessageBus, uve, type MessageBus } from '@uve/queue';
import type { Platform, VideoCodec, VmCommand, VmEventMessage } from '@uve/protocol';

export interface FakeVm {
  id: string;
  commands: VmCommand[];
  report(event: Omit<VmEventMessage, 'vmId' | 'at'>): Promise<void>;
  nextCommand(type: VmCommand['type'], pred?: (c: VmCommand) => boolean, ms?: number): Promise<VmCommand>;
  /** stops heartbeats (the VM "dies" without saying so) */
  silence(): void;
  close(): Promise<void>;
}

export async function startFakeVm(opts: { redisUrl: string; prefix: string; platform?: Platform; codecs?: VideoCodec[]; capacity?: number; heartbeatMs?: number }): Promise<FakeVm> {
  const bus: MessageBus = createMessageBus({ redisUrl: opts.redisUrl, prefix: opts.prefix });
  const id = randomUUID();
  const commands: VmCommand[] = [];
  const waiters: { type: string; pred: (c: VmCommand) => boolean; resolve: (c: VmCommand) => void }[] = [];
  const consumer = uve.consumeVmCommands(bus, id, async (c) => {
    commands.push(c);
    for (const w of [...waiters]) if (w.type === c.type && w.pred(c)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(c);
    }
  });
  const at = () => new Date().toISOString();
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
    commands,
    report: (event) => uve.reportToVmm(bus, { ...event, vmId: id, at: at() } as VmEventMessage),
    nextCommand: (type, pred = () => true, ms = 10_000) => {
      const found = commands.find((c) => c.type === type && pred(c));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`VM ${id} got no ${type} command in ${ms} ms (got ${commands.map((c) => c.type).join(', ')})`)), ms);
        waiters.push({ type, pred, resolve: (c) => { clearTimeout(timer); resolve(c); } });
      });
    },
    silence: () => clearInterval(beat),
    close: async () => {
      clearInterval(beat);
      await consumer.close();
      await bus.close();
    },
  };
}
