'use strict';
// How docker/build-images.js and docker/build-stack-images.js reach their code, TypeScript in
// docker/src compiled to docker/dist by `npm run build`: a clear message when it was not built.
const fs = require('node:fs');
const path = require('node:path');

/** requires docker/dist/<file>; when missing, an entry script run as the main module (`entry`) exits with `[tag] ...` */
module.exports = function compiled(file, tag, entry) {
  const p = path.join(__dirname, 'dist', file);
  if (fs.existsSync(p)) return require(p);
  const message = `[${tag}] docker/dist/${file} is missing: run npm run build first (the image builders are TypeScript, in docker/src)`;
  if (require.main !== entry) throw new Error(message);
  console.error(message);
  process.exit(1);
};
