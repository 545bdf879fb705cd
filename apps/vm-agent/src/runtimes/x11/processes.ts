// The processes of one X11 session: its Xvfb, and the UA with everything it starts. The UA runs
// in its own session/process group (detached), so it can be stopped, continued and killed as a
// whole; processes that make their own session (xterm's shell does) are found as descendants.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { allProcStats, procStat } from '../../common/procfs';
import { once } from 'node:events';
import { trackChild } from '../../common/children';

export const XVFB_START_TIMEOUT_MS = 10_000;
/** how long a process gets between SIGTERM and SIGKILL */
export const TERM_GRACE_MS = 2_000;
const STDERR_TAIL_BYTES = 4096;

/** Keeps the last bytes a stream wrote (for error messages). */
export function tail(stream: NodeJS.ReadableStream | null): () => string {
  let text = '';
  stream?.on('data', (d: Buffer) => {
    text = (text + d.toString('utf8')).slice(-STDERR_TAIL_BYTES);
  });
  return () => text.trim();
}

export interface XvfbOptions {
  /** Xvfb binary (default "Xvfb" on PATH) */
  binary: string;
  width: number;
  height: number;
  /** folder for the memory-mapped framebuffer file */
  fbdir: string;
  /** Xauthority file holding the one cookie the server accepts (writeXauthority) */
  authFile: string;
}

export const COOKIE_NAME = 'MIT-MAGIC-COOKIE-1';
const FAMILY_WILD = 0xffff;

/**
 * Writes an Xauthority file with one MIT-MAGIC-COOKIE-1 entry for any address and any display
 * (FamilyWild, empty display number): Xvfb -auth reads it, Xlib clients find it via $XAUTHORITY.
 */
export function writeXauthority(file: string, cookie: Buffer): void {
  const field = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  const family = Buffer.from([FAMILY_WILD >> 8, FAMILY_WILD & 0xff]);
  const entry = Buffer.concat([family, field(Buffer.alloc(0)), field(Buffer.alloc(0)), field(Buffer.from(COOKIE_NAME, 'latin1')), field(cookie)]);
  writeFileSync(file, entry, { mode: 0o600 });
}

export interface StartedXvfb {
  proc: ChildProcess;
  display: number;
  stderr: () => string;
}

/**
 * Starts Xvfb on the first free display number and resolves once it accepts connections:
 * -displayfd makes Xvfb pick the number (atomically, by binding its socket) and write it to fd 3
 * when it is ready, so neither a guessed number nor a sleep is needed.
 */
export async function startXvfb(o: XvfbOptions): Promise<StartedXvfb> {
  const args = [
    '-displayfd', '3',
    '-screen', '0', `${o.width}x${o.height}x24`,
    '-nolisten', 'tcp', '-noreset',
    // only clients with the session's cookie: the UA and the agent, not other users of the VM
    '-auth', o.authFile,
    '+extension', 'DAMAGE', '+extension', 'XTEST',
    // the UC draws its own cursor: none in the picture (the framebuffer file would show Xvfb's)
    '-nocursor',
    // a black root instead of the grey weave, which costs bits behind a UA that does not cover it
    '-br',
    '-fbdir', o.fbdir,
  ];
  const proc = trackChild(spawn(o.binary, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] }));
  const stderr = tail(proc.stderr);
  const fd3 = proc.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
  let onError: (e: NodeJS.ErrnoException) => void = () => undefined;
  let onExit: (code: number | null, signal: NodeJS.Signals | null) => void = () => undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const display = await new Promise<number>((resolve, reject) => {
      let out = '';
      timer = setTimeout(() => reject(new Error(`Xvfb did not report a display within ${XVFB_START_TIMEOUT_MS} ms: ${stderr() || 'no output'}`)), XVFB_START_TIMEOUT_MS);
      onError = (e) => reject(e.code === 'ENOENT' ? new Error(`${o.binary} not found: install the Debian package "xvfb"`) : new Error(`cannot start ${o.binary}: ${e.message}`));
      onExit = (code, signal) => reject(new Error(`Xvfb exited during start (${signal ?? `code ${code}`}): ${stderr() || 'no output'}`));
      proc.once('error', onError);
      proc.once('exit', onExit);
      fd3.on('data', (d: Buffer) => {
        out += d.toString('latin1');
        const m = /^(\d+)\n/.exec(out);
        if (m) resolve(Number(m[1]));
      });
    });
    return { proc, display, stderr };
  } catch (e) {
    await stopProcess(proc);
    throw e;
  } finally {
    clearTimeout(timer);
    proc.removeListener('error', onError);
    proc.removeListener('exit', onExit);
    fd3.destroy(); // the number is all it ever says
  }
}

/** Kills one child of ours: SIGTERM, SIGKILL after the grace time; resolves once it was reaped. */
export async function stopProcess(proc: ChildProcess, graceMs = TERM_GRACE_MS): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
  const exited = once(proc, 'exit').catch(() => undefined);
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Removes what a killed X server leaves behind (a server that exits normally removes these itself). */
export function removeDisplayFiles(display: number): void {
  rmSync(`/tmp/.X11-unix/X${display}`, { force: true });
  rmSync(`/tmp/.X${display}-lock`, { force: true });
}

// ---- the UA's process tree ---------------------------------------------------------------------

/**
 * The live processes of the UA started as session leader `sid`: the members of its session and
 * all their descendants (a terminal's shell runs in a session of its own). Zombies are left out.
 */
export function uaProcesses(sid: number): number[] {
  const procs = allProcStats().filter((p) => p.state !== 'Z' && p.state !== 'X');
  // (not "pid === sid": once the leader is gone its number may belong to someone else)
  const members = new Set(procs.filter((p) => p.sid === sid).map((p) => p.pid));
  for (let grown = true; grown; ) {
    grown = false;
    for (const p of procs) {
      if (!members.has(p.pid) && members.has(p.ppid)) {
        members.add(p.pid);
        grown = true;
      }
    }
  }
  return [...members];
}

export function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* exited meanwhile */
    }
  }
}

/** the state letter of /proc/<pid>/stat (R, S, T stopped, Z zombie...), null when gone */
export function processState(pid: number): string | null {
  return procStat(pid)?.state ?? null;
}
