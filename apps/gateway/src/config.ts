// The gateway's whole configuration, from the environment, validated once at start.
import fs from 'node:fs';
import path from 'node:path';
import { parseVmDataKey, type VmDataKey } from './modules/snapshots/vm-data-store';
import { DEFAULT_GLIBC_TUNABLES } from './infra/allocator';
import { PLATFORMS, type Platform, type VmProvider } from '@uve/protocol';

export interface GatewayConfig {
  host: string;
  port: number;
  /** base URL VMs and clients reach the gateway at (JWKS, VM Data) */
  publicUrl: string | null;
  /** data folder of the embedded defaults (PostgreSQL cluster, private Redis) */
  dataDir: string;
  databaseUrl: string | null;
  redisUrl: string | null;
  queuePrefix: string;
  adminUsername: string;
  adminPassword: string | null;
  accessTokenTtlSec: number;
  sessionTokenTtlSec: number;
  vmHeartbeatTimeoutMs: number;
  /** a DISCONNECTED session keeps its VM slot this long, then ends */
  reconnectWindowSec: number;
  /** a PENDING invitation not answered within this time EXPIRES */
  invitationTtlSec: number;
  packageDownloadTimeoutSec: number;
  /** OFFLINE/FAILED VM records are kept this long after the VM was destroyed */
  vmRetentionSec: number;
  /** a VM report (register, heartbeat, stopping, deployment, ack) older than this is refused as a possible replay */
  vmReportMaxAgeSec: number;
  vmProvider: VmProvider;
  docker: 'auto' | 'on' | 'off';
  dockerCpus: number;
  dockerMemoryMb: number;
  /** agent image per platform for DOCKER and SWARM VMs (null: uve/vm-agent-<wasm|x11>:<agent version>) */
  vmImageWasm: string | null;
  fanoutTrace: string | null;
  vmImageX11: string | null;
  /** SWARM provider: place VMs only on nodes labelled uve.platform.<PLATFORM>=true */
  swarmPlatformLabels: boolean;
  /** SWARM provider: where agents listen and the host UCs connect to ('' = each node's hostname) */
  swarmVmHost: string;
  swarmVmPublicHost: string | null;
  /** SWARM provider: the docker stack the gateway runs in; its VM services and secrets join it (null: none) */
  swarmStack: string | null;
  /** idle VMs kept warm per platform by the pool manager */
  warmVmsPerPlatform: number;
  /** platforms kept warm; 'auto': those of the registered UAs that this host's provider can run */
  poolPlatforms: Platform[] | 'auto';
  idleRetireMs: number;
  maxVms: number;
  vmCapacity: number;
  /** a VM whose CPU load (0..1 of its budget) is at or above this is not given new sessions while another has headroom */
  vmCpuHigh: number;
  /** sample names to register; 'true' stands for every sample that hands out no shell */
  registerSampleUas: string[];
  vmDataMaxMb: number;
  /** AES-256-GCM key VM Data is sealed with at rest; null: stored in clear */
  vmDataKey: VmDataKey | null;
  /** where VM Data chunks are kept: PostgreSQL (any gateway serves any VM) or a folder (one host) */
  vmDataStore: 'postgres' | 'fs';
  /** the folder of the fs store (null: <dataDir>/vm-data) */
  vmDataDir: string | null;
  /** snapshots kept per user, UA and kind (the newest) */
  vmDataKeep: number;
  /** VM Data downloads the PostgreSQL store serves at once (each on a connection of its own) */
  vmDataReaders: number;
  vmDataWriters: number;
  /** NO_LOSS sessions' VMs stage the FULL state this often (s; 0: never) */
  vmDataStageSec: number;
  /** a dropped NO_LOSS session's FULL VM Data is restored ahead on the VM its reconnection will go to */
  restoreAhead: boolean;
  /** GLIBC_TUNABLES of the processes the gateway starts (`off`: none set; infra/allocator.ts) */
  glibcTunables: string;
  graphqlMaxTokens: number;
  graphqlMaxDepth: number;
  graphqlMaxAliases: number;
  graphqlMaxDirectives: number;
  graphqlMaxCost: number;
  /** schema introspection and field suggestions; auto = off when NODE_ENV=production */
  introspection: 'auto' | 'on' | 'off';
  /** origins allowed to call /graphql from a browser (CORS); empty: same origin only */
  corsOrigins: string[];
  registration: 'open' | 'closed';
  loginRatePerMin: number;
  registerRatePerMin: number;
  requestRatePerMin: number;
  maxOpenSessionsPerUser: number;
  /** how long a UA request waits for a VM being started for it (0: no start on demand, refuse at once) */
  requestWaitMs: number;
  /** scrypt work factor of new password hashes */
  passwordScryptN: number;
  signingKeyMaxAgeDays: number;
  logLevel: 'error' | 'warn' | 'info' | 'debug';
  /** bound on an orderly stop; past it every process the gateway started is killed */
  shutdownTimeoutMs: number;
  /** bound on connecting to PostgreSQL and on one query, so requests fail fast when it is down */
  dbTimeoutMs: number;
  /** connections the gateway keeps to PostgreSQL at most (every request and the outbox share them) */
  dbPoolSize: number;
}

export class ConfigError extends Error {}

interface Spec<T> {
  env: string;
  doc: string;
  default: string | null;
  parse: (raw: string, env: string) => T;
  /** also read from a file named by <env>_FILE (a swarm or compose secret), not only from the environment */
  file?: true;
}

/** the doc of a setting that may come from a file */
const orFile = (env: string, doc: string) => `${doc}; or ${env}_FILE, a file holding it (a swarm secret)`;

const str = (raw: string) => raw;
const int = (min: number, max: number) => (raw: string, env: string) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${env} must be an integer from ${min} to ${max}, got "${raw}"`);
  return n;
};
const fraction = (min: number, max: number) => (raw: string, env: string) => {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new ConfigError(`${env} must be a number from ${min} to ${max}, got "${raw}"`);
  return n;
};
const oneOf = <T extends string>(...values: T[]) => (raw: string, env: string): T => {
  if (!(values as string[]).includes(raw)) throw new ConfigError(`${env} must be one of ${values.join(', ')}, got "${raw}"`);
  return raw as T;
};
const bool = (raw: string, env: string) => {
  if (['1', 'true', 'yes'].includes(raw)) return true;
  if (['0', 'false', 'no'].includes(raw)) return false;
  throw new ConfigError(`${env} must be true or false, got "${raw}"`);
};
const url = (...protocols: string[]) => (raw: string, env: string) => {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`${env} must be a URL, got "${raw}"`);
  }
  if (!protocols.includes(u.protocol)) throw new ConfigError(`${env} must be a ${protocols.join(' or ')} URL, got "${raw}"`);
  return raw.replace(/\/$/, '');
};

/** Every setting with its variable, default and meaning; `--help` and the README table come from here. */
export const CONFIG_SPEC = {
  host: { env: 'UVE_HOST', doc: 'address the gateway listens on', default: '127.0.0.1', parse: str },
  port: { env: 'UVE_PORT', doc: 'port of /graphql, /healthz, /readyz (0 = any free port)', default: '4000', parse: int(0, 65535) },
  publicUrl: { env: 'UVE_PUBLIC_URL', doc: 'base URL VMs reach the gateway at (default: http://HOST:PORT)', default: null, parse: url('http:', 'https:') },
  dataDir: { env: 'UVE_DATA_DIR', doc: 'folder of the embedded PostgreSQL cluster, the private Redis and the PROCESS agents it tracks', default: '.uve', parse: (raw: string) => path.resolve(raw) },
  databaseUrl: { env: 'DATABASE_URL', file: true, doc: orFile('DATABASE_URL', 'PostgreSQL URL; unset: an embedded PostgreSQL in UVE_DATA_DIR'), default: null, parse: url('postgres:', 'postgresql:') },
  redisUrl: { env: 'REDIS_URL', file: true, doc: orFile('REDIS_URL', 'Redis URL; unset: a private redis-server from PATH on a free loopback port'), default: null, parse: url('redis:', 'rediss:') },
  queuePrefix: { env: 'UVE_QUEUE_PREFIX', doc: 'key prefix of the queues in Redis', default: 'uve', parse: str },
  adminUsername: { env: 'UVE_ADMIN_USERNAME', doc: 'first admin, created when no admin exists', default: 'admin', parse: str },
  adminPassword: { env: 'UVE_ADMIN_PASSWORD', file: true, doc: orFile('UVE_ADMIN_PASSWORD', 'its password; unset: a random one, printed once'), default: null, parse: str },
  accessTokenTtlSec: { env: 'UVE_ACCESS_TOKEN_TTL', doc: 'lifetime of login tokens, seconds', default: '43200', parse: int(10, 30 * 86400) },
  sessionTokenTtlSec: { env: 'UVE_SESSION_TOKEN_TTL', doc: 'lifetime of UVE-3 session tokens, seconds', default: '120', parse: int(10, 3600) },
  vmHeartbeatTimeoutMs: { env: 'UVE_VM_HEARTBEAT_TIMEOUT_MS', doc: 'a VM silent this long is OFFLINE', default: '6000', parse: int(1000, 600000) },
  reconnectWindowSec: { env: 'UVE_RECONNECT_WINDOW_S', doc: 'a DISCONNECTED session keeps its VM slot this long, then ENDS', default: '300', parse: int(1, 86400) },
  invitationTtlSec: { env: 'UVE_INVITATION_TTL_S', doc: 'an invitation to a session not answered within this time EXPIRES', default: '600', parse: int(5, 7 * 86400) },
  vmRetentionSec: { env: 'UVE_VM_RETENTION_S', doc: 'OFFLINE/FAILED VM records are pruned this long after the VM was destroyed', default: '3600', parse: int(0, 31536000) },
  vmReportMaxAgeSec: { env: 'UVE_VM_REPORT_MAX_AGE_S', doc: "a signed UVE-5 VM report older (or further ahead) than this is refused; keep the VMs' clocks within it", default: '300', parse: int(10, 86400) },
  vmProvider: { env: 'UVE_VM_PROVIDER', doc: 'default VM provider: PROCESS, DOCKER or SWARM (services on the Docker Swarm whose manager DOCKER_HOST points at)', default: 'PROCESS', parse: oneOf<VmProvider>('PROCESS', 'DOCKER', 'SWARM') },
  docker: { env: 'UVE_DOCKER', doc: 'DOCKER provider: auto (when an engine answers and the images exist), on (required), off', default: 'auto', parse: oneOf('auto', 'on', 'off') },
  dockerCpus: { env: 'UVE_DOCKER_CPUS', doc: 'CPUs per DOCKER or SWARM VM (0 = no limit)', default: '1', parse: int(0, 256) },
  dockerMemoryMb: { env: 'UVE_DOCKER_MEMORY_MB', doc: 'memory per DOCKER or SWARM VM, MiB (0 = no limit)', default: '1024', parse: int(0, 1_048_576) },
  fanoutTrace: { env: 'UVE_FANOUT_TRACE', doc: 'file where each session event\'s publish, arrival from Redis and per-subscriber writes are timed (a JSON line per event, for bench/fanout)', default: null, parse: str },
  vmImageWasm: { env: 'UVE_VM_IMAGE_WASM', doc: 'image of DOCKER and SWARM VMs of the WASM platform (unset: uve/vm-agent-wasm:<agent version>, as npm run docker:images names it)', default: null, parse: str },
  vmImageX11: { env: 'UVE_VM_IMAGE_LINUX_X11', doc: 'image of DOCKER and SWARM VMs of the LINUX_X11 platform (unset: uve/vm-agent-x11:<agent version>)', default: null, parse: str },
  swarmPlatformLabels: { env: 'UVE_SWARM_PLATFORM_LABELS', doc: 'SWARM VMs go only to nodes labelled uve.platform.<PLATFORM>=true: on or off (any node)', default: 'on', parse: (raw: string, env: string) => oneOf('on', 'off')(raw, env) === 'on' },
  swarmVmHost: { env: 'UVE_SWARM_VM_HOST', doc: 'address SWARM agents listen on (host network of their node)', default: '0.0.0.0', parse: str },
  swarmStack: { env: 'UVE_SWARM_STACK', doc: 'SWARM provider: name of the docker stack the gateway runs in (docker/stack.yml sets it); VM services and their secrets carry its namespace label, so `docker stack rm` removes them with the stack', default: null, parse: str },
  swarmVmPublicHost: { env: 'UVE_SWARM_VM_PUBLIC_HOST', doc: 'host UCs reach SWARM agents at (unset: the node\'s hostname, or UVE_SWARM_VM_HOST when that is not 0.0.0.0)', default: null, parse: str },
  warmVmsPerPlatform: { env: 'UVE_WARM_VMS', doc: 'idle VMs the pool keeps warm per platform', default: '1', parse: int(0, 100) },
  poolPlatforms: { env: 'UVE_POOL_PLATFORMS', doc: 'platforms the pool keeps warm, comma-separated, or auto (those of the registered UAs this host can run)', default: 'auto', parse: (raw: string, env: string): Platform[] | 'auto' => {
    if (raw === 'auto') return 'auto';
    const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
    for (const p of list) if (!(PLATFORMS as readonly string[]).includes(p)) throw new ConfigError(`${env} must list platforms among ${PLATFORMS.join(', ')}, got "${p}"`);
    return list as Platform[];
  } },
  idleRetireMs: { env: 'UVE_VM_IDLE_RETIRE_MS', doc: 'an idle VM beyond the warm count is retired after this long', default: '120000', parse: int(0, 86_400_000) },
  maxVms: { env: 'UVE_MAX_VMS', doc: 'most VMs the pool provisions', default: '8', parse: int(0, 1000) },
  vmCapacity: { env: 'UVE_VM_CAPACITY', doc: 'sessions per provisioned VM', default: '4', parse: int(1, 64) },
  vmCpuHigh: { env: 'UVE_VM_CPU_HIGH', doc: 'CPU load (0..1 of a VM\'s budget, from its heartbeats) at which a VM gets no new session while another has headroom, and the pool counts it as full', default: '0.85', parse: fraction(0.05, 1) },
  registerSampleUas: { env: 'UVE_SAMPLE_UAS', doc: 'sample UAs registered at start: true (those that hand out no shell), false, or a comma-separated list of sample names where true stands for the safe ones (e.g. true,xterm; xterm gives its user a shell)', default: 'true', parse: (raw: string, env: string): string[] => {
    const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
    if (items.length === 1 && ['false', '0', 'no', 'off'].includes(items[0])) return [];
    for (const i of items) if (!/^[a-z0-9][a-z0-9-]*$/.test(i)) throw new ConfigError(`${env} must be true, false or a comma-separated list of sample names, got "${i}"`);
    return items.map((i) => (['1', 'yes', 'on'].includes(i) ? 'true' : i));
  } },
  packageDownloadTimeoutSec: { env: 'UVE_PACKAGE_DOWNLOAD_TIMEOUT_S', doc: 'a VM gives up downloading a UA package from a storefront after this long', default: '120', parse: int(1, 3600) },
  vmDataMaxMb: { env: 'UVE_VM_DATA_MAX_MB', doc: 'largest VM Data upload a VM may store, MiB', default: '256', parse: int(1, 1024) },
  vmDataKey: { env: 'UVE_VM_DATA_KEY', file: true, doc: orFile('UVE_VM_DATA_KEY', 'key that seals VM Data at rest (AES-256-GCM per chunk): 32 bytes as 64 hex digits or base64, the same on every gateway; unset: stored in clear'), default: null, parse: (raw: string, env: string) => {
    const key = parseVmDataKey(raw);
    if (!key) throw new ConfigError(`${env} must be 32 bytes as 64 hex digits or base64 (e.g. from \`openssl rand -hex 32\`)`);
    return key;
  } },
  vmDataStore: { env: 'UVE_VM_DATA_STORE', doc: 'where VM Data is kept: postgres (chunks in the database, any gateway serves any VM) or fs (files in UVE_VM_DATA_STORE_DIR, single-host setups)', default: 'postgres', parse: oneOf('postgres', 'fs') },
  vmDataDir: { env: 'UVE_VM_DATA_STORE_DIR', doc: 'folder of the fs VM Data store (default <UVE_DATA_DIR>/vm-data)', default: null, parse: (raw: string) => path.resolve(raw) },
  vmDataKeep: { env: 'UVE_VM_DATA_KEEP', doc: 'VM Data snapshots kept per user, UA and kind (APP_DATA, FULL): the newest; older ones are deleted when a new one is stored', default: '1', parse: int(1, 100) },
  vmDataReaders: { env: 'UVE_VM_DATA_READERS', doc: 'VM Data downloads the postgres store serves at once, each on a database connection of its own besides the pool, kept open once opened (more wait for one, up to UVE_DB_TIMEOUT_MS)', default: '4', parse: int(1, 64) },
  vmDataWriters: { env: 'UVE_VM_DATA_WRITERS', doc: 'new VM Data chunks the postgres store inserts at once, each on a database connection of its own besides the pool, kept open once opened (an upload keeps that many in flight; 2 and 4 measured no faster against one embedded server, whose own write path is the bound)', default: '1', parse: int(1, 16) },
  vmDataStageSec: { env: 'UVE_VM_DATA_STAGE_S', doc: 'with the postgres store, the VM of a NO_LOSS session stages the UA\'s FULL state with the VMM this often while it runs, so that its save at a drop or at the end sends only the chunks that changed since (each staging copies the state out, pausing the UA as long); 0: never', default: '10', parse: int(0, 86400) },
  restoreAhead: { env: 'UVE_RESTORE_AHEAD', doc: 'while a NO_LOSS session is DISCONNECTED, the VM its reconnection will go to downloads its FULL VM Data and restores it into a frozen UA, so that the reconnection waits for neither (the VM holds the state\'s memory until the reconnection or the window\'s end); 0: restored only when the user is back', default: '1', parse: bool },
  glibcTunables: { env: 'UVE_GLIBC_TUNABLES', doc: `GLIBC_TUNABLES of the processes the gateway starts (embedded PostgreSQL, private Redis, VM agents; and of the gateway under npm start): large allocations on transparent huge pages, fewer page faults per VM Data transfer (docs/operations.md); off: none. A GLIBC_TUNABLES of the gateway's own environment wins`, default: DEFAULT_GLIBC_TUNABLES, parse: str },
  graphqlMaxTokens: { env: 'UVE_GRAPHQL_MAX_TOKENS', doc: 'most tokens a GraphQL document may have', default: '2000', parse: int(100, 100_000) },
  graphqlMaxDepth: { env: 'UVE_GRAPHQL_MAX_DEPTH', doc: 'deepest selection a GraphQL operation may nest', default: '10', parse: int(2, 100) },
  graphqlMaxAliases: { env: 'UVE_GRAPHQL_MAX_ALIASES', doc: 'most aliases in one GraphQL operation', default: '10', parse: int(0, 1000) },
  graphqlMaxDirectives: { env: 'UVE_GRAPHQL_MAX_DIRECTIVES', doc: 'most directives in one GraphQL operation', default: '20', parse: int(0, 1000) },
  graphqlMaxCost: { env: 'UVE_GRAPHQL_MAX_COST', doc: 'highest cost of one GraphQL operation (graphql-armor cost-limit)', default: '5000', parse: int(10, 1_000_000) },
  introspection: { env: 'UVE_GRAPHQL_INTROSPECTION', doc: 'schema introspection and field suggestions: auto (off when NODE_ENV=production), on, off', default: 'auto', parse: oneOf('auto', 'on', 'off') },
  corsOrigins: { env: 'UVE_CORS_ORIGINS', doc: 'origins allowed to call the API from a browser, comma-separated (unset: same origin only)', default: null, parse: (raw: string, env: string) =>
    raw.split(',').map((s) => s.trim()).filter(Boolean).map((o) => url('http:', 'https:')(o, env)) },
  registration: { env: 'UVE_REGISTRATION', doc: 'self-registration of users: open or closed (admins still create users)', default: 'open', parse: oneOf('open', 'closed') },
  loginRatePerMin: { env: 'UVE_LOGIN_RATE_PER_MIN', doc: 'login attempts per minute per client address and per username', default: '10', parse: int(1, 100_000) },
  registerRatePerMin: { env: 'UVE_REGISTER_RATE_PER_MIN', doc: 'registrations per minute per client address', default: '5', parse: int(1, 100_000) },
  requestRatePerMin: { env: 'UVE_REQUEST_RATE_PER_MIN', doc: 'UA requests per minute per user', default: '30', parse: int(1, 100_000) },
  maxOpenSessionsPerUser: { env: 'UVE_MAX_OPEN_SESSIONS', doc: 'open (not ended) sessions one user may have at once', default: '5', parse: int(1, 1000) },
  requestWaitMs: { env: 'UVE_REQUEST_WAIT_MS', doc: 'a UA request with no VM free waits this long for one the pool starts (0: refuse at once)', default: '20000', parse: int(0, 300_000) },
  passwordScryptN: { env: 'UVE_PASSWORD_SCRYPT_N', doc: 'scrypt work factor N of password hashes (a power of two; weaker hashes are upgraded at sign-in)', default: '131072', parse: (raw: string, env: string) => {
    const n = int(1024, 2 ** 20)(raw, env);
    if ((n & (n - 1)) !== 0) throw new ConfigError(`${env} must be a power of two, got "${raw}"`);
    return n;
  } },
  signingKeyMaxAgeDays: { env: 'UVE_SIGNING_KEY_MAX_AGE_DAYS', doc: 'token signing keys rotate when older than this (the previous key keeps verifying)', default: '30', parse: int(1, 3650) },
  logLevel: { env: 'UVE_LOG_LEVEL', doc: 'error, warn, info or debug', default: 'info', parse: oneOf('error', 'warn', 'info', 'debug') },
  shutdownTimeoutMs: { env: 'UVE_SHUTDOWN_TIMEOUT_MS', doc: 'longest orderly stop on SIGINT/SIGTERM; then every process it started is killed', default: '10000', parse: int(1000, 600_000) },
  dbTimeoutMs: { env: 'UVE_DB_TIMEOUT_MS', doc: 'bound on connecting to PostgreSQL and on one query (requests then fail with UNAVAILABLE)', default: '10000', parse: int(500, 600_000) },
  dbPoolSize: { env: 'UVE_DB_POOL_SIZE', doc: 'most connections of the gateway\'s main PostgreSQL pool (requests beyond wait up to UVE_DB_TIMEOUT_MS for one; mind PostgreSQL max_connections across gateways: each holds up to this plus UVE_VM_DATA_READERS and UVE_VM_DATA_WRITERS)', default: '10', parse: int(1, 1000) },
} satisfies { [K in keyof GatewayConfig]: Spec<NonNullable<GatewayConfig[K]>> };

/** the value in the file <name>_FILE names (trailing line breaks dropped), or undefined when that is unset */
function fromFile(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (!file) return undefined;
  try {
    return fs.readFileSync(file, 'utf8').replace(/[\r\n]+$/, '');
  } catch (e) {
    throw new ConfigError(`${name}_FILE ${file} cannot be read: ${(e as Error).message}`);
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(CONFIG_SPEC) as [string, Spec<unknown>][]) {
    const raw = env[spec.env] || (spec.file ? fromFile(env, spec.env) : undefined);
    const value = raw !== undefined && raw !== '' ? raw : spec.default;
    out[key] = value === null ? null : spec.parse(value, spec.env);
  }
  out.corsOrigins ??= [];
  const config = out as unknown as GatewayConfig;
  if (config.vmProvider === 'DOCKER' && config.docker === 'off') throw new ConfigError('UVE_VM_PROVIDER=DOCKER needs UVE_DOCKER=auto or on');
  if (config.adminPassword !== null && config.adminPassword.length < 8) throw new ConfigError('UVE_ADMIN_PASSWORD must have at least 8 characters');
  return config;
}

export function configHelp(): string {
  const rows = Object.values(CONFIG_SPEC).map((s) => `  ${s.env.padEnd(28)} ${s.doc}${s.default !== null ? ` (default: ${s.default})` : ''}`);
  return rows.join('\n');
}
