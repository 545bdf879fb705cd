// The agent's whole configuration, from the environment, validated in one place. Every problem is
// collected so that one failed start lists everything that is wrong, not the first thing only.
import { readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import {
  AGENT_ENV,
  JWKS_PATH,
  PLATFORMS,
  VIDEO_CODECS,
  VM_DATA_PATH,
  VM_PROVIDERS,
  type Platform,
  type VideoCodec,
  type VmProvider,
} from '@uve/protocol';
import { LOG_LEVELS, type LogLevel } from './common/log';

export interface AgentConfig {
  redisUrl: string;
  /** base http(s) URL of the VMM, without a trailing slash */
  gatewayUrl: string;
  /** where session-token keys are fetched (gatewayUrl + JWKS_PATH) */
  jwksUrl: string;
  /** VM Data endpoint on the VMM (gatewayUrl + VM_DATA_PATH) */
  vmDataUrl: string;
  vmId: string;
  /** the VM's credential: signs its UVE-5 reports, authenticates its VM Data calls */
  vmSecret: string;
  /** LINUX_X11 UAs run as this user (the agent must be root to switch); null: as the agent's own user */
  uaUser: string | null;
  vmName: string;
  platform: Platform;
  provider: VmProvider;
  host: string;
  publicHost: string;
  port: number;
  capacity: number;
  /** configured codec subset; null = every codec this machine can encode */
  codecs: VideoCodec[] | null;
  /** where downloaded UA packages live; null = a temporary folder removed on exit */
  dataDir: string | null;
  /** the data folder is removed on exit (always so for a temporary one the agent made) */
  dataTemporary: boolean;
  queuePrefix: string;
  logLevel: LogLevel;
  /** most time one call into a WASM guest may take (input, a frame) before its session fails */
  wasmCallBudgetMs: number;
  /** most time a WASM guest's start and bulk calls (app data, FULL state) may take */
  wasmStartBudgetMs: number;
  /** WASM guest threads kept idle for the next UAs (closed UAs leave theirs); 0 = a thread ends with its UA */
  wasmIdleThreads: number;
  /** a restored WASM guest's memory is advised onto huge pages (runtimes/wasm/huge-pages.ts) */
  wasmHugePages: boolean;
  /** the agent stops by itself once its VMM was unreachable this long; 0 = never */
  vmmLostExitMs: number;
  /** PROCESS provider: the gateway that started it (its parent); null: the parent it has at start */
  parentPid: number | null;
  /** a stop (signal, vm.shutdown, lost VMM) that takes longer is cut short: children killed, exit 1 */
  stopTimeoutMs: number;
  stream: StreamLimits;
  /** PEM certificate and key files: the UVE-3 server speaks wss:// */
  tls: { certFile: string; keyFile: string } | null;
  /** keeps a primed H264 encoder (and on LINUX_X11 a started display) ready for the next session */
  warmStart: boolean;
  /** whether ffmpeg has libx264: known (the agent image records it at build) or probed at start */
  ffmpegLibx264: 'probe' | 'true' | 'false';
  /** VM Data downloads up to this size go into one buffer kept between restores (touched ahead on a warm VM) */
  vmDataBufferBytes: number;
  /** the kept VM Data buffer grows to a larger state's size, up to this (UVE_VM_DATA_BUFFER_MAX_MB) */
  vmDataBufferMaxBytes: number;
}

/** Limits of the UVE-3 server (each refusal closes with a code and a reason). */
export interface StreamLimits {
  maxConnections: number;
  maxConnectionsPerSession: number;
  /** messages per second one connection may send after its welcome (burst: one second's worth) */
  maxMessagesPerSec: number;
  /** a connection's keyframe requests are served at most this often (extra ones are deferred) */
  keyframeIntervalMs: number;
  /** browser Origins allowed to connect; null = any (a UC without Origin is never refused) */
  allowedOrigins: string[] | null;
}

export interface ConfigVar {
  name: string;
  required: boolean;
  default?: string;
  doc: string;
}

/** Every variable the agent reads; `--help` and docs/vm-agent.md list these. */
export const CONFIG_VARS: readonly ConfigVar[] = [
  { name: AGENT_ENV.redisUrl, required: true, doc: 'Redis of the message bus (UVE-2 commands in, UVE-5 events out), redis:// or rediss://; or REDIS_URL_FILE, a file holding it (it may carry a password)' },
  { name: AGENT_ENV.gatewayUrl, required: true, doc: `base http(s) URL of the VMM; session-token keys come from ${JWKS_PATH}, VM Data goes to ${VM_DATA_PATH}` },
  { name: AGENT_ENV.vmId, required: true, doc: 'id of this VM, as created by the VMM' },
  { name: AGENT_ENV.vmSecretFile, required: true, doc: 'file (readable by its owner only) holding the credential the VMM issued this VM: it signs UVE-5 reports and authenticates VM Data calls. UVE_VM_SECRET (the value itself) is taken instead, but every process of the same user can read an environment' },
  { name: 'UVE_UA_USER', required: false, default: 'auto', doc: "user LINUX_X11 UAs run as, so they cannot read the agent's files or its /proc: auto = uve-ua, else nobody, when the agent runs as root (else the agent's own user); none = the agent's own user" },
  { name: AGENT_ENV.vmName, required: false, default: 'vm-<hostname>-<id prefix>', doc: 'name reported in vm.register' },
  { name: AGENT_ENV.platform, required: false, default: 'WASM', doc: `platform of the UAs this VM hosts: ${PLATFORMS.join(', ')}` },
  { name: AGENT_ENV.provider, required: false, default: 'PROCESS', doc: `how the VM is provided: ${VM_PROVIDERS.join(', ')}` },
  { name: AGENT_ENV.host, required: false, default: '127.0.0.1', doc: 'address the UVE-3 server binds to' },
  { name: AGENT_ENV.publicHost, required: false, default: 'UVE_VM_HOST', doc: 'host put into the registered endpoint ws://HOST:PORT' },
  { name: AGENT_ENV.port, required: false, default: '0', doc: 'port of the UVE-3 server; 0 = any free port (the bound port is registered)' },
  { name: AGENT_ENV.capacity, required: false, default: '4', doc: 'sessions this VM runs at once' },
  { name: 'UVE_VM_CODECS', required: false, default: 'all available', doc: `comma-separated subset of ${VIDEO_CODECS.join(', ')}; intersected with what this machine can encode` },
  { name: AGENT_ENV.dataDir, required: false, default: 'a temporary folder', doc: 'where downloaded UA packages are kept (a temporary folder is removed on exit)' },
  { name: AGENT_ENV.dataTemporary, required: false, default: 'false', doc: "true: UVE_VM_DATA_DIR is this run's only and is removed when the agent exits, as a temporary folder is (the PROCESS provider's folders: the gateway removes them too when an agent is killed)" },
  { name: AGENT_ENV.queuePrefix, required: false, default: 'uve', doc: 'key prefix of the message bus in Redis (must match the VMM)' },
  { name: AGENT_ENV.logLevel, required: false, default: 'info', doc: `log level on stderr: ${LOG_LEVELS.join(', ')}` },
  { name: 'UVE_WASM_CALL_BUDGET_MS', required: false, default: '1000', doc: 'most time one call into a WASM UA (input, a frame) may take; over it the UA is stopped and only its session fails, unless its thread was starved (less than half of the CPU since: waited for up to 5 budgets)' },
  { name: 'UVE_WASM_START_BUDGET_MS', required: false, default: '5000', doc: "most time a WASM UA's start and its state saves/restores may take" },
  { name: 'UVE_WASM_IDLE_THREADS', required: false, default: 'UVE_VM_CAPACITY', doc: "WASM guest threads kept idle for the next UAs (at most as many as the VM ran UAs at once): a UA closed in order leaves its thread (its instance and memory dropped: the next UA gets its own), so a session does not pay a worker thread's start; a UA that failed ends its thread; idle threads past the first end after 60 s unused; 0 = every thread ends with its UA" },
  { name: 'UVE_WASM_HUGE_PAGES', required: false, default: 'true', doc: "true: the memory a WASM FULL restore writes is put on transparent huge pages (the agent's addon, dist/native/huge-pages.node, asks for them; the host's /sys/kernel/mm/transparent_hugepage/enabled must be madvise or always): one page fault per 2 MiB instead of per 4 KiB, 11-18 ms instead of 0.38-0.52 s at 128 MiB here (more when the kernel must first compact memory); false: 4 KiB pages. GET /healthz says which (wasmHugePages)" },
  {
    name: 'UVE_VMM_LOST_EXIT_MS',
    required: false,
    default: '60000',
    doc: "the agent stops by itself when the VMM (GET /healthz of UVE_GATEWAY_URL, or Redis) was unreachable this long, or at once when its parent process is gone (PROCESS provider); 0 = never",
  },
  { name: AGENT_ENV.parentPid, required: false, default: 'the parent at start', doc: 'PROCESS provider: the pid of the gateway that started the agent (the gateway sets it). An agent whose parent is not that process (the gateway was killed while it started) exits 1 before it registers; one whose parent goes later stops (UVE_VMM_LOST_EXIT_MS)' },
  { name: 'UVE_STREAM_MAX_CONNECTIONS', required: false, default: '64', doc: 'UVE-3 connections this VM accepts at once; more are closed with 4429' },
  { name: 'UVE_STREAM_MAX_PER_SESSION', required: false, default: '8', doc: 'connections one session accepts at once (its player and viewers); more VIEWERs are closed with 4429' },
  { name: 'UVE_STREAM_MAX_MESSAGES_PER_S', required: false, default: '300', doc: 'messages (input, pings) one UC connection may send per second; a flood is closed with 4429' },
  { name: 'UVE_STREAM_KEYFRAME_INTERVAL_MS', required: false, default: '1000', doc: "a connection's keyframe requests are served at most this often; extra ones wait for the next turn" },
  { name: 'UVE_STREAM_ALLOWED_ORIGINS', required: false, default: 'any', doc: 'comma-separated browser Origins allowed on UVE-3 (e.g. https://play.example.com); others are closed with 4403' },
  { name: 'UVE_STREAM_TLS_CERT', required: false, default: 'none (ws://)', doc: 'PEM certificate file: with UVE_STREAM_TLS_KEY the UVE-3 server speaks wss:// and registers a wss:// endpoint' },
  { name: 'UVE_STREAM_TLS_KEY', required: false, default: 'none', doc: 'PEM private key file of UVE_STREAM_TLS_CERT' },
  { name: 'UVE_WARM_START', required: false, default: 'true', doc: "true: a primed H264 encoder (for the last session's stream parameters, at first 1280x720 at 60 fps) and, on LINUX_X11, a started X display wait for the next session, so that its first frame does not wait for them; false: started per session" },
  { name: 'UVE_FFMPEG_LIBX264', required: false, default: 'probe', doc: "whether ffmpeg on PATH has the libx264 encoder (H264): probe = `ffmpeg -encoders` at start (~0.2 s); true/false = known (the agent image sets it, checked at the image's build on the ffmpeg it contains; a wrong true shows when the primed encoder starts)" },
  { name: 'UVE_VM_DATA_BUFFER_MB', required: false, default: '32', doc: 'VM Data to restore up to this size is downloaded into one buffer kept from one transfer to the next, and a WASM FULL save of up to this size is packed in it (with UVE_WARM_START, allocated and touched ahead: the resident memory of an idle VM grows by it); larger downloads get a buffer of their own; 0 = none kept' },
  { name: 'UVE_VM_DATA_BUFFER_MAX_MB', required: false, default: '256', doc: 'a larger state than UVE_VM_DATA_BUFFER_MB (restored, staged or saved) makes the kept buffer grow to its size, up to this, so that its page faults are taken once rather than at every staging, save and restore after it (a 128 MiB state held its UA 250-400 ms at each staging); given back after 5 minutes unused; larger states get a buffer of their own each time' },
  { name: 'UVE_STOP_TIMEOUT_MS', required: false, default: '10000', doc: 'a stop taking longer is cut short: child processes are killed and the agent exits 1' },
];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(processEnv: NodeJS.ProcessEnv = process.env): AgentConfig {
  let env = processEnv;
  const problems: string[] = [];
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  };
  const required = (name: string): string => {
    const v = get(name);
    if (v === undefined) problems.push(`${name} is required (${CONFIG_VARS.find((c) => c.name === name)?.doc ?? ''})`);
    return v ?? '';
  };
  const url = (name: string, protocols: string[]): string => {
    const v = required(name);
    if (!v) return '';
    try {
      const u = new URL(v);
      if (!protocols.includes(u.protocol)) problems.push(`${name} must be a ${protocols.map((p) => p.replace(':', '://')).join(' or ')} URL, got ${JSON.stringify(v)}`);
    } catch {
      problems.push(`${name} is not a URL: ${JSON.stringify(v)}`);
    }
    return v;
  };
  const int = (name: string, def: number, min: number, max: number): number => {
    const v = get(name);
    if (v === undefined) return def;
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`);
      return def;
    }
    return n;
  };
  const oneOf = <T extends string>(name: string, def: T, allowed: readonly T[]): T => {
    const v = get(name);
    if (v === undefined) return def;
    if (!(allowed as readonly string[]).includes(v)) {
      problems.push(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
      return def;
    }
    return v as T;
  };

  /** a secret from NAME_FILE (the provider's way: not in an environment others may read) or from NAME */
  const secret = (name: string): string | undefined => {
    const file = get(`${name}_FILE`);
    if (file === undefined) return get(name);
    try {
      const st = statSync(file);
      if (st.isFile() && (st.mode & 0o077) !== 0) problems.push(`${name}_FILE ${file} must be readable by its owner only (chmod 600), it is ${(st.mode & 0o777).toString(8)}`);
      return readFileSync(file, 'utf8').trim() || undefined;
    } catch (e) {
      problems.push(`${name}_FILE ${file} cannot be read: ${(e as Error).message}`);
      return '';
    }
  };
  const fromFiles = { REDIS_URL: secret(AGENT_ENV.redisUrl), UVE_VM_SECRET: secret('UVE_VM_SECRET') };
  env = { ...env, ...fromFiles };
  const redisUrl = url(AGENT_ENV.redisUrl, ['redis:', 'rediss:']);
  const gatewayUrl = url(AGENT_ENV.gatewayUrl, ['http:', 'https:']).replace(/\/+$/, '');
  const vmId = required(AGENT_ENV.vmId);
  if (vmId && (vmId.length > 128 || /\s/.test(vmId))) problems.push('UVE_VM_ID must be at most 128 characters without whitespace');
  const vmSecret = get('UVE_VM_SECRET') ?? '';
  if (!vmSecret && get(AGENT_ENV.vmSecretFile) === undefined) problems.push(`UVE_VM_SECRET_FILE (or UVE_VM_SECRET) is required (${CONFIG_VARS.find((c) => c.name === AGENT_ENV.vmSecretFile)!.doc})`);
  const uaUser = get('UVE_UA_USER') ?? 'auto';
  if (!/^(auto|none|[a-z_][a-z0-9_-]*\$?)$/i.test(uaUser)) problems.push(`UVE_UA_USER must be auto, none or a user name, got ${JSON.stringify(uaUser)}`);
  const host = get(AGENT_ENV.host) ?? '127.0.0.1';
  const publicHost = get(AGENT_ENV.publicHost) ?? host;
  if (publicHost === '0.0.0.0' || publicHost === '::') {
    problems.push(`UVE_VM_PUBLIC_HOST must be an address UCs can reach; ${publicHost} is only a bind address (set UVE_VM_PUBLIC_HOST)`);
  }

  let codecs: VideoCodec[] | null = null;
  const codecList = get('UVE_VM_CODECS');
  if (codecList !== undefined) {
    const items = codecList.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
    const bad = items.filter((c) => !(VIDEO_CODECS as readonly string[]).includes(c));
    if (bad.length) problems.push(`UVE_VM_CODECS has unknown codecs ${bad.join(', ')} (known: ${VIDEO_CODECS.join(', ')})`);
    else if (!items.length) problems.push('UVE_VM_CODECS is empty');
    else codecs = [...new Set(items as VideoCodec[])];
  }

  const origins = get('UVE_STREAM_ALLOWED_ORIGINS');
  let allowedOrigins: string[] | null = null;
  if (origins !== undefined && origins !== '*' && origins !== 'any') {
    allowedOrigins = origins.split(',').map((o) => o.trim().replace(/\/+$/, '')).filter(Boolean);
    const bad = allowedOrigins.filter((o) => !/^https?:\/\/[^/\s]+$/.test(o));
    if (bad.length) problems.push(`UVE_STREAM_ALLOWED_ORIGINS must list origins like https://host[:port], got ${bad.join(', ')}`);
  }
  const certFile = get('UVE_STREAM_TLS_CERT');
  const keyFile = get('UVE_STREAM_TLS_KEY');
  if ((certFile === undefined) !== (keyFile === undefined)) problems.push('UVE_STREAM_TLS_CERT and UVE_STREAM_TLS_KEY go together: set both or neither');

  const capacity = int(AGENT_ENV.capacity, 4, 1, 1000);
  const cfg: AgentConfig = {
    redisUrl,
    gatewayUrl,
    jwksUrl: `${gatewayUrl}${JWKS_PATH}`,
    vmDataUrl: `${gatewayUrl}${VM_DATA_PATH}`,
    vmId,
    vmSecret,
    uaUser: uaUser === 'none' ? null : uaUser,
    vmName: get(AGENT_ENV.vmName) ?? `vm-${hostname()}-${vmId.slice(0, 8)}`,
    platform: oneOf(AGENT_ENV.platform, 'WASM', PLATFORMS),
    provider: oneOf(AGENT_ENV.provider, 'PROCESS', VM_PROVIDERS),
    host,
    publicHost,
    port: int(AGENT_ENV.port, 0, 0, 65535),
    capacity,
    codecs,
    dataDir: get(AGENT_ENV.dataDir) ?? null,
    dataTemporary: oneOf(AGENT_ENV.dataTemporary, 'false', ['true', 'false'] as const) === 'true',
    queuePrefix: get(AGENT_ENV.queuePrefix) ?? 'uve',
    logLevel: oneOf(AGENT_ENV.logLevel, 'info', LOG_LEVELS),
    wasmCallBudgetMs: int('UVE_WASM_CALL_BUDGET_MS', 1000, 10, 600_000),
    wasmStartBudgetMs: int('UVE_WASM_START_BUDGET_MS', 5000, 100, 600_000),
    wasmIdleThreads: int('UVE_WASM_IDLE_THREADS', capacity, 0, 1000),
    wasmHugePages: oneOf('UVE_WASM_HUGE_PAGES', 'true', ['true', 'false'] as const) === 'true',
    vmmLostExitMs: int('UVE_VMM_LOST_EXIT_MS', 60_000, 0, 86_400_000),
    parentPid: int(AGENT_ENV.parentPid, 0, 1, 4_194_304) || null,
    stopTimeoutMs: int('UVE_STOP_TIMEOUT_MS', 10_000, 1000, 600_000),
    stream: {
      maxConnections: int('UVE_STREAM_MAX_CONNECTIONS', 64, 1, 100_000),
      maxConnectionsPerSession: int('UVE_STREAM_MAX_PER_SESSION', 8, 1, 10_000),
      maxMessagesPerSec: int('UVE_STREAM_MAX_MESSAGES_PER_S', 300, 1, 100_000),
      keyframeIntervalMs: int('UVE_STREAM_KEYFRAME_INTERVAL_MS', 1000, 0, 60_000),
      allowedOrigins,
    },
    tls: certFile && keyFile ? { certFile, keyFile } : null,
    warmStart: oneOf('UVE_WARM_START', 'true', ['true', 'false'] as const) === 'true',
    ffmpegLibx264: oneOf('UVE_FFMPEG_LIBX264', 'probe', ['probe', 'true', 'false'] as const),
    vmDataBufferBytes: int('UVE_VM_DATA_BUFFER_MB', 32, 0, 4096) * 1024 * 1024,
    vmDataBufferMaxBytes: int('UVE_VM_DATA_BUFFER_MAX_MB', 256, 0, 4096) * 1024 * 1024,
  };
  if (problems.length) throw new ConfigError(problems);
  return cfg;
}

/** `--help` text of the agent binary. */
export function helpText(version: string): string {
  const rows = CONFIG_VARS.map((v) => {
    const tag = v.required ? '(required)' : `(default: ${v.default})`;
    return `  ${v.name.padEnd(24)} ${v.doc}\n  ${''.padEnd(24)} ${tag}`;
  });
  return [
    `uve-vm-agent ${version} - a UVE Virtual Machine: hosts UAs, streams each session's Output Stream`,
    'over UVE-3, brokers local resources (UVE-4), takes UVE-2 commands and reports UVE-5 events.',
    '',
    'Usage: uve-vm-agent [--help] [--version]',
    '',
    'Options:',
    '  -h, --help           print this help and exit',
    '  -v, --version        print the agent version and exit',
    '',
    'Configuration comes from the environment:',
    ...rows,
    '',
    'Signals: SIGTERM or SIGINT report vm.stopping, end every session (close 1001) and exit 0, within',
    'UVE_STOP_TIMEOUT_MS whether Redis is up or not (then children are killed and the exit status is 1).',
    'The agent also stops by itself when it lost its VMM (see UVE_VMM_LOST_EXIT_MS).',
    'Exit status: 0 after a stop, 1 when the VM could not start (or a second signal cut the stop short),',
    '2 on a configuration error or an unknown option.',
  ].join('\n');
}
