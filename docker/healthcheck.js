'use strict';
// HEALTHCHECK of the UVE VM agent images (/uve/healthcheck.js in the image).
//
// The agent serves GET /healthz on its UVE-3 port. That port is usually chosen at start
// (UVE_VM_PORT=0, host networking), so it is found here the way `ss -ltnp` would: the socket inodes
// held by the container's processes (/proc/<pid>/fd) matched against the TCP sockets in LISTEN
// state (/proc/net/tcp, /proc/net/tcp6). Every such port is asked; one answer
// `200 {"ok":true,...}` makes the container healthy. Exit 0 = healthy, 1 = unhealthy (docker keeps
// the output in `docker inspect .State.Health.Log`). Only Node's standard library: the image has
// no shell tools.
const fs = require('node:fs');
const http = require('node:http');

const TIMEOUT_MS = 2000;

/** socket inodes of every process this check can see (the container's pid namespace) */
function ownSocketInodes() {
  const inodes = new Set();
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    let fds;
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or another user's process
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(m[1]);
      } catch {
        // closed meanwhile
      }
    }
  }
  return inodes;
}

/** "0100007F" (little-endian IPv4) -> "127.0.0.1"; 32 hex digits -> an IPv6 address */
function parseAddress(hex) {
  if (hex.length === 8) return [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.');
  const bytes = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let i = 3; i >= 0; i--) bytes.push(parseInt(word.slice(i * 2, i * 2 + 2), 16));
  }
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return groups.join(':');
}

/** [{ host, port }] the container's processes listen on; the unspecified address maps to loopback */
function listeners() {
  const inodes = ownSocketInodes();
  const found = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A' || !inodes.has(cols[9])) continue; // 0A = LISTEN
      const [addrHex, portHex] = cols[1].split(':');
      let host = parseAddress(addrHex);
      if (host === '0.0.0.0') host = '127.0.0.1';
      else if (/^[0:]+$/.test(host)) host = '::1';
      else if (/^0:0:0:0:0:ffff:/.test(host)) host = '127.0.0.1';
      found.push({ host, port: parseInt(portHex, 16) });
    }
  }
  return found;
}

function probe({ host, port }) {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/healthz', timeout: TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        let ok = false;
        try {
          ok = res.statusCode === 200 && JSON.parse(body).ok === true;
        } catch {
          ok = false;
        }
        resolve({ ok, detail: `${host}:${port} -> ${res.statusCode} ${body.slice(0, 300)}` });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ ok: false, detail: `${host}:${port} -> ${e.message}` }));
  });
}

async function main() {
  const fixed = Number(process.env.UVE_VM_PORT || 0);
  let targets = listeners();
  if (fixed > 0) {
    const match = targets.filter((t) => t.port === fixed);
    targets = match.length ? match : [{ host: '127.0.0.1', port: fixed }];
  }
  if (targets.length === 0) {
    console.log('unhealthy: the agent listens on no TCP port (yet)');
    return 1;
  }
  const details = [];
  for (const t of targets) {
    const r = await probe(t);
    if (r.ok) {
      console.log(`healthy: ${r.detail}`);
      return 0;
    }
    details.push(r.detail);
  }
  console.log(`unhealthy: ${details.join('; ')}`);
  return 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.log(`unhealthy: ${e && e.message}`);
    process.exit(1);
  },
);
