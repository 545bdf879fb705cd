import { resolve } from 'node:path';

// dist/common (or src/common under ts tooling), and dist/bundle in the agent image (its bundle sits at
// the same depth on purpose) -> apps/vm-agent; independent of the working directory
export const AGENT_ROOT = resolve(__dirname, '..', '..');
