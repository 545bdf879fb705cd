// The agent bundled into one file, which the agent images run (ENTRYPOINT).
import path from 'node:path';
import { BuildError } from '../log';
import { AGENT_DIR, appPath, ROOT } from '../paths';

/** where the image's agent bundle goes; beside dist/main.js's folder depth, so its __dirname-relative paths (AGENT_ROOT) hold */
const BUNDLE = 'apps/vm-agent/dist/bundle/main.js';
/** optional packages the agent's dependencies try to load (ws); absent here, absent in the image */
const OPTIONAL_EXTERNALS = ['bufferutil', 'utf-8-validate'];

/**
 * The agent (dist/main.js and everything it requires, less the packages with native addons, named
 * in `nativeNames`) bundled into one file, with its source map (through the tsc maps to src/*.ts, no
 * sources inlined): [path in the image, content][]. Node loads one file instead of resolving and
 * reading ~hundreds of modules: 0.1-0.2 s less of a cold DOCKER VM's start (docs/performance.md).
 * Packages with native addons stay in node_modules (they find their .node files relative to themselves).
 */
export function agentBundle(nativeNames: Set<string>): [string, Buffer][] {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = require('esbuild') as typeof import('esbuild');
  } catch {
    throw new BuildError('esbuild is not installed (a devDependency of the repository): run npm ci');
  }
  const r = esbuild.buildSync({
    entryPoints: [path.join(AGENT_DIR, 'dist', 'main.js')],
    absWorkingDir: ROOT,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${process.versions.node.split('.')[0]}`,
    external: [...nativeNames, ...OPTIONAL_EXTERNALS],
    sourcemap: 'linked',
    sourcesContent: false,
    outfile: path.join(ROOT, BUNDLE),
    write: false,
    logLevel: 'silent',
  });
  return r.outputFiles.map((f) => [appPath(f.path), Buffer.from(f.contents)]);
}
