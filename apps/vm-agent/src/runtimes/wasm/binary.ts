// Just enough of the WebAssembly binary format to (1) check the guest's ABI signatures, which the JS
// API cannot reflect, and (2) instrument the module before compiling it: every mutable global the
// module defines gets an extra export so a FULL snapshot can read and write it without the guest's
// help, and the memory gets a maximum so a runaway guest cannot take the agent's heap.
// Input must already have passed WebAssembly.validate(); this parser only rejects what the FULL
// snapshot cannot represent.

export type ValType = 'i32' | 'i64' | 'f32' | 'f64' | 'v128' | 'ref';

export interface FuncType {
  params: ValType[];
  results: ValType[];
}

export interface ImportEntry {
  module: string;
  name: string;
  /** 0 func, 1 table, 2 memory, 3 global, 4 tag */
  kind: number;
  /** type index for functions */
  typeIndex?: number;
}

export interface ExportEntry {
  name: string;
  kind: number;
  index: number;
}

export interface GlobalEntry {
  /** index in the global index space (imported globals first) */
  index: number;
  type: ValType;
  mutable: boolean;
}

export interface MemoryLimits {
  min: number;
  max?: number;
}

export interface ModuleInfo {
  types: FuncType[];
  imports: ImportEntry[];
  exports: ExportEntry[];
  /** type index of every function, imported ones first */
  funcTypes: number[];
  /** globals defined by the module (not imported) */
  globals: GlobalEntry[];
  /** memories defined by the module (not imported) */
  memories: MemoryLimits[];
}

export const EXTERNAL_KIND = { func: 0, table: 1, memory: 2, global: 3, tag: 4 } as const;

const SECTION = { custom: 0, type: 1, import: 2, function: 3, memory: 5, global: 6, export: 7 } as const;
/** sections that must come after the export section, in binary order */
const AFTER_EXPORT = new Set([8, 9, 12, 10, 11]);

export class WasmFormatError extends Error {}

class Reader {
  pos: number;
  constructor(
    private readonly b: Uint8Array,
    start = 0,
    readonly end = b.length,
  ) {
    this.pos = start;
  }
  u8(): number {
    if (this.pos >= this.end) throw new WasmFormatError('unexpected end of module');
    return this.b[this.pos++];
  }
  /** unsigned LEB128, up to 2^53 */
  uleb(): number {
    let result = 0;
    let mul = 1;
    for (;;) {
      const byte = this.u8();
      result += (byte & 0x7f) * mul;
      if ((byte & 0x80) === 0) return result;
      mul *= 128;
    }
  }
  /** skips a signed LEB128 of any width */
  skipLeb(): void {
    while (this.u8() & 0x80);
  }
  skip(n: number): void {
    if (this.pos + n > this.end) throw new WasmFormatError('unexpected end of module');
    this.pos += n;
  }
  name(): string {
    const len = this.uleb();
    const start = this.pos;
    this.skip(len);
    return Buffer.from(this.b.buffer, this.b.byteOffset + start, len).toString('utf8');
  }
}

function readValType(r: Reader): ValType {
  const t = r.u8();
  switch (t) {
    case 0x7f: return 'i32';
    case 0x7e: return 'i64';
    case 0x7d: return 'f32';
    case 0x7c: return 'f64';
    case 0x7b: return 'v128';
    case 0x63:
    case 0x64:
      r.skipLeb(); // heap type
      return 'ref';
    default:
      if (t >= 0x69 && t <= 0x74) return 'ref'; // abstract reference types (funcref, externref, ...)
      throw new WasmFormatError(`unsupported value type 0x${t.toString(16)}`);
  }
}

function readLimits(r: Reader): MemoryLimits & { flags: number } {
  const flags = r.u8();
  const min = r.uleb();
  const max = flags & 1 ? r.uleb() : undefined;
  return { flags, min, max };
}

/** skips a constant expression (global initialisers); only the forms a snapshot can live with */
function skipConstExpr(r: Reader): void {
  for (;;) {
    const op = r.u8();
    switch (op) {
      case 0x0b: return; // end
      case 0x41: case 0x42: case 0xd0: r.skipLeb(); break; // i32.const, i64.const, ref.null
      case 0x43: r.skip(4); break;
      case 0x44: r.skip(8); break;
      case 0x23: case 0xd2: r.uleb(); break; // global.get, ref.func
      case 0x6a: case 0x6b: case 0x6c: case 0x7c: case 0x7d: case 0x7e: break; // extended-const arithmetic
      case 0xfd:
        if (r.uleb() !== 12) throw new WasmFormatError('unsupported SIMD constant expression');
        r.skip(16); // v128.const
        break;
      default:
        throw new WasmFormatError(`unsupported constant expression opcode 0x${op.toString(16)}`);
    }
  }
}

interface RawSection {
  id: number;
  start: number; // payload start
  end: number;
  /** whole section including id and size, for copying */
  rawStart: number;
}

function sections(bytes: Uint8Array): RawSection[] {
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  if (bytes.length < 8 || magic.some((v, i) => bytes[i] !== v)) throw new WasmFormatError('not a WebAssembly 1.0 module');
  const r = new Reader(bytes, 8);
  const out: RawSection[] = [];
  while (r.pos < bytes.length) {
    const rawStart = r.pos;
    const id = r.u8();
    const size = r.uleb();
    const start = r.pos;
    r.skip(size);
    out.push({ id, start, end: start + size, rawStart });
  }
  return out;
}

export function parseModule(bytes: Uint8Array): ModuleInfo {
  const info: ModuleInfo = { types: [], imports: [], exports: [], funcTypes: [], globals: [], memories: [] };
  let importedGlobals = 0;
  for (const s of sections(bytes)) {
    const r = new Reader(bytes, s.start, s.end);
    switch (s.id) {
      case SECTION.type: {
        for (let n = r.uleb(); n > 0; n--) {
          const form = r.u8();
          if (form !== 0x60) throw new WasmFormatError('GC type definitions are not supported');
          const params = Array.from({ length: r.uleb() }, () => readValType(r));
          const results = Array.from({ length: r.uleb() }, () => readValType(r));
          info.types.push({ params, results });
        }
        break;
      }
      case SECTION.import: {
        for (let n = r.uleb(); n > 0; n--) {
          const entry: ImportEntry = { module: r.name(), name: r.name(), kind: r.u8() };
          switch (entry.kind) {
            case EXTERNAL_KIND.func: entry.typeIndex = r.uleb(); info.funcTypes.push(entry.typeIndex); break;
            case EXTERNAL_KIND.table: readValType(r); readLimits(r); break;
            case EXTERNAL_KIND.memory: readLimits(r); break;
            case EXTERNAL_KIND.global: readValType(r); r.u8(); importedGlobals++; break;
            case EXTERNAL_KIND.tag: r.u8(); r.uleb(); break;
            default: throw new WasmFormatError(`unknown import kind ${entry.kind}`);
          }
          info.imports.push(entry);
        }
        break;
      }
      case SECTION.function:
        for (let n = r.uleb(); n > 0; n--) info.funcTypes.push(r.uleb());
        break;
      case SECTION.memory:
        for (let n = r.uleb(); n > 0; n--) {
          const { flags, min, max } = readLimits(r);
          if (flags & 2) throw new WasmFormatError('shared memory is not supported');
          if (flags & 4) throw new WasmFormatError('64-bit memory is not supported');
          info.memories.push({ min, max });
        }
        break;
      case SECTION.global:
        for (let n = r.uleb(), i = 0; i < n; i++) {
          const type = readValType(r);
          const mutable = r.u8() === 1;
          skipConstExpr(r);
          info.globals.push({ index: importedGlobals + i, type, mutable });
        }
        break;
      case SECTION.export:
        for (let n = r.uleb(); n > 0; n--) info.exports.push({ name: r.name(), kind: r.u8(), index: r.uleb() });
        break;
      default:
        break;
    }
  }
  return info;
}

// ---- encoding ------------------------------------------------------------------------------------

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
}

function encName(s: string): number[] {
  const b = Buffer.from(s, 'utf8');
  return [...uleb(b.length), ...b];
}

function encSection(id: number, payload: number[]): Uint8Array {
  return Uint8Array.from([id, ...uleb(payload.length), ...payload]);
}

export interface InstrumentOptions {
  /** export name given to mutable global i: `${prefix}${i}` */
  globalExportPrefix: string;
  /** cap for the memory's maximum, in 64 KiB pages */
  maxMemoryPages: number;
}

/**
 * Returns a copy of the module with (1) one extra export per mutable global it defines and
 * (2) its memory maximum lowered to maxMemoryPages. Everything else is copied byte for byte.
 */
export function instrumentModule(bytes: Uint8Array, info: ModuleInfo, opts: InstrumentOptions): Uint8Array {
  const extra = info.globals.filter((g) => g.mutable).map((g): ExportEntry => ({ name: `${opts.globalExportPrefix}${g.index}`, kind: EXTERNAL_KIND.global, index: g.index }));
  const exportPayload = (): number[] => {
    const all = [...info.exports, ...extra];
    return [...uleb(all.length), ...all.flatMap((e) => [...encName(e.name), e.kind, ...uleb(e.index)])];
  };
  const memoryPayload = (): number[] =>
    [...uleb(info.memories.length), ...info.memories.flatMap((m) => {
      if (m.min > opts.maxMemoryPages) throw new WasmFormatError(`memory needs ${m.min} pages at start, more than the ${opts.maxMemoryPages} allowed`);
      return [1, ...uleb(m.min), ...uleb(Math.min(m.max ?? Infinity, opts.maxMemoryPages))];
    })];

  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let exportWritten = false;
  for (const s of sections(bytes)) {
    if (!exportWritten && AFTER_EXPORT.has(s.id)) {
      parts.push(encSection(SECTION.export, exportPayload()));
      exportWritten = true;
    }
    if (s.id === SECTION.export) {
      parts.push(encSection(SECTION.export, exportPayload()));
      exportWritten = true;
    } else if (s.id === SECTION.memory) {
      parts.push(encSection(SECTION.memory, memoryPayload()));
    } else {
      parts.push(bytes.subarray(s.rawStart, s.end));
    }
  }
  if (!exportWritten) parts.push(encSection(SECTION.export, exportPayload()));
  return Buffer.concat(parts);
}

export function signatureOf(t: FuncType): string {
  return `(${t.params.join(',')})->(${t.results.join(',')})`;
}
