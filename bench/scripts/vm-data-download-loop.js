#!/usr/bin/env node
// What a VM Data download (UVE-5 retrieve, the agent's VmDataClient over plain HTTP) costs the
// agent's event loop: a server in a process of its own sends MiB random MiB a MiB at a time, as the
// gateway sends its chunks; the client downloads it ROUNDS times per build into its kept buffer
// while a 1 ms timer measures how late the loop runs it. With --base DIR (another build's
// apps/vm-agent/dist, e.g. a copy made before a change), that build's client downloads in turns
// with this one, in the same process. Prints, per build, the download's ms and the loop's largest
// lag per download (p50 and range). The loop's lag is what the agent's other work waits for
// meanwhile: another session's frames, a UA's start.
// Usage: node bench/scripts/vm-data-download-loop.js [ROUNDS=10] [MiB=16] [--base DIR]
'use strict';
const path = require('node:path');
const { fork } = require('node:child_process');

const ROOT = path.resolve(__dirname, '../..');
const MIB = 1 << 20;
const args = process.argv.slice(2);
const baseAt = args.indexOf('--base');
const base = baseAt >= 0 ? path.resolve(args[baseAt + 1]) : null;
const [rounds = 10, mib = 16] = args.filter((a, i) => /^\d+$/.test(a) && (baseAt < 0 || i !== baseAt + 1)).map(Number);

if (process.argv[2] === '--serve') {
  // the VMM's side: the same bytes, with their sha256, to every GET
  const http = require('node:http');
  const { createHash, randomBytes } = require('node:crypto');
  const n = Number(process.argv[3]);
  const body = randomBytes(n * MIB);
  const sha = createHash('sha256').update(body).digest('hex');
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': String(body.length), 'x-uve-sha256': sha, 'x-uve-snapshot-kind': 'FULL' });
    let i = 0;
    const next = () => {
      while (i < n) if (!res.write(body.subarray(i * MIB, ++i * MIB))) return void res.once('drain', next);
      res.end();
    };
    next();
  });
  server.listen(0, '127.0.0.1', () => process.send(server.address().port));
} else {
  const server = fork(__filename, ['--serve', String(mib)]);
  server.once('message', async (port) => {
    try {
      const builds = [['this build', path.join(ROOT, 'apps/vm-agent/dist')], ...(base ? [['--base', base]] : [])].map(([name, dist]) => {
        const { VmDataClient, VmDataBuffer } = require(path.join(dist, 'vmm/vm-data.js'));
        return { name, client: new VmDataClient(`http://127.0.0.1:${port}`, 'vm', 'secret', new VmDataBuffer(mib * MIB)), ms: [], lag: [] };
      });
      // one warm-up download each, then the rounds in turns
      for (let r = -1; r < rounds; r++) {
        for (const b of builds) {
          let lag = 0;
          let last = performance.now();
          const timer = setInterval(() => {
            const now = performance.now();
            lag = Math.max(lag, now - last - 1);
            last = now;
          }, 1);
          const t0 = performance.now();
          const d = await b.client.download('snapshot');
          const ms = performance.now() - t0;
          clearInterval(timer);
          d.release();
          if (r >= 0) b.ms.push(ms), b.lag.push(lag);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      const p50 = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
      const fmt = (v) => `${p50(v).toFixed(1)} (${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)})`;
      console.log(`vm-data-download-loop: ${mib} MiB, ${rounds} downloads per build`);
      for (const b of builds) console.log(`  ${b.name.padEnd(10)} download ms ${fmt(b.ms)}   loop's largest lag ms ${fmt(b.lag)}`);
      for (const b of builds) await b.client.close();
    } finally {
      server.kill();
    }
  });
}
