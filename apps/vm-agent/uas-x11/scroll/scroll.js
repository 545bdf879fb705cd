#!/usr/bin/env node
// A full-motion X client for load tests: a field of coloured 40x40 tiles scrolls across the whole
// window, redrawn up to 60 times a second, so every picture differs from the last everywhere (what
// a game or a video does to the capture and the encoder). The arrow keys turn the scroll; each key
// or button press also toggles an 8x8 marker at the top right corner, painted at once (not with the
// next frame), so the next picture captured shows the input whoever captures it (the agent, or
// ffmpeg's x11grab in the density bench's baseline). Pure JS on the `x11` package, like the probe,
// so CI needs no compiler.
'use strict';
const x11 = require('x11');

const TILE = 40;
const STEP = 4; // pixels per frame
const FRAME_MS = 1000 / 60;
// 16 colours in three intensity steps per channel: tiles differ from their neighbours
const PALETTE = Array.from({ length: 16 }, (_, i) => ((i * 97) & 0xff) << 16 | ((i * 57 + 40) & 0xff) << 8 | ((i * 151 + 90) & 0xff));
const MARKER = [0xffffff, 0xff0000];
const DIRECTIONS = { 0xff51: [-1, 0], 0xff53: [1, 0], 0xff52: [0, -1], 0xff54: [0, 1] }; // keysyms Left, Right, Up, Down

/** a tile's colour: a hash of its position in the field, so the picture moves as a whole */
const colourOf = (i, j) => {
  let h = Math.imul(i, 0x27d4eb2d) ^ Math.imul(j, 0x165667b1);
  h ^= h >>> 15;
  return (h >>> 0) % PALETTE.length;
};

x11.createClient((err, display) => {
  if (err) {
    console.error(`scroll: ${err.message}`);
    process.exit(1);
  }
  const X = display.client;
  const screen = display.screen[0];
  const m = x11.eventMask;
  const wid = X.AllocID();
  let width = screen.pixel_width;
  let height = screen.pixel_height;
  let x = 0;
  let y = 0;
  let dir = [1, 0];
  let marker = 0;
  // keycode -> first keysym (the agent may remap spare keycodes: read the map again when told)
  let keysyms = [];
  const readMap = () => X.GetKeyboardMapping(display.min_keycode, display.max_keycode - display.min_keycode + 1, (e, rows) => {
    if (!e) keysyms = rows.map((r) => r[0]);
  });
  readMap();
  X.CreateWindow(wid, screen.root, 0, 0, width, height, 0, 0, 0, 0, {
    eventMask: m.Exposure | m.KeyPress | m.ButtonPress | m.StructureNotify,
  });
  X.ChangeProperty(0, wid, X.atoms.WM_NAME, X.atoms.STRING, 8, 'uve scroll');
  const gc = X.AllocID();
  X.CreateGC(gc, wid, { foreground: 0 });
  const paintMarker = () => {
    X.ChangeGC(gc, { foreground: MARKER[marker] });
    X.PolyFillRectangle(wid, gc, [width - 12, 4, 8, 8]);
  };
  const paint = () => {
    const byColour = PALETTE.map(() => []);
    const ox = ((x % TILE) + TILE) % TILE;
    const oy = ((y % TILE) + TILE) % TILE;
    const ti = Math.floor(x / TILE);
    const tj = Math.floor(y / TILE);
    for (let j = 0; j * TILE - oy < height; j++) {
      for (let i = 0; i * TILE - ox < width; i++) byColour[colourOf(ti + i, tj + j)].push(i * TILE - ox, j * TILE - oy, TILE, TILE);
    }
    byColour.forEach((rects, c) => {
      if (rects.length === 0) return;
      X.ChangeGC(gc, { foreground: PALETTE[c] });
      X.PolyFillRectangle(wid, gc, rects);
    });
    paintMarker();
  };
  // one frame in flight at most: the next is drawn once the X server answered for the last one,
  // so a slow server gets fewer frames instead of a growing queue
  let last = 0;
  const frame = () => {
    last = Date.now();
    x += dir[0] * STEP;
    y += dir[1] * STEP;
    paint();
    X.GetInputFocus(() => setTimeout(frame, Math.max(0, last + FRAME_MS - Date.now())));
  };
  X.MapWindow(wid);
  let started = false;
  X.on('event', (ev) => {
    switch (ev.name) {
      case 'Expose':
        if (ev.count === 0 && !started) {
          started = true;
          frame();
        }
        break;
      case 'ConfigureNotify':
        width = ev.width;
        height = ev.height;
        break;
      case 'MappingNotify':
        readMap();
        break;
      case 'KeyPress':
        dir = DIRECTIONS[keysyms[ev.keycode - display.min_keycode]] ?? dir;
        marker ^= 1;
        paintMarker();
        break;
      case 'ButtonPress':
        marker ^= 1;
        paintMarker();
        break;
    }
  });
  X.on('error', (e) => console.error(`scroll: ${e.message}`));
  // the display went away: nothing left to do
  X.on('end', () => process.exit(0));
});
