// What every image of this repository starts from (the agent images and the stack's).
import fs from 'node:fs';
import type { Layer } from './layer';
import { addLibraries, addProgram, multiarchDir } from './libraries';

/** a user of the image: /etc/passwd's name, uid (= gid), home, shell, description */
export interface ImageUser {
  name: string;
  uid: number;
  home: string;
  shell: string;
  description: string;
}

/**
 * The merged-/usr links, the Node binary running this and its shared libraries, /bin/sh, /tmp,
 * /etc/passwd and /etc/group with root, nobody and `users`.
 */
export function addNodeBase(layer: Layer, users: ImageUser[]): void {
  for (const top of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    try {
      if (fs.lstatSync(`/${top}`).isSymbolicLink()) layer.symlink(`/${top}`, fs.readlinkSync(`/${top}`));
    } catch {
      // absent
    }
  }
  const node = fs.realpathSync(process.execPath);
  multiarchDir(); // fails here when Node does not link libc dynamically
  layer.file('/usr/bin/node', node, 0o755);
  const sh = addProgram(layer, 'sh');
  addLibraries(layer, [node, sh]);
  layer.dir('/tmp', 0o1777);
  layer.dir('/etc');
  const passwd = users.map((u) => `${u.name}:x:${u.uid}:${u.uid}:${u.description}:${u.home}:${u.shell}\n`).join('');
  layer.data('/etc/passwd', `root:x:0:0:root:/root:/bin/sh\n${passwd}nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`);
  layer.data('/etc/group', `root:x:0:\n${users.map((u) => `${u.name}:x:${u.uid}:\n`).join('')}nogroup:x:65534:\n`);
  layer.data('/etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n');
}
