// `node docker/build-images.js [options]` (npm run docker:images): the agent images' command line.
import { parseArgv, runCli } from '../cli';
import { BuildError } from '../log';
import { buildImages, type BuildOptions, imageNames, isPlatform, type Platform } from './build';

export { buildImages, imageNames, BuildError };

export const USAGE = `Builds the VM agent images uve/vm-agent-wasm:<version> and uve/vm-agent-x11:<version> FROM scratch,
from this machine's files only (no image registry, no download): see docs/docker.md.

  node docker/build-images.js [--platform wasm|x11|all] [--force] [--context-only] [--quiet]
                              [--wasm-image NAME:TAG] [--x11-image NAME:TAG]

1. Lists every file of every layer (docker/agent.Dockerfile): the Node binary running this
   script and its shared libraries (ldd), ffmpeg (H264 encoder) and its libraries, for LINUX_X11
   also Xvfb, xkbcomp, xterm, X data files and fonts, the agent's production node_modules
   (dependency closure of apps/vm-agent/package.json, with the libraries their native addons
   need), the built agent, packages/*/dist and the sample UAs (uas/*/build, uas-x11/*).
2. Hashes those inputs (content, mode, place in the image). An image whose \`uve.inputs.sha256\`
   label has that hash is up to date: nothing is built.
3. Otherwise writes the layer folders of the build context (docker/.build/context; hard links
   where possible) and runs \`docker build\` with docker/agent.Dockerfile; the image it replaces
   is removed.
Prerequisites: \`npm ci && npm run build\`, the Debian packages ffmpeg, xvfb, xterm, docker.io,
and a running Docker engine.
`;

export function parseArgs(argv: string[]): BuildOptions {
  const opts: BuildOptions & { images: Record<Platform, string> } = { platforms: ['wasm', 'x11'], force: false, contextOnly: false, quiet: false, images: imageNames() };
  parseArgv(argv, USAGE, (a, value) => {
    if (a === '--platform') {
      const v = value();
      const platforms = v === 'all' ? ['wasm', 'x11'] : v.split(',').map((s) => s.trim().toLowerCase());
      for (const p of platforms) if (!isPlatform(p)) throw new BuildError(`unknown platform ${p} (wasm, x11, all)`);
      opts.platforms = platforms as Platform[];
    } else if (a === '--force') opts.force = true;
    else if (a === '--context-only') opts.contextOnly = true;
    else if (a === '--quiet' || a === '-q') opts.quiet = true;
    else if (a === '--wasm-image') opts.images.wasm = value();
    else if (a === '--x11-image') opts.images.x11 = value();
    else return false;
    return true;
  });
  return opts;
}

export function main(argv: string[]): void {
  runCli('docker:images', () => buildImages(parseArgs(argv)));
}
