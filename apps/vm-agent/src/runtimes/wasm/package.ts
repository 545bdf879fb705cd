// A WASM package: a folder with manifest.json and the module it names. Loading checks everything a
// storefront can act on (manifest, module, ABI exports/imports, snapshot-ability) and compiles the
// instrumented module once per distinct module hash.
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { readBaseManifest, type BaseManifest } from '../manifest';
import { ABI_VERSION, APP_DATA_EXPORTS, GLOBAL_EXPORT_PREFIX, HOST_IMPORTS, OPTIONAL_EXPORTS, REQUIRED_EXPORTS, RESERVED_EXPORT_PREFIX } from './abi';
import { EXTERNAL_KIND, instrumentModule, parseModule, signatureOf, WasmFormatError, type GlobalEntry, type ModuleInfo } from './binary';
import { WA, type WasmModule } from './webassembly';

export interface WasmManifest extends BaseManifest<'WASM'> {
  entry: string;
}

/** A checked, compiled module; shared by every instance of the same bytes. */
export interface CompiledModule {
  sha256: Buffer;
  module: WasmModule;
  /** the mutable globals a FULL snapshot carries, by index */
  globals: GlobalEntry[];
  exportNames: ReadonlySet<string>;
  hasAppData: boolean;
  /** most 64 KiB pages the instance's memory may grow to (this host's limit) */
  maxMemoryPages: number;
}

export interface WasmPackage {
  dir: string;
  manifest: WasmManifest;
  compiled: CompiledModule;
}

export class WasmPackageError extends Error {
  constructor(dir: string, reason: string) {
    super(`invalid WASM package ${dir}: ${reason}`);
    this.name = 'WasmPackageError';
  }
}

export async function readManifest(dir: string): Promise<WasmManifest> {
  const fail = (reason: string): never => {
    throw new WasmPackageError(dir, reason);
  };
  const { base, raw: m } = await readBaseManifest(dir, 'WASM', fail);
  if (typeof m.entry !== 'string' || m.entry === '') fail('manifest "entry" must name the .wasm file');
  const entry = m.entry as string;
  const resolved = path.resolve(dir, entry);
  if (path.isAbsolute(entry) || !resolved.startsWith(path.resolve(dir) + path.sep)) fail(`manifest "entry" must be a path inside the package (got ${JSON.stringify(entry)})`);
  return { ...base, entry };
}

/** Checks the module against the ABI; returns what is wrong, or null. */
function abiProblem(info: ModuleInfo): string | null {
  const sigOfExport = (name: string): string | null | undefined => {
    const e = info.exports.find((x) => x.name === name);
    if (!e) return undefined;
    if (e.kind !== EXTERNAL_KIND.func) return null;
    return signatureOf(info.types[info.funcTypes[e.index]]);
  };
  const memory = info.exports.find((e) => e.name === 'memory');
  if (!memory || memory.kind !== EXTERNAL_KIND.memory || info.memories.length !== 1) return 'the module must define exactly one memory and export it as "memory"';
  const missing = Object.keys(REQUIRED_EXPORTS).filter((n) => sigOfExport(n) === undefined);
  if (missing.length) return `missing required export(s): ${missing.join(', ')}`;
  for (const [name, want] of [...Object.entries(REQUIRED_EXPORTS), ...Object.entries(OPTIONAL_EXPORTS)]) {
    const got = sigOfExport(name);
    if (got !== undefined && got !== want) return `export ${name} must be a function ${want} (got ${got ?? 'not a function'})`;
  }
  const appData = APP_DATA_EXPORTS.filter((n) => sigOfExport(n) !== undefined);
  if (appData.length !== 0 && appData.length !== APP_DATA_EXPORTS.length) return `app-data exports come together: ${APP_DATA_EXPORTS.join(', ')} (found only ${appData.join(', ')})`;
  const reserved = info.exports.find((e) => e.name.startsWith(RESERVED_EXPORT_PREFIX));
  if (reserved) return `export name ${reserved.name} uses the reserved prefix ${RESERVED_EXPORT_PREFIX}`;
  for (const imp of info.imports) {
    const key = `${imp.module}.${imp.name}`;
    const want = HOST_IMPORTS[key];
    if (!want) {
      const hint = key === 'env.seed' ? ' (Math.random is not available: use a seeded PRNG kept in guest memory)' : '';
      return `imports ${key}, which the host does not provide${hint}; allowed imports: ${Object.keys(HOST_IMPORTS).join(', ')}`;
    }
    const got = imp.kind === EXTERNAL_KIND.func && imp.typeIndex !== undefined ? signatureOf(info.types[imp.typeIndex]) : 'not a function';
    if (got !== want) return `import ${key} must be a function ${want} (got ${got})`;
  }
  if (info.imports.some((i) => i.module === 'uve' && i.name === 'request_resource') && !(sigOfExport('uve_resource_answer') && sigOfExport('uve_resource_refused'))) {
    return 'a module that imports uve.request_resource must export uve_resource_answer and uve_resource_refused';
  }
  const badGlobal = info.globals.find((g) => g.mutable && (g.type === 'v128' || g.type === 'ref'));
  if (badGlobal) return `mutable global ${badGlobal.index} has type ${badGlobal.type}, which a FULL snapshot cannot carry`;
  return null;
}

/**
 * Instantiates once with inert imports to read uve_abi_version(), on a worker thread with a time
 * budget: the module's start function and uve_abi_version are guest code, which may never return.
 */
function abiVersionOf(module: WasmModule, budgetMs: number): Promise<number> {
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const instance = new WebAssembly.Instance(workerData.module, {
      uve: { request_resource: () => 0 },
      env: { abort: () => { throw new Error('abort called while checking the ABI version'); } },
    });
    parentPort.postMessage(instance.exports.uve_abi_version());`;
  return new Promise<number>((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { module } });
    // settled either way, the thread goes (a second settle is a no-op)
    const finish = (settle: () => void): void => {
      clearTimeout(timer);
      void worker.terminate();
      settle();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`it did not return from uve_abi_version() within ${budgetMs} ms`))), budgetMs);
    worker.once('message', (v: number) => finish(() => resolve(v)));
    worker.once('error', (e) => finish(() => reject(e)));
    worker.once('exit', (code) => finish(() => reject(new Error(`the check exited (code ${code})`))));
  });
}

export async function compileModule(dir: string, bytes: Uint8Array, maxMemoryPages: number, budgetMs: number): Promise<CompiledModule> {
  const fail = (reason: string): never => {
    throw new WasmPackageError(dir, reason);
  };
  if (!WA.validate(bytes)) fail('entry is not a valid WebAssembly module');
  let info: ModuleInfo;
  let instrumented: Uint8Array;
  try {
    info = parseModule(bytes);
    const problem = abiProblem(info);
    if (problem) return fail(problem);
    instrumented = instrumentModule(bytes, info, { globalExportPrefix: GLOBAL_EXPORT_PREFIX, maxMemoryPages });
  } catch (e) {
    if (e instanceof WasmFormatError) return fail(e.message);
    throw e;
  }
  const module = await WA.compile(instrumented);
  let version: number;
  try {
    version = await abiVersionOf(module, budgetMs);
  } catch (e) {
    return fail(`the module cannot be instantiated: ${(e as Error).message}`);
  }
  if (version !== ABI_VERSION) fail(`uve_abi_version() returned ABI version ${version}; this host supports version ${ABI_VERSION}`);
  const exportNames = new Set(info.exports.map((e) => e.name));
  return {
    sha256: createHash('sha256').update(bytes).digest(),
    module,
    globals: info.globals.filter((g) => g.mutable),
    exportNames,
    hasAppData: APP_DATA_EXPORTS.every((n) => exportNames.has(n)),
    maxMemoryPages,
  };
}

/** Reads, checks and compiles a package; `cache` keeps compiled modules by content hash. */
export async function loadPackage(dir: string, maxMemoryPages: number, cache: Map<string, Promise<CompiledModule>>, budgetMs: number): Promise<WasmPackage> {
  const manifest = await readManifest(dir);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path.resolve(dir, manifest.entry));
  } catch (e) {
    throw new WasmPackageError(dir, (e as NodeJS.ErrnoException).code === 'ENOENT' ? `entry ${manifest.entry} not found` : `entry ${manifest.entry} cannot be read: ${(e as Error).message}`);
  }
  const key = createHash('sha256').update(bytes).digest('hex');
  let compiled = cache.get(key);
  if (!compiled) {
    compiled = compileModule(dir, bytes, maxMemoryPages, budgetMs);
    cache.set(key, compiled);
    // a package that failed must be checked again next time (its error names its folder)
    compiled.catch(() => cache.delete(key));
  }
  return { dir, manifest, compiled: await compiled };
}
