// WASM UAs started and closed one after another in their own process, the runtime of the agent
// build under `root`: paint at 1280x720, start (instantiation, uve_init, first render) + first
// capture + close, then the next. Prints one JSON line: process CPU (all threads) and wall time per
// UA, after a few UAs of warm-up. Run by ua-start.ts: node ua-cycle.js <repo root> <count>
import path from 'node:path';

/* eslint-disable @typescript-eslint/no-require-imports, @typescript-eslint/no-explicit-any */
const [root, countArg] = process.argv.slice(2) as [string, string];

async function main(): Promise<void> {
  const runtime = new (require(path.join(root, 'apps/vm-agent/dist/runtimes/wasm/wasm-runtime.js')).WasmRuntime)();
  const dir = path.join(root, 'apps/vm-agent/uas/paint/build');
  const one = async (): Promise<void> => {
    const inst = await runtime.start({ ua: { uaId: 'paint', version: '1', dir }, width: 1280, height: 720, resources: { request: () => new Promise(() => undefined) }, onDamage: () => undefined, onExit: () => undefined });
    inst.capture();
    await inst.close();
    // a session's end does not wait for the thread's release: the next request comes later
    await new Promise((r) => setTimeout(r, 20));
  };
  for (let i = 0; i < 3; i++) await one();
  const n = Number(countArg);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await one();
  const cpu = process.cpuUsage(cpu0);
  const wallMs = (performance.now() - t0) / n - 20;
  await runtime.close();
  process.stdout.write(`${JSON.stringify({ cpuMsPerUa: (cpu.user + cpu.system) / 1000 / n, wallMsPerUa: wallMs })}\n`);
}

void main();
