// The user LINUX_X11 UAs run as. An agent running as root starts each UA as an unprivileged user
// of its own (uve-ua, made by scripts/system setup, else nobody): a UA then can read neither the
// agent's files (its secret file, its data) nor /proc/<agent>/environ, whatever it runs.
import { readFileSync } from 'node:fs';

export interface UaUser {
  name: string;
  uid: number;
  gid: number;
}

/** The user of that name in /etc/passwd, or null. */
export function lookupUser(name: string, passwd = '/etc/passwd'): UaUser | null {
  let text: string;
  try {
    text = readFileSync(passwd, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && /^\d+$/.test(uid ?? '') && /^\d+$/.test(gid ?? '')) return { name, uid: Number(uid), gid: Number(gid) };
  }
  return null;
}

/**
 * UVE_UA_USER resolved: `auto` is uve-ua (else nobody) when the agent is root, and no switch
 * otherwise (only root may switch users); a name must exist, and switching needs root.
 */
export function resolveUaUser(setting: string | null, isRoot = process.getuid?.() === 0): UaUser | null {
  if (setting === null) return null;
  if (setting === 'auto') return isRoot ? (lookupUser('uve-ua') ?? lookupUser('nobody')) : null;
  const user = lookupUser(setting);
  if (!user) throw new Error(`UVE_UA_USER: no user ${setting} on this machine`);
  if (!isRoot && user.uid !== process.getuid?.()) throw new Error(`UVE_UA_USER: only an agent running as root can run UAs as ${setting}`);
  return user;
}
