// Using a UA the way a UC does: request it through the gateway, open the UVE-3 stream with the SDK,
// decode frames, send input, read pixels.
import fs from 'node:fs';
import { StreamClient, createNodeDecoder, type FrameEvent, type ResourceProviders } from '@uve/client';
import type { InputEvent } from '@uve/protocol';
import { ok, registerUser, type GatewayAddress } from './gateway';
import { Collector, until } from './services';

export interface Rgb { r: number; g: number; b: number }

export function pixel(frame: FrameEvent, x: number, y: number): Rgb {
  const d = frame.decoded!;
  const i = (y * d.width + x) * 4;
  return { r: d.data[i]!, g: d.data[i + 1]!, b: d.data[i + 2]! };
}

/** Lossy codecs shift colours a little; this is the tolerance for "the same colour". */
export function near(p: Rgb, q: Rgb, tol = 40): boolean {
  return Math.abs(p.r - q.r) <= tol && Math.abs(p.g - q.g) <= tol && Math.abs(p.b - q.b) <= tol;
}

/** share of the picture (sampled every 4th pixel) near a colour */
export function share(f: FrameEvent, rgb: Rgb): number {
  const d = f.decoded!;
  let n = 0;
  for (let y = 0; y < d.height; y += 4) for (let x = 0; x < d.width; x += 4) if (near(pixel(f, x, y), rgb, 50)) n++;
  return n / ((d.height / 4) * (d.width / 4));
}

export async function uaId(gw: GatewayAddress, token: string, name: string): Promise<string> {
  const d = await ok<{ uas: { id: string; name: string }[] }>(gw, `{ uas { id name } }`, {}, token);
  const ua = d.uas.find((u) => u.name === name);
  if (!ua) throw new Error(`no UA named ${name}: ${d.uas.map((u) => u.name).join(', ')}`);
  return ua.id;
}

/**
 * Requests a UA; `fresh` (default true, so tests start from a known picture) skips resuming the
 * user's disconnected session or VM Data of it (tests/e2e/reconnect-vmdata.test.ts covers those).
 */
export async function requestUa(gw: GatewayAddress, token: string, ua: string, opts: { codec: string; width?: number; height?: number; resources?: string[]; fresh?: boolean; method?: 'NORMAL' | 'NO_LOSS' }) {
  const d = await ok(gw, `mutation($i: RequestApplicationInput!) { requestApplication(input: $i) { id reconnections vm { id } restoredFrom { id kind } connection { url token } } }`, {
    i: {
      uaId: ua, fresh: opts.fresh ?? true, ...(opts.method ? { reconnectionMethod: opts.method } : {}),
      terminal: { screenWidth: opts.width ?? 640, screenHeight: opts.height ?? 480, codecs: [opts.codec], localResources: opts.resources ?? [], maxFrameRate: 60 },
    },
  }, token);
  return d.requestApplication as { id: string; reconnections: number; vm: { id: string }; restoredFrom: { id: string; kind: string } | null; connection: { url: string; token: string } };
}

/** left x of the sample game's ship in a 640x480 picture (its bottom row, y = height - 25, is rgb(80, 200, 255)), or -1 */
export function shipX(f: FrameEvent): number {
  for (let x = 0; x < 640; x++) if (near(pixel(f, x, 480 - 25), { r: 80, g: 200, b: 255 }, 30)) return x;
  return -1;
}

/**
 * A new user's NO_LOSS game (MJPEG, 640x480) with its ship moved one step right (`moved`: its x);
 * `staged`: and that state staged with the VMM since (the gateway stages every UVE_VM_DATA_STAGE_S).
 */
export async function playGame(gw: GatewayAddress, username: string, staged = false) {
  const user = await registerUser(gw, username);
  const game = await uaId(gw, user.token, 'game');
  const s = await requestUa(gw, user.token, game, { codec: 'MJPEG', method: 'NO_LOSS' });
  const stream = await openStream(s.connection);
  const start = shipX(await stream.frame((f) => shipX(f) >= 0, 'with the ship'));
  const moved = shipX(await stream.inputAndFrame({ kind: 'key', type: 'down', key: 'ArrowRight', code: 'ArrowRight' }, 'after a step right'));
  if (moved !== start + 16) throw new Error(`the ship moved from ${start} to ${moved}, not one step (16 px) right`);
  const movedAt = Date.now();
  if (staged) {
    await until('the moved ship staged', 20_000, async () => {
      const at = (await ok(gw, `{ session(id: "${s.id}") { vmDataStaged { stagedAt } } }`, {}, user.token)).session.vmDataStaged?.stagedAt;
      return at && Date.parse(at) > movedAt;
    }, 100);
  }
  return { user, game, s, stream, moved, movedAt };
}

/** playGame, then its socket dropped without a bye (an unexpected disconnect: its VM saves the state) */
export async function playGameAndDrop(gw: GatewayAddress, username: string) {
  const played = await playGame(gw, username);
  played.stream.client.close();
  return played;
}

/** A connected stream client that keeps decoded frames and can wait for one (bounded). */
export async function openStream(target: { url: string; token: string }, resources: ResourceProviders = {}, reconnect?: () => Promise<{ url: string; token: string }>, timings = false) {
  const client = new StreamClient({ resources, browserResources: false, reconnect, backoff: { initialMs: 100, maxMs: 1000, maxAttempts: 20 }, timings });
  const received = new Collector<FrameEvent>();
  const frames = received.items;
  client.on('frame', (f) => received.push(f));
  /** what the VM said besides frames, in order (suspended, resumed, watched, notice, close), with the local time it came */
  const controls = new Collector<{ t: string; at: number; [k: string]: unknown }>();
  for (const t of ['suspended', 'resumed', 'watched', 'notice', 'close'] as const) client.on(t, (e) => controls.push({ t, at: Date.now(), ...e }));
  const welcome = await client.connect({ ...target, decoder: (c) => createNodeDecoder({ codec: c.codec as 'H264' | 'MJPEG', width: c.width, height: c.height, description: c.description }) });
  const frame = (pred: (f: FrameEvent) => boolean, what: string, ms = 15_000): Promise<FrameEvent> =>
    received.waitFor(pred, `a frame ${what} (${frames.length} frames so far)`, ms);
  return {
    client,
    welcome,
    frames,
    frame,
    controls,
    /** the first control message of type `t` matching `pred` (bounded) */
    control: (t: string, pred: (c: Record<string, unknown>) => boolean = () => true, ms = 15_000) =>
      controls.waitFor((c) => c.t === t && pred(c), `a ${t} message (got ${JSON.stringify(controls.items)})`, ms),
    /** sends input and waits for the first frame that has applied it */
    async inputAndFrame(ev: InputEvent, what: string): Promise<FrameEvent> {
      const seq = client.sendInput(ev);
      return frame((f) => f.header.inputSeq >= seq, what);
    },
    close: async () => {
      await client.bye().catch(() => undefined);
      client.close();
    },
  };
}

/** pid of the vm-agent process of a VM (PROCESS provider), found by its environment. */
export function agentPid(vmId: string): number {
  const marker = `UVE_VM_ID=${vmId}`;
  const marked = (pid: number | string): boolean => {
    try {
      return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(marker);
    } catch {
      return false; // gone or not ours
    }
  };
  // the agent's children (Xvfb, ffmpeg, the UA's programs) inherit the marker, and once pids wrap
  // (pid_max 32768 here, a full run spawns more) a child can have a lower pid than its agent: the
  // agent is the marked process whose parent is not marked
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || !marked(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!marked(ppid)) return Number(entry);
    } catch {
      /* gone */
    }
  }
  throw new Error(`no process for VM ${vmId}`);
}

/** The VM's secret, as its agent (PROCESS provider) got it: the file its environment names (never the secret itself). */
export function vmSecret(vmId: string): string {
  const env = fs.readFileSync(`/proc/${agentPid(vmId)}/environ`, 'utf8').split('\0');
  const file = env.find((e) => e.startsWith('UVE_VM_SECRET_FILE='));
  if (!file) throw new Error(`the agent of VM ${vmId} names no UVE_VM_SECRET_FILE`);
  return fs.readFileSync(file.slice('UVE_VM_SECRET_FILE='.length), 'utf8').trim();
}
