// UVE-2 delivery rules on the VM side: one action per commandId, expired commands dropped, every
// command with an id acknowledged (done / expired / failed) over UVE-5.
import type { VmCommand, VmEventMessage } from '@uve/protocol';
import type { MessageBus } from '@uve/queue';
import { CommandGate, DEFAULT_REMEMBER_MS } from '../../apps/vm-agent/src/vmm/command-gate';
import { VmmLink } from '../../apps/vm-agent/src/vmm/link';
import { createLogger } from '../../apps/vm-agent/src/common/log';

const drain = (id: string, extra: Partial<VmCommand> = {}): VmCommand => ({ type: 'vm.drain', commandId: id, ...extra }) as VmCommand;

describe('CommandGate', () => {
  let t = 1_000_000;
  const gate = (max?: number): CommandGate => new CommandGate(() => t, max);

  it('runs a command once per id and remembers how it ended', () => {
    const g = gate();
    expect(g.admit(drain('a'))).toEqual({ action: 'run' });
    expect(g.admit(drain('a'))).toEqual({ action: 'duplicate', outcome: undefined, error: undefined });
    g.settle('a', 'failed', 'boom');
    expect(g.admit(drain('a'))).toEqual({ action: 'duplicate', outcome: 'failed', error: 'boom' });
    // commands without an id are not deduplicated (nothing to know them by)
    expect(g.admit({ type: 'vm.drain' })).toEqual({ action: 'run' });
    expect(g.admit({ type: 'vm.drain' })).toEqual({ action: 'run' });
  });

  it('drops a command past its expiry, and a repeat of it too', () => {
    const g = gate();
    const stale = drain('b', { expiresAt: new Date(t - 1).toISOString() });
    expect(g.admit(stale)).toEqual({ action: 'expired' });
    expect(g.admit(stale)).toMatchObject({ action: 'duplicate', outcome: 'expired' });
    expect(g.admit(drain('c', { expiresAt: new Date(t + 5_000).toISOString() }))).toEqual({ action: 'run' });
  });

  it('forgets ids after their expiry and keeps at most `max` of them', () => {
    const g = gate(3);
    g.admit(drain('x', { expiresAt: new Date(t + 120_000).toISOString() }));
    g.admit(drain('y'));
    t += 121_000;
    expect(g.admit(drain('z'))).toEqual({ action: 'run' });
    expect(g.remembered).toBe(2); // x expired and was forgotten
    t += DEFAULT_REMEMBER_MS;
    for (const id of ['p', 'q', 'r', 's']) g.admit(drain(id));
    expect(g.remembered).toBe(3);
    expect(g.admit(drain('p'))).toEqual({ action: 'run' }); // the oldest went first
  });
});

describe('VmmLink.handle', () => {
  function link(): { link: VmmLink; sent: VmEventMessage[] } {
    const sent: VmEventMessage[] = [];
    const bus = { send: async (_q: string, m: VmEventMessage) => void sent.push(m) } as unknown as MessageBus;
    return { link: new VmmLink(bus, 'vm-1', 'vm-1-secret', createLogger('error')), sent };
  }
  const acks = (sent: VmEventMessage[]) => sent.filter((e) => e.type === 'command.ack');

  it('acks done after the handler, failed with its error when it throws, and runs a repeat never', async () => {
    const { link: l, sent } = link();
    const ran: string[] = [];
    const handler = async (c: VmCommand): Promise<void> => {
      ran.push(c.commandId!);
      if (c.commandId === 'bad') throw new Error('no such thing');
    };
    await l.handle(drain('ok'), handler);
    await l.handle(drain('bad'), handler);
    await l.handle(drain('ok'), handler);
    await l.handle({ type: 'vm.drain' }, handler);
    await l.flush();
    expect(ran).toEqual(['ok', 'bad', undefined]);
    expect(acks(sent)).toEqual([
      expect.objectContaining({ commandId: 'ok', outcome: 'done', vmId: 'vm-1' }),
      expect.objectContaining({ commandId: 'bad', outcome: 'failed', error: 'no such thing' }),
      // the repeat is acknowledged again (its first ack may be what was lost), not run
      expect.objectContaining({ commandId: 'ok', outcome: 'done' }),
    ]);
  });

  it('acks an expired command as expired without running it', async () => {
    const { link: l, sent } = link();
    let ran = 0;
    await l.handle(drain('old', { expiresAt: new Date(Date.now() - 1000).toISOString() }), async () => void ran++);
    await l.flush();
    expect(ran).toBe(0);
    expect(acks(sent)).toEqual([expect.objectContaining({ commandId: 'old', outcome: 'expired' })]);
  });

  it('counts reports Redis has not accepted yet', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const bus = { send: () => held } as unknown as MessageBus;
    const l = new VmmLink(bus, 'vm-1', 'vm-1-secret', createLogger('error'));
    void l.report({ type: 'vm.stopping', reason: 'x' });
    void l.report({ type: 'vm.stopping', reason: 'y' });
    expect(l.pendingReports).toBe(2);
    expect(l.oldestPendingMs(Date.now() + 500)).toBeGreaterThanOrEqual(500);
    release();
    await l.flush();
    expect(l.pendingReports).toBe(0);
    expect(l.oldestPendingMs()).toBe(0);
  });

  it('retries a report Redis refused, keeping the order, so no session seq goes missing', async () => {
    const sent: VmEventMessage[] = [];
    const tried: VmEventMessage[] = [];
    let failures = 2;
    const bus = {
      send: async (_q: string, m: VmEventMessage) => {
        tried.push(m);
        if ((m as { seq?: number }).seq === 1 && failures-- > 0) throw new Error('READONLY');
        sent.push(m);
      },
    } as unknown as MessageBus;
    const l = new VmmLink(bus, 'vm-1', 'vm-1-secret', createLogger('error'));
    const ref = { sessionId: 's', userId: 'u', uaId: 'a' };
    void l.report({ type: 'session.connected', role: 'PLAYER', ...ref, seq: 1 });
    void l.report({ type: 'session.ended', reason: 'x', ...ref, seq: 2 });
    await l.flush();
    expect(sent.map((e) => (e as { seq?: number }).seq)).toEqual([1, 2]);
    expect(failures).toBe(-1);
    // every try is the one message signed once (one nonce): should Redis have taken a try whose
    // answer was lost, the VMM handles one copy and refuses the others as replays (report-guard.ts)
    expect(tried.slice(0, 3)).toEqual([sent[0], sent[0], sent[0]]);
  });
});
