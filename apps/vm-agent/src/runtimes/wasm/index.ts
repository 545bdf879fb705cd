export { WasmRuntime, type WasmRuntimeOptions } from './wasm-runtime';
export { WasmInstance, UaTrapError } from './wasm-instance';
export { WasmPackageError, type WasmManifest } from './package';
export { SnapshotError } from './snapshot';
export { ABI_VERSION } from './abi';
