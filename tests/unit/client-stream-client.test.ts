// The UC SDK's StreamClient against a scripted in-process VM (a plain ws server).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { CLOSE, STREAM_PATH, encodeFrame, parseClientMessage, type ClientMessage, type ServerMessage } from '@uve/protocol';
import { StreamClient, StreamCloseError, streamUrl, type DecoderFactory, type WelcomeMessage } from '../../packages/client/src/stream-client';
import { provideResource } from '../../packages/client/src/resources';

/** A fake VM: records what each connection sends; the test scripts what it answers. */
class FakeVm {
  http!: Server;
  wss!: WebSocketServer;
  url = '';
  paths: string[] = [];
  received: ClientMessage[] = [];
  sockets: WebSocket[] = [];
  /** VM clock = local clock + skew */
  skewMs = 5_000;
  onHello: (ws: WebSocket, token: string) => void = (ws) => this.welcome(ws);
  private waiters: Array<() => void> = [];

  async start(): Promise<void> {
    this.http = createServer();
    this.wss = new WebSocketServer({ server: this.http });
    this.wss.on('connection', (ws, req) => {
      this.paths.push(req.url ?? '');
      this.sockets.push(ws);
      ws.on('message', (d) => {
        const m = parseClientMessage(d.toString());
        this.received.push(m);
        if (m.t === 'hello') this.onHello(ws, m.token);
        if (m.t === 'ping') this.send(ws, { t: 'pong', id: m.id, t0: m.t0, t1: performance.timeOrigin + performance.now() + this.skewMs });
        if (m.t === 'bye') ws.close(CLOSE.NORMAL, 'bye');
        for (const w of this.waiters.splice(0)) w();
      });
    });
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r));
    this.url = `ws://127.0.0.1:${(this.http.address() as AddressInfo).port}`;
  }
  send(ws: WebSocket, m: ServerMessage): void {
    ws.send(JSON.stringify(m));
  }
  welcome(ws: WebSocket, role: 'PLAYER' | 'VIEWER' = 'PLAYER'): void {
    this.send(ws, { t: 'welcome', v: 1, sessionId: 's1', role, codec: 'MJPEG', width: 64, height: 32, maxFps: 30, suspended: false });
  }
  /** resolves when a message matching `pred` was received */
  async waitFor(pred: (m: ClientMessage) => boolean): Promise<ClientMessage> {
    for (;;) {
      const m = this.received.find(pred);
      if (m) return m;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
  async stop(): Promise<void> {
    for (const s of this.wss.clients) s.terminate();
    this.wss.close();
    await new Promise<void>((r) => this.http.close(() => r()));
  }
}

let vm: FakeVm;
beforeEach(async () => {
  vm = new FakeVm();
  await vm.start();
});
afterEach(async () => {
  await vm.stop();
});

describe('StreamClient', () => {
  it('connects to the stream path, says hello with the token, resolves on welcome', async () => {
    const c = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
    const welcome = await c.connect({ url: vm.url, token: 'tok' });
    expect(welcome).toMatchObject({ sessionId: 's1', role: 'PLAYER' });
    expect(vm.paths).toEqual([STREAM_PATH]);
    expect(vm.received[0]).toEqual({ t: 'hello', v: 1, token: 'tok' });
    expect(streamUrl('ws://h:1/custom?x=1')).toBe('ws://h:1/custom?x=1');
    c.close();
  });

  it('rejects connect() with the close code and reason when refused', async () => {
    vm.onHello = (ws) => ws.close(CLOSE.UNAUTHORIZED, 'invalid session token: expired');
    const c = new StreamClient({ browserResources: false });
    const err = await c.connect({ url: vm.url, token: 'old' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StreamCloseError);
    expect(err).toMatchObject({ code: 4401, reason: 'invalid session token: expired' });
  });

  it('numbers input from 1 up and refuses input on a VIEWER connection', async () => {
    const c = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
    await c.connect({ url: vm.url, token: 't' });
    expect(c.sendInput({ kind: 'text', text: 'a' })).toBe(1);
    expect(c.sendInput({ kind: 'key', type: 'down', code: 'KeyB', key: 'b' })).toBe(2);
    await vm.waitFor((m) => m.t === 'input' && m.seq === 2);
    c.close();

    vm.onHello = (ws) => vm.welcome(ws, 'VIEWER');
    const v = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
    await v.connect({ url: vm.url, token: 't' });
    expect(() => v.sendInput({ kind: 'text', text: 'x' })).toThrow(/VIEWER/);
    v.close();
  });

  it('estimates the VM clock offset from the lowest round trip', async () => {
    const c = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
    await c.connect({ url: vm.url, token: 't' });
    // bounds from what this test measured, not speed goals: only a wrong computation exceeds them
    const before = performance.now();
    const s = await c.ping();
    const pingTook = performance.now() - before;
    expect(s.rttMs).toBeGreaterThanOrEqual(0);
    expect(s.rttMs).toBeLessThanOrEqual(pingTook + 1);
    expect(Math.abs(c.clock!.offsetMs - vm.skewMs)).toBeLessThan(c.clock!.rttMs / 2 + 2);
    const made = performance.now();
    const header = { seq: 1, captureTs: c.serverNow() - 20, inputSeq: 0, keyframe: true, width: 1, height: 1 };
    const latency = c.latencyOf(header);
    expect(latency).toBeGreaterThanOrEqual(20);
    expect(latency).toBeLessThanOrEqual(20 + (performance.now() - made) + 1);
    c.close();
  });

  it('emits decoder configuration and frames; with a decoder, only from a keyframe on, in order', async () => {
    let ws!: WebSocket;
    vm.onHello = (s) => {
      ws = s;
      vm.welcome(s);
    };
    const decoded: number[] = [];
    const c = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
    await c.connect({
      url: vm.url,
      token: 't',
      decoder: (cfg) => {
        expect(cfg.description).toEqual(new Uint8Array([1, 2, 3]));
        // the second frame decodes faster than the first: order must still hold
        return { decode: (p) => new Promise((r) => setTimeout(() => r({ width: 1, height: 1, data: p }), p[0] === 1 ? 30 : 1)), close: async () => undefined };
      },
    });
    const frame = (seq: number, keyframe: boolean) => encodeFrame({ seq, captureTs: 1, inputSeq: 0, keyframe, width: 64, height: 32 }, new Uint8Array([seq]));
    const three = new Promise<void>((r) => c.on('frame', (f) => (decoded.push(f.header.seq), decoded.length === 2 && r())));
    ws.send(frame(9, false)); // before codec: no decoder yet -> nothing decoded
    vm.send(ws, { t: 'codec', codec: 'H264', mime: 'avc1.42C01F', width: 64, height: 32, description: Buffer.from([1, 2, 3]).toString('base64') });
    ws.send(frame(10, false)); // delta before the first keyframe: dropped
    ws.send(frame(1, true));
    ws.send(frame(2, false));
    await three;
    expect(decoded).toEqual([1, 2]);
    c.close();
  });

  it('prepares its decoder when the stream opens, after the hello, and releases what was prepared when it closes', async () => {
    const events: string[] = [];
    vm.onHello = (s) => {
      events.push('hello at the VM');
      vm.welcome(s);
    };
    const factory: DecoderFactory = Object.assign(() => ({ decode: async () => ({ width: 1, height: 1, data: new Uint8Array(4) }), close: async () => undefined }), {
      prepare: () => events.push('prepare'),
      release: () => events.push('release'),
    });
    const c = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
    await c.connect({ url: vm.url, token: 't', decoder: factory });
    // before the welcome (the VM may take long to start the session), never before the hello left
    expect(events.slice(0, 2).sort()).toEqual(['hello at the VM', 'prepare']);
    expect(events).not.toContain('release');
    c.close();
    expect(events.filter((e) => e === 'release').length).toBeGreaterThanOrEqual(1);
  });

  it('answers resource requests from its providers; refuses kinds it has none for and provider failures', async () => {
    let ws!: WebSocket;
    vm.onHello = (s) => {
      ws = s;
      vm.welcome(s);
    };
    const c = new StreamClient({
      browserResources: false,
      pingIntervalMs: 0,
      resources: {
        GEOLOCATION: async () => ({ kind: 'GEOLOCATION', latitude: 48.1, longitude: 11.5, accuracy: 20 }),
        BATTERY: async () => {
          throw new Error('battery API blocked');
        },
      },
    });
    expect(c.offeredKinds().sort()).toEqual(['BATTERY', 'GEOLOCATION']);
    const asked: string[] = [];
    c.on('resourceRequest', (r) => asked.push(r.kind));
    await c.connect({ url: vm.url, token: 't' });
    vm.send(ws, { t: 'resourceRequest', id: 1, kind: 'GEOLOCATION' });
    vm.send(ws, { t: 'resourceRequest', id: 2, kind: 'CAMERA' });
    vm.send(ws, { t: 'resourceRequest', id: 3, kind: 'BATTERY' });
    const answers = await Promise.all([1, 2, 3].map((id) => vm.waitFor((m) => m.t === 'resource' && m.id === id)));
    expect(answers).toEqual([
      { t: 'resource', id: 1, ok: true, value: { kind: 'GEOLOCATION', latitude: 48.1, longitude: 11.5, accuracy: 20 } },
      { t: 'resource', id: 2, ok: false, reason: 'CAMERA is not available on this terminal' },
      { t: 'resource', id: 3, ok: false, reason: 'battery API blocked' },
    ]);
    expect(asked).toEqual(['GEOLOCATION', 'CAMERA', 'BATTERY']);
    await expect(provideResource({ CLIPBOARD: async () => ({ refused: 'user said no' }) }, 'CLIPBOARD')).resolves.toEqual({ ok: false, reason: 'user said no' });
    c.close();
  });

  it('reconnects after an unexpected close with a fresh target from reconnect(), backing off', async () => {
    let n = 0;
    vm.onHello = (ws, token) => {
      n++;
      vm.welcome(ws);
      if (token === 'first') setTimeout(() => ws.terminate(), 10); // connection lost
    };
    const targets: string[] = [];
    const c = new StreamClient({
      browserResources: false,
      pingIntervalMs: 0,
      backoff: { initialMs: 10, maxMs: 50 },
      reconnect: async () => {
        targets.push('asked');
        return { url: vm.url, token: 'second' };
      },
    });
    const closes: Array<{ code: number; reconnecting: boolean }> = [];
    c.on('close', (e) => closes.push({ code: e.code, reconnecting: e.reconnecting }));
    const reconnecting = c.next('reconnecting');
    await c.connect({ url: vm.url, token: 'first' });
    const again = c.next('welcome');
    expect(await reconnecting).toMatchObject({ attempt: 1 });
    await again;
    expect(targets).toEqual(['asked']);
    expect(n).toBe(2);
    expect(closes).toEqual([{ code: 1006, reconnecting: true }]);
    expect(vm.received.filter((m) => m.t === 'hello').map((m) => (m as { token: string }).token)).toEqual(['first', 'second']);
    c.close();
  });

  it('tells its state as it goes: connecting, live, reconnecting, then reconnected with the VM Data restored or a fresh start, ended', async () => {
    const welcomeWith = (ws: WebSocket, vmData?: WelcomeMessage['vmData']) =>
      vm.send(ws, { t: 'welcome', v: 1, sessionId: 's1', role: 'PLAYER', codec: 'MJPEG', width: 64, height: 32, maxFps: 30, suspended: false, ...(vmData ? { vmData } : {}) });
    vm.onHello = (ws, token) => {
      if (token === 'first') {
        welcomeWith(ws);
        setTimeout(() => ws.terminate(), 10); // dropped
      } else if (token === 'second') {
        welcomeWith(ws, { snapshotId: 'snap-1', restored: true, kind: 'FULL' });
        setTimeout(() => ws.terminate(), 10); // dropped again, back on the same VM next
      } else if (token === 'third') {
        welcomeWith(ws, { snapshotId: 'snap-1', restored: true, kind: 'FULL' }); // the same outcome, repeated
        setTimeout(() => ws.terminate(), 10);
      } else {
        welcomeWith(ws, { snapshotId: 'snap-2', restored: false, reason: 'VM Data checksum mismatch' });
        setTimeout(() => vm.send(ws, { t: 'ended', reason: 'the application exited' }), 10);
        setTimeout(() => ws.close(CLOSE.ENDED, 'ended'), 20);
      }
    };
    const tokens = ['second', 'third', 'fourth'];
    const c = new StreamClient({ browserResources: false, pingIntervalMs: 0, backoff: { initialMs: 5, maxMs: 20 }, reconnect: async () => ({ url: vm.url, token: tokens.shift()! }) });
    const seen: string[] = [];
    c.on('state', (e) => seen.push(e.state));
    c.on('reconnected', (e) => seen.push(`reconnected ${e.sessionId} after ${e.attempts}`));
    c.on('restored', (e) => seen.push(`restored ${e.snapshotId} ${e.kind}`));
    c.on('fresh', (e) => seen.push(`fresh ${e.snapshotId}: ${e.reason}`));
    expect(c.state).toBe('idle');
    const over = new Promise<void>((r) => c.on('state', (e) => e.state === 'ended' && r()));
    await c.connect({ url: vm.url, token: 'first' });
    await over;
    expect(seen).toEqual([
      'connecting', 'live',
      'reconnecting', 'live', 'reconnected s1 after 1', 'restored snap-1 FULL',
      'reconnecting', 'live', 'reconnected s1 after 1',
      'reconnecting', 'live', 'reconnected s1 after 1', 'fresh snap-2: VM Data checksum mismatch',
      'ended',
    ]);
    expect(c.state).toBe('ended');
  });

  it('is ended once the app closes it or it gave up', async () => {
    const c = new StreamClient({ browserResources: false, pingIntervalMs: 0 });
    await c.connect({ url: vm.url, token: 't' });
    expect(c.state).toBe('live');
    c.close();
    expect(c.state).toBe('ended');
  });

  it.each([
    ['ENDED', CLOSE.ENDED],
    ['REPLACED', CLOSE.REPLACED],
    ['UNAUTHORIZED', CLOSE.UNAUTHORIZED],
  ])('does not reconnect after %s', async (_name, code) => {
    vm.onHello = (ws) => {
      vm.welcome(ws);
      setTimeout(() => ws.close(code, 'bye now'), 5);
    };
    const reconnect = jest.fn(async () => ({ url: vm.url, token: 'x' }));
    const c = new StreamClient({ browserResources: false, pingIntervalMs: 0, reconnect });
    const closed = c.next('close');
    await c.connect({ url: vm.url, token: 't' });
    expect(await closed).toEqual({ code, reason: 'bye now', reconnecting: false });
    expect(reconnect).not.toHaveBeenCalled();
  });

  it('gives up after maxAttempts when the VM keeps refusing', async () => {
    vm.onHello = (ws, token) => (token === 'first' ? (vm.welcome(ws), setTimeout(() => ws.terminate(), 5)) : ws.close(CLOSE.INTERNAL, 'busy'));
    const c = new StreamClient({ browserResources: false, pingIntervalMs: 0, backoff: { initialMs: 5, maxMs: 20, maxAttempts: 3 }, reconnect: async () => ({ url: vm.url, token: 'again' }) });
    const attempts: number[] = [];
    c.on('reconnecting', (r) => attempts.push(r.attempt));
    const gaveUp = new Promise<Error>((r) => c.on('error', r));
    await c.connect({ url: vm.url, token: 'first' });
    expect((await gaveUp).message).toMatch(/gave up reconnecting after 3 attempts/);
    expect(attempts).toEqual([1, 2, 3]);
    expect(c.state).toBe('ended');
  });

  it('bye() ends the connection the expected way', async () => {
    const c = new StreamClient({ browserResources: false, pingIntervalMs: 0, reconnect: async () => ({ url: vm.url, token: 'x' }) });
    await c.connect({ url: vm.url, token: 't' });
    const closed = c.next('close');
    await c.bye();
    expect(await closed).toEqual({ code: 1000, reason: 'bye', reconnecting: false });
    expect(vm.received.at(-1)).toEqual({ t: 'bye' });
  });
});
