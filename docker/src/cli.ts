// What the two entry scripts (docker/build-images.js, docker/build-stack-images.js) share: the
// command line's walk and how a failure ends the process.
import { BuildError } from './log';

/**
 * Walks `argv`: -h/--help prints `usage` and exits; `option(arg, value)` takes the others (value()
 * consumes the next argument) and returns false for one it does not know.
 */
export function parseArgv(argv: string[], usage: string, option: (arg: string, value: () => string) => boolean): void {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = () => {
      if (i + 1 >= argv.length) throw new BuildError(`${a} needs a value`);
      return argv[++i]!;
    };
    if (a === '-h' || a === '--help') {
      process.stdout.write(usage);
      process.exit(0);
    }
    if (!option(a, value)) throw new BuildError(`unknown option ${a} (try --help)`);
  }
}

/** runs `main`; a BuildError ends the process with its message, anything else with its stack */
export function runCli(tag: string, main: () => Promise<unknown>): void {
  Promise.resolve()
    .then(main)
    .catch((e: unknown) => {
      console.error(`[${tag}] ${e instanceof BuildError ? e.message : e instanceof Error ? e.stack || e : String(e)}`);
      process.exit(1);
    });
}
