// Container VMs trust the certificates of the gateway's NODE_EXTRA_CA_CERTS (a VMM URL signed by a
// private CA): a file of their own beside their secret, named by their NODE_EXTRA_CA_CERTS. The
// engines are not asked (no launch here): what the providers would create. Through a real engine and
// a real TLS proxy: tests/e2e/vmm-tls.test.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DockerProvider, secretArchive } from '../../apps/gateway/src/modules/vms/providers/docker.provider';
import { SwarmProvider } from '../../apps/gateway/src/modules/vms/providers/swarm.provider';
import { extraCaCertsFrom } from '../../apps/gateway/src/modules/vms/providers/index';
import type { VmLaunchSpec } from '../../apps/gateway/src/modules/vms/providers/vm-provider';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const spec: VmLaunchSpec = { vmId: '0b7c6a52-8d49-4bd4-9f0e-0f4c7d7e8a11', name: 'vm-ca', platform: 'WASM', capacity: 1, secret: 's3cret', gatewayUrl: 'https://vmm.example:8443', redisUrl: 'redis://127.0.0.1:6379', queuePrefix: 'uve' };
/** the container part of a service's task (dockerode types the task as container or plugin) */
type ContainerSpec = { Env: string[]; Secrets: unknown[] };
const containerOf = (o: ReturnType<SwarmProvider['serviceOptions']>) => (o.TaskTemplate as unknown as { ContainerSpec: ContainerSpec }).ContainerSpec;
const images = { WASM: 'uve/vm-agent-wasm:test', LINUX_X11: 'uve/vm-agent-x11:test' };

/** the files of a ustar archive: path -> [mode, content] */
function untar(tar: Buffer): Map<string, [number, string]> {
  const files = new Map<string, [number, string]>();
  for (let at = 0; at + 512 <= tar.length; ) {
    const name = tar.toString('latin1', at, at + 100).replace(/\0.*$/s, '');
    if (!name) break;
    const size = parseInt(tar.toString('latin1', at + 124, at + 136), 8);
    const mode = parseInt(tar.toString('latin1', at + 100, at + 108), 8);
    if (tar[at + 156] === 0x30) files.set(`/${name}`, [mode, tar.toString('utf8', at + 512, at + 512 + size)]);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

it('DOCKER: the certificates go into the container beside the secret, and NODE_EXTRA_CA_CERTS names them; none without', () => {
  const withCa = new DockerProvider({ images, extraCaCerts: PEM });
  expect(withCa.containerOptions(spec).Env).toContain('NODE_EXTRA_CA_CERTS=/home/uve/.uve/extra-ca.pem');
  const files = untar(secretArchive(spec.secret, spec.redisUrl, PEM));
  expect(files.get('/home/uve/.uve/extra-ca.pem')).toEqual([0o400, PEM]);
  expect(files.get('/home/uve/.uve/vm-secret')).toEqual([0o400, spec.secret]);

  const without = new DockerProvider({ images });
  expect(without.containerOptions(spec).Env!.filter((e) => e.startsWith('NODE_EXTRA_CA_CERTS='))).toEqual([]);
  expect(untar(secretArchive(spec.secret, spec.redisUrl)).has('/home/uve/.uve/extra-ca.pem')).toBe(false);
});

it('SWARM: the certificates are a third secret of the VM, a file the agent user reads, named by NODE_EXTRA_CA_CERTS; none without', () => {
  const withCa = new SwarmProvider({ images, extraCaCerts: PEM });
  const c = containerOf(withCa.serviceOptions(spec, 'sid', 'rid', 'cid'));
  expect(c.Env).toContain('NODE_EXTRA_CA_CERTS=/run/secrets/uve-extra-ca');
  expect(c.Secrets).toContainEqual({ SecretID: 'cid', SecretName: `uve-vm-${spec.vmId}-ca`, File: { Name: 'uve-extra-ca', UID: '10001', GID: '10001', Mode: 0o400 } });

  const without = containerOf(new SwarmProvider({ images }).serviceOptions(spec, 'sid', 'rid'));
  expect(without.Secrets).toHaveLength(2);
  expect(without.Env.filter((e) => e.startsWith('NODE_EXTRA_CA_CERTS='))).toEqual([]);
});

it("reads the gateway's NODE_EXTRA_CA_CERTS file; an unreadable one is logged and gives none", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uve-ca-'));
  try {
    const file = path.join(dir, 'ca.pem');
    fs.writeFileSync(file, PEM);
    const warned: unknown[] = [];
    const log = { warn: (...a: unknown[]) => warned.push(a) } as unknown as Parameters<typeof extraCaCertsFrom>[0];
    expect(extraCaCertsFrom(log, file)).toBe(PEM);
    expect(extraCaCertsFrom(log, '')).toBeNull(); // unset
    expect(warned).toEqual([]);
    expect(extraCaCertsFrom(log, path.join(dir, 'missing.pem'))).toBeNull();
    expect(JSON.stringify(warned)).toMatch(/NODE_EXTRA_CA_CERTS is not readable/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
