// UVE-5 reports are signed by the VM that sends them: an HMAC-SHA256 over the report's canonical
// bytes with a key only that VM and its VMM know. The key is sha256 of the VM secret the VMM issued
// at provisioning, which is exactly the hash the VMM stores (vms.secret_hash), so the VMM verifies
// without ever keeping the secret. The signed bytes include the sending VM, the time and a nonce,
// so a report cannot be rewritten, claimed by another VM or replayed (the VMM remembers nonces).
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { VmEventMessage } from '@uve/protocol';

/** The signing key of a VM: sha256 of its secret (32 bytes). */
export function reportKey(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** What is signed: the report without `sig`, as JSON with keys sorted at every level (what JSON.stringify would send, in one order). */
export function canonicalReport(message: object): string {
  const plain = JSON.parse(JSON.stringify(message)) as Record<string, unknown>;
  delete plain.sig;
  return `uve5-report-v1\n${canonical(plain)}`;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function mac(message: object, key: Uint8Array): Buffer {
  return createHmac('sha256', key).update(canonicalReport(message)).digest();
}

/** The report with a fresh nonce and its signature (`sig`, base64url). */
export function signReport<M extends VmEventMessage>(message: M, key: Uint8Array): M {
  const withNonce = { ...message, nonce: randomBytes(16).toString('base64url') };
  return { ...withNonce, sig: mac(withNonce, key).toString('base64url') };
}

/** Whether `sig` is this key's signature of the report. */
export function reportSignedWith(message: VmEventMessage, key: Uint8Array): boolean {
  if (typeof message.sig !== 'string' || typeof message.nonce !== 'string') return false;
  const given = Buffer.from(message.sig, 'base64url');
  const expected = mac(message, key);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
