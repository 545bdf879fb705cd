// Runtimes by platform: the one place that knows which UaRuntime runs which platform's UAs.
import type { Platform } from '@uve/protocol';
import type { UaRuntime } from './runtime';
import { WasmRuntime, type WasmRuntimeOptions } from './wasm';
import { X11Runtime, type X11RuntimeOptions } from './x11';

export type { UaRuntime, UaInstance, UaStartOptions, RawFrame, PixelFormat, InstalledUa, ResourceBroker, ResourceAnswer } from './runtime';
export { pictureBytes } from './runtime';

export interface RuntimeOptions {
  wasm?: WasmRuntimeOptions;
  x11?: X11RuntimeOptions;
}

const factories: Partial<Record<Platform, (o: RuntimeOptions) => UaRuntime>> = {
  WASM: (o) => new WasmRuntime(o.wasm),
  LINUX_X11: (o) => new X11Runtime(o.x11),
};

export function supportedPlatforms(): Platform[] {
  return Object.keys(factories) as Platform[];
}

/** The runtime for a platform; throws when this agent cannot host it. */
export function runtimeFor(platform: Platform, options: RuntimeOptions = {}): UaRuntime {
  const make = factories[platform];
  if (!make) throw new Error(`platform ${platform} has no runtime in this agent (supported: ${supportedPlatforms().join(', ')})`);
  return make(options);
}
