// The RGBA -> I420 converter (i420.wat, WASM SIMD) that a guest thread runs on each picture when
// the session's encoder takes I420 (H264). It works in a shared memory of its own: rows of the
// guest's RGBA framebuffer are copied into a staging area a few at a time (cache-sized: Node 20's
// V8 has no multi-memory, so the converter cannot read the guest's memory in place), converted
// into one of the ring's picture slots, which the host reads in place.
// 720p on this machine: 0.7-0.8 ms for the copy and the conversion together, against 2.2-2.9 ms
// for a plain JS loop and ~2.7 ms of ffmpeg's time for taking RGBA instead (docs/performance.md).
import { WASM_BASE64 } from './i420-module';
import { WA, type WasmModule } from './webassembly';

/** rows copied and converted per call: 16 rows of 720p RGBA are 80 KiB, within the L2 cache */
export const I420_STAGE_ROWS = 16;

let compiled: WasmModule | null = null;

/** the converter, compiled once per process (a worker gets it in its workerData) */
export function i420Module(): WasmModule {
  compiled ??= new WA.Module(Buffer.from(WASM_BASE64, 'base64'));
  return compiled;
}

/** Why a picture of this size cannot be I420 (null when it can): 4:2:0 needs even dimensions. */
export function i420Unsupported(width: number, height: number): string | null {
  return width % 2 || height % 2 ? `I420 pictures need an even width and height (4:2:0), got ${width}x${height}` : null;
}
