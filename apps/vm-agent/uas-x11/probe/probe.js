#!/usr/bin/env node
// A tiny X11 client for latency tests: its window is one colour, dark grey (0x20,0x20,0x20) at
// first, and every key press or pointer button press switches it, alternating pure blue (0,0,255)
// and pure yellow (255,255,0). Pure JS on the `x11` package, so CI needs no compiler.
'use strict';
const x11 = require('x11');

const START = 0x202020;
const COLOURS = [0x0000ff, 0xffff00]; // TrueColor pixels are 0xRRGGBB

x11.createClient((err, display) => {
  if (err) {
    console.error(`probe: ${err.message}`);
    process.exit(1);
  }
  const X = display.client;
  const screen = display.screen[0];
  const m = x11.eventMask;
  const wid = X.AllocID();
  let width = screen.pixel_width;
  let height = screen.pixel_height;
  let colour = START;
  let presses = 0;
  // no background: the server never clears the window to another colour before a repaint
  X.CreateWindow(wid, screen.root, 0, 0, width, height, 0, 0, 0, 0, {
    eventMask: m.Exposure | m.KeyPress | m.ButtonPress | m.StructureNotify,
  });
  X.ChangeProperty(0, wid, X.atoms.WM_NAME, X.atoms.STRING, 8, 'uve probe');
  const gc = X.AllocID();
  X.CreateGC(gc, wid, { foreground: colour });
  const paint = () => {
    X.ChangeGC(gc, { foreground: colour });
    X.PolyFillRectangle(wid, gc, [0, 0, width, height]);
  };
  X.MapWindow(wid);
  X.on('event', (ev) => {
    switch (ev.name) {
      case 'Expose':
        if (ev.count === 0) paint();
        break;
      case 'ConfigureNotify':
        width = ev.width;
        height = ev.height;
        break;
      case 'KeyPress':
      case 'ButtonPress':
        colour = COLOURS[presses++ % COLOURS.length];
        paint();
        break;
    }
  });
  X.on('error', (e) => console.error(`probe: ${e.message}`));
  // the display went away: nothing left to do
  X.on('end', () => process.exit(0));
});
