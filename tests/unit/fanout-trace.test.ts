// bench/fanout's trace (UVE_FANOUT_TRACE): per event, its publish, arrival, authorization, each
// result handed to graphql-ws and each message's send returning, on one monotonic clock, as a JSON
// line once the event is quiet. A stub WebSocketServer and sockets (no server needed).
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FanoutTrace } from '../../apps/gateway/src/common/fanout-trace';

describe('FanoutTrace', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fanout-trace-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('times each subscriber\'s send after its result, in order, and writes the event once flushed', () => {
    const file = path.join(dir, 'trace.jsonl');
    const trace = new FanoutTrace(file);
    const wss = new EventEmitter();
    const sockets = [0, 1].map(() => {
      const sent: unknown[] = [];
      return { sent, send: (data: unknown) => void sent.push(data) };
    });
    const onNext = trace.onNextOf(wss as never);
    for (const s of sockets) wss.emit('connection', s);
    trace.published('e1');
    trace.received('e1');
    trace.checked('e1');
    for (const s of sockets) {
      onNext({ extra: { socket: s } }, '1', {}, {}, { data: { sessionEvents: { id: 'e1' } } });
      s.send('{"id":"1","type":"next"}');
    }
    // a send with no result before it (a ping, connection_ack) is not counted
    sockets[0]!.send('{"type":"pong"}');
    trace.stop();
    expect(sockets.map((s) => s.sent.length)).toEqual([2, 1]);
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    const e = lines[0] as { event: string; published: number; received: number; checked: number; written: number[]; sent: number[] };
    expect(e.event).toBe('e1');
    expect(e.written).toHaveLength(2);
    expect(e.sent).toHaveLength(2);
    expect(e.published).toBeLessThanOrEqual(e.received);
    expect(e.received).toBeLessThanOrEqual(e.checked);
    for (let i = 0; i < 2; i++) expect(e.sent[i]).toBeGreaterThanOrEqual(e.written[i]!);
  });

  it('ignores a result without an id', () => {
    const file = path.join(dir, 'trace.jsonl');
    const trace = new FanoutTrace(file);
    const wss = new EventEmitter();
    const onNext = trace.onNextOf(wss as never);
    const s = { send: () => undefined };
    wss.emit('connection', s);
    onNext({ extra: { socket: s } }, '1', {}, {}, { data: { ok: true } as never });
    s.send();
    trace.stop();
    expect(fs.existsSync(file)).toBe(false);
  });
});
