#!/usr/bin/env node
'use strict';
// Builds the VM agent images FROM scratch (`node docker/build-images.js --help`, docs/docker.md).
// The code: docker/src/agent-images, compiled by `npm run build`. Exports buildImages(options),
// imageNames(version) and BuildError for scripts.
const cli = require('./compiled.js')('agent-images/cli.js', 'docker:images', module);

module.exports = { buildImages: cli.buildImages, imageNames: cli.imageNames, BuildError: cli.BuildError };
if (require.main === module) cli.main(process.argv.slice(2));
