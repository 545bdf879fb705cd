// The builders' one voice: progress lines (silenced by --quiet) and the error a user can act on.

/** a failure the user can fix (a missing package, build or engine): printed without a stack */
export class BuildError extends Error {}

let quiet = false;

export function setQuiet(q: boolean): void {
  quiet = q;
}

export function log(...args: unknown[]): void {
  if (!quiet) console.log('[docker:images]', ...args);
}
