// The environment a VMM starts a VM agent with: the names live here once, so that the gateway's
// providers and the agent's configuration (apps/vm-agent/src/config.ts, which documents each and
// reads many more) cannot drift apart.

export const AGENT_ENV = {
  redisUrl: 'REDIS_URL',
  /** a file holding REDIS_URL (it may carry a password): what containers get instead */
  redisUrlFile: 'REDIS_URL_FILE',
  gatewayUrl: 'UVE_GATEWAY_URL',
  vmId: 'UVE_VM_ID',
  vmSecretFile: 'UVE_VM_SECRET_FILE',
  vmName: 'UVE_VM_NAME',
  platform: 'UVE_VM_PLATFORM',
  provider: 'UVE_VM_PROVIDER',
  capacity: 'UVE_VM_CAPACITY',
  queuePrefix: 'UVE_QUEUE_PREFIX',
  host: 'UVE_VM_HOST',
  publicHost: 'UVE_VM_PUBLIC_HOST',
  port: 'UVE_VM_PORT',
  logLevel: 'UVE_LOG_LEVEL',
  /** PROCESS provider: the pid of the gateway that started the agent (its parent) */
  parentPid: 'UVE_PARENT_PID',
  /** PROCESS provider: the agent's data folder, made by the gateway for this run */
  dataDir: 'UVE_VM_DATA_DIR',
  /** PROCESS provider: `true`, the data folder is this run's only (removed when the agent exits) */
  dataTemporary: 'UVE_VM_DATA_TEMPORARY',
} as const;

export type AgentEnvName = (typeof AGENT_ENV)[keyof typeof AGENT_ENV];
/** What a VMM sets for an agent, by setting; unset ones take the agent's defaults. */
export type AgentLaunchSettings = Partial<Record<keyof typeof AGENT_ENV, string>>;

/** The environment variables of `settings` (unset ones left out). */
export function agentLaunchEnv(settings: AgentLaunchSettings): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(settings)) {
    if (value !== undefined) env[AGENT_ENV[key as keyof typeof AGENT_ENV]] = value;
  }
  return env;
}
