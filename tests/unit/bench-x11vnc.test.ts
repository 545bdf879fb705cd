// The x11vnc baseline's helpers (bench/stream-browser): the port x11vnc announces, the noVNC files
// the bench page serves, and the message that says why the baseline is skipped.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { staticFile } from '../../bench/src/lib/browser';
import { announcedPort, x11vncMissing } from '../../bench/src/lib/x11vnc';

describe('announcedPort', () => {
  it('reads the PORT= line x11vnc prints once it listens', () => {
    expect(announcedPort('PORT=5901')).toBe(5901);
    expect(announcedPort('PORT=5900\r')).toBe(5900);
  });

  it('takes no other line for a port', () => {
    for (const line of ['', 'PORT=', 'PORT=0', 'PORT=70000', 'PORT=59x1', ' PORT=5900', 'The VNC desktop is:      localhost:0', '03/12/2026 listening on port 5900'])
      expect(announcedPort(line)).toBeNull();
  });
});

describe('staticFile', () => {
  const dir = '/usr/share/novnc';

  it('maps a path under the prefix to the file under the folder', () => {
    expect(staticFile(dir, '/novnc/', '/novnc/core/rfb.js')).toBe('/usr/share/novnc/core/rfb.js');
    expect(staticFile(`${dir}/`, '/novnc/', '/novnc/vendor/pako/lib/zlib/inflate.js')).toBe('/usr/share/novnc/vendor/pako/lib/zlib/inflate.js');
    expect(staticFile(dir, '/novnc/', '/novnc/a%20b.js')).toBe('/usr/share/novnc/a b.js');
  });

  it('refuses paths outside the prefix or leaving the folder', () => {
    expect(staticFile(dir, '/novnc/', '/bundle.js')).toBeNull();
    expect(staticFile(dir, '/novnc/', '/novnc/')).toBeNull();
    expect(staticFile(dir, '/novnc/', '/novnc/../../etc/passwd')).toBeNull();
    expect(staticFile(dir, '/novnc/', '/novnc/%2e%2e/novnc-other/x.js')).toBeNull();
    expect(staticFile(dir, '/novnc/', '/novnc/%E0%A4%A')).toBeNull();
  });
});

describe('x11vncMissing', () => {
  it('names a missing noVNC and what to install', () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'no-novnc-'));
    try {
      const why = x11vncMissing(empty);
      expect(why).toContain(`no noVNC at ${empty}`);
      expect(why).toMatch(/apt-get install x11vnc novnc$/);
    } finally {
      fs.rmSync(empty, { recursive: true });
    }
  });
});
