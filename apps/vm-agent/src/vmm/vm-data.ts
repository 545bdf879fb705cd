// UVE-5 VM Data over HTTP: uploads of a session's state and downloads of a snapshot to restore,
// authenticated with this VM's secret. Large state never goes through Redis.
import { createHash, type Hash } from 'node:crypto';
import type { SnapshotKind } from '@uve/protocol';

const TIMEOUT_MS = 60_000;

export interface StoredVmData {
  snapshotId: string;
  kind: SnapshotKind;
  sizeBytes: number;
  sha256: string;
}

export class VmDataClient {
  constructor(private readonly baseUrl: string, private readonly vmId: string, private readonly secret: string) {}

  private headers(): Record<string, string> {
    return { 'x-uve-vm-id': this.vmId, authorization: `Bearer ${this.secret}` };
  }

  async upload(sessionId: string, kind: SnapshotKind, data: Uint8Array): Promise<StoredVmData> {
    const res = await fetch(`${this.baseUrl}/sessions/${encodeURIComponent(sessionId)}?kind=${kind}`, {
      method: 'PUT',
      headers: { ...this.headers(), 'content-type': 'application/octet-stream' },
      // the bytes as they are, not a copy (a snapshot can be as large as the UA's memory); the cast
      // is for lib settings where a Uint8Array over a shared buffer is no body
      body: data as unknown as ArrayBuffer,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (res.status !== 201) throw new Error(`VM Data upload refused: ${res.status} ${(await res.text()).slice(0, 300)}`);
    return (await res.json()) as StoredVmData;
  }

  /** UVE-5 retrieve: the snapshot's bytes, refused unless they match the sha256 the VMM recorded. */
  async download(snapshotId: string): Promise<{ kind: SnapshotKind; data: Uint8Array }> {
    const res = await fetch(`${this.baseUrl}/snapshots/${encodeURIComponent(snapshotId)}`, { headers: this.headers(), signal: AbortSignal.timeout(TIMEOUT_MS) });
    if (!res.ok) throw new Error(`VM Data download refused: ${res.status} ${(await res.text()).slice(0, 300)}`);
    const kind = res.headers.get('x-uve-snapshot-kind') as SnapshotKind;
    const hash = createHash('sha256');
    const data = await readAnnounced(res, hash);
    verifyVmData(hash, res.headers.get('x-uve-sha256'));
    return { kind, data };
  }
}

/**
 * The body read straight into one buffer of the announced size (no second copy of a large
 * snapshot), hashed piece by piece as it comes (the hash overlaps the download instead of
 * following it); a body longer or shorter than announced is refused.
 */
async function readAnnounced(res: Response, hash: Hash): Promise<Uint8Array> {
  const size = Number(res.headers.get('content-length'));
  if (!Number.isSafeInteger(size) || size < 0 || !res.body) {
    const whole = new Uint8Array(await res.arrayBuffer());
    hash.update(whole);
    return whole;
  }
  const data = new Uint8Array(size);
  let at = 0;
  try {
    for await (const piece of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (at + piece.byteLength > size) throw new Error(`VM Data download is longer than the announced ${size} bytes`);
      data.set(piece, at);
      hash.update(piece);
      at += piece.byteLength;
    }
  } catch (e) {
    throw new Error(`VM Data download broke off after ${at} of ${size} bytes: ${(e as Error).message}`);
  }
  if (at !== size) throw new Error(`VM Data download broke off after ${at} of ${size} bytes`);
  return data;
}

/** Throws unless the bytes (or the hash fed with them) give `sha256` (hex), so corrupted VM Data is never restored. */
export function verifyVmData(data: Uint8Array | Hash, sha256: string | null): void {
  const actual = (data instanceof Uint8Array ? createHash('sha256').update(data) : data).digest('hex');
  if (!sha256 || actual !== sha256.toLowerCase()) {
    throw new Error(`VM Data checksum mismatch: expected sha256 ${sha256 ?? '(none)'}, got ${actual}`);
  }
}
