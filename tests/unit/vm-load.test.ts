// Heartbeat load is the VM's whole process tree (encoders, X servers, UAs), not the agent alone,
// and VM selection ranks on it. Real processes, real /proc.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CgroupSampler, parseProcStat, ProcessTreeSampler, treeOf } from '../../apps/vm-agent/src/vmm/heartbeat';
import { checkVmReport } from '@uve/protocol';
import { randomUUID } from 'node:crypto';
import { isHot, rankCandidates } from '../../apps/gateway/src/modules/vms/vm-selection';
import { retirable } from '../../apps/gateway/src/modules/vms/vm-pool';

describe('process-tree load', () => {
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await once(c, 'exit');
      }
    }
  });

  it('parses a stat line whose command holds spaces and parentheses', () => {
    const line = '4242 (a (weird) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 1000000 300 18446744073709551615';
    expect(parseProcStat(line)).toEqual({ pid: 4242, state: 'S', ppid: 17, sid: 4242, ticks: 300, rssPages: 300 });
  });

  it('counts a child that burns CPU, which the agent process alone would not show', async () => {
    const sampler = new ProcessTreeSampler(process.pid);
    // a grandchild in a session of its own (like a UA program under its launcher) that burns CPU
    // and says so once it has used one second of it; it is sampled while it still runs
    const burn = 'let said=false; for(;;){ const u=process.cpuUsage(); if(!said && u.user+u.system>1e6){ said=true; console.log("burnt"); } }';
    const busy = spawn('setsid', [process.execPath, '-e', burn], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(busy);
    await new Promise<void>((resolve, reject) => {
      busy.stdout!.on('data', (d: Buffer) => d.toString().includes('burnt') && resolve());
      busy.once('exit', () => reject(new Error('the busy child ended early')));
    });
    const s = sampler.sample();
    expect(s.source).toBe('process-tree');
    // one second of CPU since the first sample, over a few seconds of wall time at most, on this machine's cores
    expect(s.cpuLoad).toBeGreaterThan(0.1);
    expect(s.rssBytes).toBeGreaterThan(10 * 1024 * 1024);
  });

  it('keeps a re-parented process of a UA session in the tree', () => {
    const all = [
      { pid: 10, state: 'S', ppid: 1, sid: 10, ticks: 5, rssPages: 1 }, // the agent
      { pid: 11, state: 'S', ppid: 10, sid: 11, ticks: 1, rssPages: 1 }, // a UA leader (own session)
      { pid: 12, state: 'S', ppid: 1, sid: 11, ticks: 9, rssPages: 1 }, // its daemon, re-parented to init
      { pid: 13, state: 'S', ppid: 12, sid: 11, ticks: 2, rssPages: 1 }, // and the daemon's child
      { pid: 20, state: 'S', ppid: 1, sid: 20, ticks: 99, rssPages: 1 }, // somebody else
    ];
    expect(treeOf(10, all).map((p) => p.pid).sort()).toEqual([10, 11, 12, 13]);
  });
});

describe('cgroup load', () => {
  const roots: string[] = [];
  const cgroupRoot = (prefix: string) => {
    const root = mkdtempSync(path.join(tmpdir(), prefix));
    roots.push(root);
    return root;
  };
  afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));

  it('reads cgroup v2 usage against the CPU limit', () => {
    const root = cgroupRoot('uve-cg2-');
    writeFileSync(path.join(root, 'cpu.stat'), 'usage_usec 1000000\nuser_usec 1\n');
    writeFileSync(path.join(root, 'memory.current'), '123456789\n');
    writeFileSync(path.join(root, 'cpu.max'), '50000 100000\n');
    const s = CgroupSampler.open(root)!;
    expect(s).not.toBeNull();
    writeFileSync(path.join(root, 'cpu.stat'), 'usage_usec 999000000\n'); // far more than half a core could use
    expect(s.sample()).toEqual({ cpuLoad: 1, rssBytes: 123456789, source: 'cgroup' });
  });

  it('reads cgroup v1 (cpuacct and memory controllers)', () => {
    const root = cgroupRoot('uve-cg1-');
    for (const d of ['cpuacct', 'cpu', 'memory']) mkdirSync(path.join(root, d));
    writeFileSync(path.join(root, 'cpuacct/cpuacct.usage'), '5000\n');
    writeFileSync(path.join(root, 'cpu/cpu.cfs_quota_us'), '-1\n');
    writeFileSync(path.join(root, 'cpu/cpu.cfs_period_us'), '100000\n');
    writeFileSync(path.join(root, 'memory/memory.usage_in_bytes'), '4096\n');
    const s = CgroupSampler.open(root)!;
    const first = s.sample();
    expect(first).toMatchObject({ rssBytes: 4096, source: 'cgroup' });
    expect(first.cpuLoad).toBe(0);
  });

  it('reports a reading that does not parse as 0, never NaN (a heartbeat the VMM would refuse at its edge)', () => {
    const root = cgroupRoot('uve-cg2-bad-');
    writeFileSync(path.join(root, 'cpu.stat'), 'usage_usec 1000000\n');
    writeFileSync(path.join(root, 'memory.current'), '1000\n');
    writeFileSync(path.join(root, 'cpu.max'), 'max 100000\n');
    const s = CgroupSampler.open(root)!;
    writeFileSync(path.join(root, 'cpu.stat'), 'usage_usec garbage\n');
    writeFileSync(path.join(root, 'memory.current'), 'garbage\n');
    const r = s.sample();
    expect(r).toEqual({ cpuLoad: 0, rssBytes: 0, source: 'cgroup' });
    expect(() => checkVmReport({ type: 'vm.heartbeat', vmId: randomUUID(), at: new Date().toISOString(), activeSessions: 0, capacity: 1, codecs: ['MJPEG'], cpuLoad: r.cpuLoad, rssBytes: r.rssBytes, loadSource: r.source } as never)).not.toThrow();
  });

  it('is not used where no cgroup files are readable', () => {
    expect(CgroupSampler.open(cgroupRoot('uve-cg0-'))).toBeNull();
  });
});

describe('selection ranking', () => {
  const vm = (name: string, active: number, capacity: number, cpu: number | null, deployed = true) => ({ id: name, name, active, capacity, cpu, deployed });

  it('passes over a hot VM while another has headroom, even with fewer sessions', () => {
    expect(rankCandidates([vm('hot', 1, 4, 0.95), vm('cool', 2, 4, 0.1)], 0.85).map((v) => v.name)).toEqual(['cool', 'hot']);
  });

  it('takes the least loaded when all are hot, and fewest sessions among the cool', () => {
    expect(rankCandidates([vm('a', 1, 4, 0.99), vm('b', 1, 4, 0.9)], 0.85)[0]!.name).toBe('b');
    expect(rankCandidates([vm('a', 2, 4, 0.1), vm('b', 1, 4, 0.5)], 0.85)[0]!.name).toBe('b');
  });

  it('puts the VM a restore was prepared ahead on first, unless it is hot', () => {
    expect(rankCandidates([vm('empty', 0, 4, 0.1), vm('ahead', 3, 4, 0.5, false)], 0.85, 'ahead')[0]!.name).toBe('ahead');
    expect(rankCandidates([vm('empty', 0, 4, 0.1), vm('ahead', 1, 4, 0.9)], 0.85, 'ahead')[0]!.name).toBe('empty');
    expect(rankCandidates([vm('empty', 0, 4, 0.1), vm('other', 1, 4, 0.1)], 0.85, 'gone')[0]!.name).toBe('empty');
  });

  it('counts a VM without a heartbeat figure as cool', () => {
    expect(isHot(null, 0.85)).toBe(false);
    expect(isHot(0.85, 0.85)).toBe(true);
  });
});

describe('idle VMs retired by the pool', () => {
  const now = Date.parse('2026-12-04T12:00:00Z');
  const vm = (id: string, idleS: number, over: { provider_ref?: string | null; holds_ahead?: boolean } = {}) =>
    ({ id, provider_ref: 'ref', holds_ahead: false, idle_since: new Date(now - idleS * 1000), ...over });
  const o = { warm: 1, demand: 0, hot: 0, idleRetireMs: 60_000, now };

  it('retires the surplus idle longest, beyond the warm count, only VMs it provisioned', () => {
    const idle = [vm('recent', 10), vm('old', 300), vm('older', 600), vm('foreign', 900, { provider_ref: null })];
    expect(retirable(idle, o).map((v) => v.id)).toEqual(['older', 'old']);
    expect(retirable(idle, { ...o, demand: 1 })).toEqual([]);
  });

  it('keeps a VM holding a restore prepared ahead: the reconnection of its user comes there', () => {
    const idle = [vm('ahead', 900, { holds_ahead: true }), vm('old', 300), vm('warm', 10)];
    expect(retirable(idle, o).map((v) => v.id)).toEqual(['old']);
  });
});
