// The tests' environment: Node's, plus a check at the end of each test file that it closed what it
// opened. Jest otherwise only says, at the end of a run, that "a worker process has failed to exit
// gracefully", without the file; here each file's leftover handles (a server, a socket, a child
// process, a timer that keeps the process alive) are named on stderr with the file. A handle gets a
// short grace to close (a socket on its way out), then is reported; the test does not fail for it.
'use strict';
const path = require('node:path');
const { TestEnvironment } = require('jest-environment-node');

const GRACE_MS = 2000;

// Worker threads are in neither of Node's lists: the class is wrapped (once per jest worker) so that
// the live ones are known. A module that took the class before the wrap is not seen.
const threads = require('node:worker_threads');
const liveWorkers = new Set();
if (!threads.Worker.__leakChecked) {
  const Original = threads.Worker;
  threads.Worker = class Worker extends Original {
    constructor(...args) {
      super(...args);
      liveWorkers.add(this);
      this.once('exit', () => liveWorkers.delete(this));
    }
  };
  threads.Worker.__leakChecked = true;
}

/** what keeps the worker alive: refed handles other than the worker's own stdio and IPC */
function live(before) {
  // (by fd: reading process.stdin here would open it, a handle of its own)
  return process._getActiveHandles().filter((h) => !before.has(h) && (typeof h.hasRef !== 'function' || h.hasRef()) && !(h._handle?.fd >= 0 && h._handle.fd <= 2));
}

/** active resources by kind (Node lists timers and requests only this way; worker threads not at all) */
function resources() {
  const n = new Map();
  for (const r of process.getActiveResourcesInfo()) n.set(r, (n.get(r) ?? 0) + 1);
  return n;
}

/**
 * kinds with more resources than at the start (a handle named one by one shows here too, as its
 * wrap). Only counts: a timer left running can be hidden by one of jest's own that ended meanwhile
 * (seen: a leaked setInterval beside another test file went unreported); the test file's own timers
 * are named one by one (trackTimers).
 */
function moreThan(before) {
  return [...resources()].map(([kind, n]) => [kind, n - (before.get(kind) ?? 0)]).filter(([, d]) => d > 0).map(([kind, d]) => `${d} ${kind}`);
}

function describe(h) {
  const name = h?.constructor?.name ?? typeof h;
  if (name === 'Socket' || name === 'TLSSocket') return `${name} ${h.localPort ?? ''} -> ${h.remoteAddress ?? '?'}:${h.remotePort ?? '?'}${h._type === 'pipe' || h.remoteAddress === undefined ? ' (pipe or unconnected)' : ''}`;
  if (name === 'Server') return `Server listening on ${JSON.stringify(h.address?.() ?? null)}`;
  if (name === 'ChildProcess') return `ChildProcess ${h.pid} ${h.spawnfile ?? ''} ${(h.spawnargs ?? []).slice(1, 4).join(' ')}`;
  return name;
}

/**
 * Warnings that fail the test file that caused them: node-postgres's second query on a busy
 * connection (pg 9 makes it an error; the stack says whose query it was: run with
 * NODE_OPTIONS=--trace-deprecation).
 */
const FAILING_WARNINGS = [/Calling client\.query\(\) when the client is already executing a query/];

/**
 * The test file's timers: its setTimeout and setInterval (the test's and its modules', which take
 * them from the file's global) are wrapped so that those still pending and ref'd at its end can be
 * named, with where they were made. Node's own (sockets, servers) and jest's are not these.
 */
function trackTimers(global) {
  const pending = new Map(); // timer -> where it was made
  const made = (timer, fn) => {
    const where = {};
    Error.captureStackTrace(where, fn); // (formatted only when reported)
    pending.set(timer, where);
    return timer;
  };
  const { setTimeout: timeout, setInterval: interval, clearTimeout: clearT, clearInterval: clearI } = global;
  global.setTimeout = function setTimeout(callback, ...rest) {
    if (typeof callback !== 'function') return timeout(callback, ...rest);
    const timer = timeout(function (...args) {
      pending.delete(timer);
      return callback.apply(this, args);
    }, ...rest);
    return made(timer, global.setTimeout);
  };
  Object.assign(global.setTimeout, timeout); // util.promisify.custom and the like
  global.setInterval = function setInterval(...args) {
    return made(interval(...args), global.setInterval);
  };
  Object.assign(global.setInterval, interval);
  global.clearTimeout = function clearTimeout(timer) {
    pending.delete(timer);
    return clearT(timer);
  };
  global.clearInterval = function clearInterval(timer) {
    pending.delete(timer);
    return clearI(timer);
  };
  /** those still scheduled (not fired, not cleared, also by number) that keep the process alive */
  return () => [...pending].filter(([t]) => !t._destroyed && t.hasRef?.() !== false);
}

/** a timer as "setInterval(…, 1000 ms) made at <the first frames outside node_modules>" */
function describeTimer([timer, where]) {
  const frames = String(where.stack).split('\n').slice(1).map((l) => l.trim()).filter((l) => !l.includes('/node_modules/') && !l.includes('node:internal') && !l.includes('<anonymous>'));
  return `${timer._repeat ? 'setInterval' : 'setTimeout'}(…, ${timer._idleTimeout} ms) still pending, made ${frames.slice(0, 3).join(' < ') || 'in node_modules'}`;
}

class LeakCheckEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    this.file = path.relative(config.projectConfig.rootDir, context.testPath);
  }

  async setup() {
    await super.setup();
    this.before = new Set(process._getActiveHandles());
    this.resourcesBefore = resources();
    this.workersBefore = new Set(liveWorkers);
    // the test file's modules are its own (node-postgres's once-only warning is new for each file)
    this.failingWarnings = [];
    this.onWarning = (w) => {
      if (FAILING_WARNINGS.some((re) => re.test(w.message))) this.failingWarnings.push(w);
    };
    process.on('warning', this.onWarning);
    this.pendingTimers = trackTimers(this.global);
  }

  async teardown() {
    const deadline = Date.now() + GRACE_MS;
    let left = live(this.before);
    let more = moreThan(this.resourcesBefore);
    const workers = () => [...liveWorkers].filter((w) => !this.workersBefore.has(w));
    let timers = this.pendingTimers();
    while ((left.length > 0 || more.length > 0 || workers().length > 0 || timers.length > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50).unref());
      left = live(this.before);
      more = moreThan(this.resourcesBefore);
      timers = this.pendingTimers();
    }
    for (const t of timers) process.stderr.write(`[handle left open] ${this.file}: ${describeTimer(t)}\n`);
    if (workers().length) process.stderr.write(`[handle left open] ${this.file}: ${workers().length} worker thread(s) still running\n`);
    for (const h of left) process.stderr.write(`[handle left open] ${this.file}: ${describe(h)}\n`);
    if (more.length) process.stderr.write(`[handle left open] ${this.file}: active resources more than at its start: ${more.join(', ')}\n`);
    process.off('warning', this.onWarning);
    await super.teardown();
    if (this.failingWarnings.length) {
      throw new Error(`${this.file} caused ${this.failingWarnings.map((w) => w.stack).join("\n")}`);
    }
  }
}

module.exports = LeakCheckEnvironment;
