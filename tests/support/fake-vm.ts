// A VM that speaks UVE-2/UVE-5 over the real queue but hosts nothing: enough for the VMM's own
// tests (selection, state machine, liveness). The real agent has its own suites. Like any VM it is
// known to the VMM before it registers: an admin enrolls it (enrollVm) and it signs every report
// with the secret it got.
import { createMessageBus, reportKey, signReport, uve, type MessageBus } from '@uve/queue';
import type { Platform, VideoCodec, VmCommand, VmEventMessage } from '@uve/protocol';
import { ok } from './gateway';
import { Collector } from './services';

export interface FakeVm {
  id: string;
  /** its credential, as the VMM issued it */
  secret: string;
  commands: VmCommand[];
  /** sends a UVE-5 report; a session report without `seq` gets the session's next one */
  report(event: FakeReport): Promise<void>;
  /** the report as it would send it (vmId, time, nonce and signature added), not sent */
  signed(event: FakeReport): VmEventMessage;
  /** puts any message on the VMM's queue as it is (forgeries, replays) */
  sendRaw(message: unknown): Promise<void>;
  nextCommand(type: VmCommand['type'], pred?: (c: VmCommand) => boolean, ms?: number): Promise<VmCommand>;
  /** stops heartbeats (the VM "dies" without saying so) */
  silence(): void;
  close(): Promise<void>;
}

type Unsent<E> = E extends { seq: number } ? Omit<E, 'vmId' | 'at' | 'seq'> & { seq?: number } : Omit<E, 'vmId' | 'at'>;
export type FakeReport = VmEventMessage extends infer E ? (E extends VmEventMessage ? Unsent<E> : never) : never;

/** An admin records a VM for an agent started by hand: its id and its secret. */
export async function enrollVm(gateway: { graphqlUrl: string }, adminToken: string, platform: Platform = 'WASM'): Promise<{ id: string; secret: string }> {
  const r = await ok(gateway, `mutation($p: Platform!) { enrollVm(input: { platform: $p }) { vm { id } secret } }`, { p: platform }, adminToken);
  return { id: r.enrollVm.vm.id, secret: r.enrollVm.secret };
}

export async function startFakeVm(opts: {
  redisUrl: string; prefix: string;
  /** the gateway that enrolls it, and an admin's token there */
  gateway: { graphqlUrl: string }; admin: string;
  platform?: Platform; codecs?: VideoCodec[]; capacity?: number; heartbeatMs?: number;
  /** acknowledge commands as a real VM does (default true) */
  ackCommands?: boolean;
}): Promise<FakeVm> {
  const platform = opts.platform ?? 'WASM';
  const { id, secret } = await enrollVm(opts.gateway, opts.admin, platform);
  const key = reportKey(secret);
  const bus: MessageBus = createMessageBus({ redisUrl: opts.redisUrl, prefix: opts.prefix });
  const commands = new Collector<VmCommand>();
  const seqs = new Map<string, number>();
  const signed = (event: FakeReport): VmEventMessage => {
    const message = { ...event, vmId: id, at: new Date().toISOString() } as VmEventMessage & { seq?: number };
    if ('sessionId' in event) {
      message.seq ??= (seqs.get(event.sessionId) ?? 0) + 1;
      seqs.set(event.sessionId, Math.max(seqs.get(event.sessionId) ?? 0, message.seq));
    }
    return signReport(message as VmEventMessage, key);
  };
  const report = (event: FakeReport) => uve.reportToVmm(bus, signed(event));
  // like a real VM, it acknowledges each command it took, so the VMM's outbox stops re-sending
  const consumer = uve.consumeVmCommands(bus, id, async (c) => {
    commands.push(c);
    if (c.commandId && opts.ackCommands !== false) await report({ type: 'command.ack', commandId: c.commandId, outcome: 'done' });
  });
  const codecs = opts.codecs ?? ['H264', 'MJPEG'];
  const capacity = opts.capacity ?? 2;
  await report({
    type: 'vm.register', name: `fake-${id.slice(0, 6)}`, platform, provider: 'PROCESS',
    endpoint: `ws://127.0.0.1:9/${id}`, codecs, capacity, agentVersion: 'test', deployed: [],
  });
  const beat = setInterval(() => {
    void report({ type: 'vm.heartbeat', activeSessions: 0, capacity, codecs, cpuLoad: 0, rssBytes: 0, deployed: [] }).catch(() => undefined);
  }, opts.heartbeatMs ?? 500);
  return {
    id,
    secret,
    commands: commands.items,
    report,
    signed,
    sendRaw: (message) => uve.reportToVmm(bus, message as VmEventMessage),
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
