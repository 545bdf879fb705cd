// A LINUX_X11 UA's application data (seed 7.2, NORMAL reconnection) is its home folder, kept as a
// tar archive: written by the system's tar from the home as the UA left it, unpacked into the
// next session's home before the program starts. Both run as the UA's user where it has one, so an
// archive can create nothing the UA could not have created itself (links pointing out of the home
// included); GNU tar refuses absolute names and `..` and delays links it extracts.
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { trackChild } from '../../common/children';
import type { UaUser } from './ua-user';

/** a home larger than this is not saved (the VMM refuses large VM Data anyway: UVE_VM_DATA_MAX_MB) */
export const MAX_HOME_ARCHIVE_BYTES = 256 * 1024 * 1024;

/** The home as a tar archive; empty when the home holds nothing. */
export async function archiveHome(home: string, user: UaUser | null): Promise<Uint8Array> {
  if ((await readdir(home)).length === 0) return new Uint8Array(0);
  return runTar(['--create', '--file=-', '--directory', home, '--numeric-owner', '.'], user, null);
}

/** Unpacks `archive` (from archiveHome) into the empty folder `home`. */
export async function unpackHome(home: string, archive: Uint8Array, user: UaUser | null): Promise<void> {
  await runTar(['--extract', '--file=-', '--directory', home, '--no-same-owner', '--no-same-permissions', '--delay-directory-restore'], user, archive);
}

function runTar(args: string[], user: UaUser | null, input: Uint8Array | null): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const tar = trackChild(spawn('tar', args, { cwd: args[args.indexOf('--directory') + 1], stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'], ...(user ? { uid: user.uid, gid: user.gid } : {}) }));
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = '';
    let tooLarge = false;
    tar.stdout!.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_HOME_ARCHIVE_BYTES) {
        tooLarge = true;
        tar.kill('SIGKILL');
        return;
      }
      chunks.push(b);
    });
    tar.stderr!.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-500)));
    tar.once('error', (e) => reject(new Error(`cannot run tar: ${e.message}`)));
    tar.once('close', (code, signal) => {
      if (tooLarge) return reject(new Error(`the UA's home is larger than ${MAX_HOME_ARCHIVE_BYTES} bytes as an archive; not saved`));
      if (code !== 0) return reject(new Error(`tar ${args[0]} failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`));
      resolve(Buffer.concat(chunks));
    });
    if (input) {
      tar.stdin!.on('error', () => undefined); // tar's own exit says what went wrong
      tar.stdin!.end(input);
    }
  });
}
