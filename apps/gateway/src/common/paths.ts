import path from 'node:path';

/** apps/vm-agent in this repository: the PROCESS provider runs its binary, the samples come from it. */
export const AGENT_ROOT = path.resolve(__dirname, '../../../vm-agent');
