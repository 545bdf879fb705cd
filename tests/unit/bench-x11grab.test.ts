// density's baseline pipeline (bench/src/lib/x11grab.ts) with its real parts: Xvfb, the probe,
// ffmpeg x11grab + x264. What the bench's figures rest on: a key press is answered by a frame that
// shows it (the probe switches colour on every press), each press by its own frame, the stream keeps
// its fixed clock, and closing leaves no process behind.
import fs from 'node:fs';
import { startX11grabPipeline, type X11grabPipeline } from '../../bench/src/lib/x11grab';
import type { InputEvent } from '@uve/protocol';

const press: [InputEvent, InputEvent] = [{ kind: 'key', type: 'down', code: 'KeyA', key: 'a' }, { kind: 'key', type: 'up', code: 'KeyA', key: 'a' }];
/** a process we started and reaped leaves no /proc entry */
const alive = (pid: number): boolean => fs.existsSync(`/proc/${pid}`);

describe('startX11grabPipeline', () => {
  let p: X11grabPipeline | null = null;
  afterEach(async () => p?.close());

  it('answers each key press with the frame that shows it, on a fixed clock, and stops all it started', async () => {
    let frames = 0;
    p = await startX11grabPipeline({ ua: 'probe', width: 320, height: 240, fps: 30, watch: { x: 156, y: 116, width: 8, height: 8 }, onFrame: () => frames++ });
    const pids = p.pids();
    expect(pids).toHaveLength(3); // Xvfb, the probe, ffmpeg
    // the probe takes input once it listens: until then a press changes nothing and times out
    let first: number | null = null;
    for (let i = 0; i < 40 && first === null; i++) first = await p.roundTrip(...press, 500);
    expect(first).not.toBeNull();
    // every press switches the colour (blue, yellow, blue...): each is its own answer, after it was sent
    const t0 = performance.now();
    const f0 = frames;
    const answers: (number | null)[] = [];
    for (let i = 0; i < 6; i++) answers.push(await p.roundTrip(...press, 2000));
    const seconds = (performance.now() - t0) / 1000;
    for (const ms of answers) {
      expect(ms).not.toBeNull();
      expect(ms!).toBeGreaterThan(0);
      expect(ms!).toBeLessThan(seconds * 1000);
    }
    // about 30 frames a second whatever the picture does (each answer waits for a second equal picture)
    expect((frames - f0) / seconds).toBeGreaterThan(10);
    await expect(p.roundTrip({ kind: 'text', text: 'a' }, press[1], 100)).rejects.toThrow(/key events only/);
    await p.close();
    p = null;
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });
});
