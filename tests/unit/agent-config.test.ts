// The VM agent's configuration: every variable validated in one place, all problems at once.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AGENT_ENV, agentLaunchEnv } from '@uve/protocol';
import { CONFIG_VARS, ConfigError, helpText, loadConfig } from '../../apps/vm-agent/src/config';
import { agentEnv, type VmLaunchSpec } from '../../apps/gateway/src/modules/vms/providers/vm-provider';

const base = { REDIS_URL: 'redis://127.0.0.1:6379', UVE_GATEWAY_URL: 'http://vmm.local:4000/', UVE_VM_ID: 'vm-1234567890', UVE_VM_SECRET: 's3cret' };

describe('vm-agent config', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig(base);
    expect(c).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6379',
      gatewayUrl: 'http://vmm.local:4000',
      jwksUrl: 'http://vmm.local:4000/.well-known/jwks.json',
      vmDataUrl: 'http://vmm.local:4000/vmm/vm-data',
      vmId: 'vm-1234567890',
      vmSecret: 's3cret',
      platform: 'WASM',
      provider: 'PROCESS',
      host: '127.0.0.1',
      publicHost: '127.0.0.1',
      port: 0,
      capacity: 4,
      codecs: null,
      dataDir: null,
      dataTemporary: false,
      queuePrefix: 'uve',
      logLevel: 'info',
      ffmpegLibx264: 'probe',
      wasmHugePages: true,
      parentPid: null,
    });
    expect(c.vmName).toMatch(/^vm-.+-vm-12345$/);
  });

  it('reads every variable', () => {
    const c = loadConfig({
      ...base,
      UVE_VM_NAME: 'edge-1',
      UVE_VM_PLATFORM: 'LINUX_X11',
      UVE_VM_PROVIDER: 'DOCKER',
      UVE_VM_HOST: '0.0.0.0',
      UVE_VM_PUBLIC_HOST: 'vm1.example.net',
      UVE_VM_PORT: '7001',
      UVE_VM_CAPACITY: '12',
      UVE_VM_CODECS: 'mjpeg, H264,MJPEG',
      UVE_VM_DATA_DIR: '/var/lib/uve',
      UVE_VM_DATA_TEMPORARY: 'true',
      UVE_QUEUE_PREFIX: 'prod',
      UVE_LOG_LEVEL: 'debug',
      UVE_FFMPEG_LIBX264: 'true',
      UVE_WASM_HUGE_PAGES: 'false',
      UVE_PARENT_PID: '4242',
    });
    expect(c).toMatchObject({ ffmpegLibx264: 'true', wasmHugePages: false, parentPid: 4242, vmName: 'edge-1', platform: 'LINUX_X11', provider: 'DOCKER', host: '0.0.0.0', publicHost: 'vm1.example.net', port: 7001, capacity: 12, codecs: ['MJPEG', 'H264'], dataDir: '/var/lib/uve', dataTemporary: true, queuePrefix: 'prod', logLevel: 'debug' });
  });

  it('lists every problem at once with what to do', () => {
    let err: ConfigError | undefined;
    try {
      loadConfig({ REDIS_URL: 'http://x', UVE_GATEWAY_URL: 'nope', UVE_VM_PORT: '70000', UVE_VM_CAPACITY: '0', UVE_VM_CODECS: 'H265', UVE_VM_PLATFORM: 'WINDOWS', UVE_VM_HOST: '0.0.0.0', UVE_FFMPEG_LIBX264: 'yes', UVE_WASM_HUGE_PAGES: 'on' });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = err!.problems.join('\n');
    expect(text).toMatch(/REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(text).toMatch(/UVE_FFMPEG_LIBX264/);
    expect(text).toMatch(/UVE_WASM_HUGE_PAGES must be one of true, false/);
    expect(text).toMatch(/UVE_GATEWAY_URL is not a URL/);
    expect(text).toMatch(/UVE_VM_ID is required/);
    expect(text).toMatch(/UVE_VM_SECRET_FILE \(or UVE_VM_SECRET\) is required/);
    expect(text).toMatch(/UVE_VM_PORT must be an integer in \[0, 65535\]/);
    expect(text).toMatch(/UVE_VM_CAPACITY must be an integer in \[1, 1000\]/);
    expect(text).toMatch(/UVE_VM_CODECS has unknown codecs H265/);
    expect(text).toMatch(/UVE_VM_PLATFORM must be one of WASM, LINUX_X11/);
    expect(text).toMatch(/UVE_VM_PUBLIC_HOST must be an address UCs can reach/);
    expect(err!.problems).toHaveLength(11);
  });

  it('reads the secret and the Redis URL from files readable by their owner only, never from a file others may read', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'uve-agent-config-'));
    try {
      const secretFile = path.join(dir, 'vm-secret');
      const redisFile = path.join(dir, 'redis-url');
      writeFileSync(secretFile, 'from-a-file\n', { mode: 0o600 });
      writeFileSync(redisFile, 'redis://:pw@10.0.0.1:6379', { mode: 0o600 });
      const { UVE_VM_SECRET: _s, REDIS_URL: _r, ...rest } = base;
      const c = loadConfig({ ...rest, UVE_VM_SECRET_FILE: secretFile, REDIS_URL_FILE: redisFile });
      expect(c).toMatchObject({ vmSecret: 'from-a-file', redisUrl: 'redis://:pw@10.0.0.1:6379' });
      chmodSync(secretFile, 0o644);
      expect(() => loadConfig({ ...rest, UVE_VM_SECRET_FILE: secretFile, REDIS_URL_FILE: redisFile })).toThrow(/UVE_VM_SECRET_FILE .* must be readable by its owner only \(chmod 600\), it is 644/);
      expect(() => loadConfig({ ...rest, UVE_VM_SECRET_FILE: path.join(dir, 'none'), REDIS_URL_FILE: redisFile })).toThrow(/UVE_VM_SECRET_FILE .*none cannot be read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes UVE_UA_USER as auto (default), none or a user name', () => {
    expect(loadConfig(base).uaUser).toBe('auto');
    expect(loadConfig({ ...base, UVE_UA_USER: 'none' }).uaUser).toBeNull();
    expect(loadConfig({ ...base, UVE_UA_USER: 'uve-ua' }).uaUser).toBe('uve-ua');
    expect(() => loadConfig({ ...base, UVE_UA_USER: 'a b;c' })).toThrow(/UVE_UA_USER must be auto, none or a user name/);
  });

  it('documents every variable in --help', () => {
    const help = helpText('1.2.3');
    for (const v of CONFIG_VARS) expect(help).toContain(v.name);
    expect(help).toMatch(/--help/);
  });

  it('reads the environment a VMM launches it with, under the names both take from @uve/protocol', () => {
    const documented = new Set(CONFIG_VARS.map((v) => v.name));
    for (const name of Object.values(AGENT_ENV)) {
      // a *_FILE variable is documented with the variable it holds
      expect(documented.has(name) || documented.has(name.replace(/_FILE$/, ''))).toBe(true);
    }
    const dir = mkdtempSync(path.join(tmpdir(), 'uve-agent-env-'));
    try {
      const secretFile = path.join(dir, 'secret');
      writeFileSync(secretFile, 'from-the-vmm\n', { mode: 0o600 });
      const spec: VmLaunchSpec = { vmId: 'vm-launched-1', name: 'edge-7', platform: 'LINUX_X11', capacity: 3, secret: 'from-the-vmm', redisUrl: 'redis://10.0.0.2:6380', gatewayUrl: 'http://vmm.local:4000', queuePrefix: 'uve-b' };
      const env = { ...agentEnv(spec, 'DOCKER', secretFile), ...agentLaunchEnv({ host: '0.0.0.0', publicHost: 'edge-7.local', port: '7001', logLevel: 'debug' }) };
      expect(loadConfig(env)).toMatchObject({
        vmId: 'vm-launched-1', vmName: 'edge-7', vmSecret: 'from-the-vmm', platform: 'LINUX_X11', provider: 'DOCKER', capacity: 3,
        redisUrl: 'redis://10.0.0.2:6380', gatewayUrl: 'http://vmm.local:4000', queuePrefix: 'uve-b',
        host: '0.0.0.0', publicHost: 'edge-7.local', port: 7001, logLevel: 'debug',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
