// Password hashes: scrypt (memory-hard, in node:crypto), parameters and salt stored with the hash,
// so the cost can be raised later: a hash weaker than the current setting is replaced at the
// user's next successful sign-in.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const scrypt = (pw: string, salt: Buffer, len: number, opts: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) => scryptCb(pw, salt, len, opts, (e, k) => (e ? reject(e) : resolve(k))));

const R = 8, P = 1, LEN = 32;
/** current guidance (OWASP): N = 2^17 with r = 8; UVE_PASSWORD_SCRYPT_N lowers it for tests only */
export const DEFAULT_SCRYPT_N = 2 ** 17;
let currentN = DEFAULT_SCRYPT_N;

/** The work factor new hashes get (a power of two). */
export function setScryptCost(n: number): void {
  currentN = n;
}

// scrypt needs 128 * N * r bytes; node's default cap (32 MiB) is below N = 2^17
const options = (n: number, r: number, p: number): ScryptOptions => ({ N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 });

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, LEN, options(currentN, R, P));
  return `scrypt$${currentN}$${R}$${P}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [alg, n, r, p, salt, hash] = stored.split('$');
  if (alg !== 'scrypt' || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const key = await scrypt(password, Buffer.from(salt!, 'base64url'), expected.length, options(Number(n), Number(r), Number(p)));
  return timingSafeEqual(key, expected);
}

/** Whether a stored hash is weaker than what new hashes get. */
export function needsRehash(stored: string): boolean {
  const [alg, n, r] = stored.split('$');
  return alg !== 'scrypt' || Number(n) < currentN || Number(r) < R;
}

/** Spend the same time on an unknown username as on a wrong password. */
let dummy: { n: number; hash: Promise<string> } | null = null;
export async function burnPasswordCheck(password: string): Promise<void> {
  if (dummy?.n !== currentN) dummy = { n: currentN, hash: hashPassword('not-a-real-password') };
  await verifyPassword(password, await dummy.hash);
}
