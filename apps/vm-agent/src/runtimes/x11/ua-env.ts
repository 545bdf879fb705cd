// The environment of a LINUX_X11 UA, built from scratch: the agent's own holds the control plane's
// keys (REDIS_URL, UVE_VM_SECRET) and must never reach application code.

/** taken from the agent: where programs are and how text is shown, nothing secret */
const PASSED = new Set(['PATH', 'LANG', 'LANGUAGE', 'TZ']);

export function uaEnvironment(
  agentEnv: NodeJS.ProcessEnv,
  manifestEnv: Record<string, string>,
  x: { display: string; xauthority: string; home: string },
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(agentEnv)) if (v !== undefined && (PASSED.has(k) || k.startsWith('LC_'))) env[k] = v;
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  env.LANG ??= 'C.UTF-8';
  // the package's own settings win over the defaults, never over the display (see RESERVED_ENV)
  return { ...env, HOME: x.home, TMPDIR: x.home, ...manifestEnv, DISPLAY: x.display, XAUTHORITY: x.xauthority };
}
