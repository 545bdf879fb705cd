#!/usr/bin/env node
'use strict';
// Builds the images docker/stack.yml runs FROM scratch (`node docker/build-stack-images.js --help`,
// docs/docker.md). The code: docker/src/stack-images, compiled by `npm run build`. Exports
// buildStackImages(options), stackImageNames(prefix, tag) and IMAGES for scripts.
const cli = require('./compiled.js')('stack-images/cli.js', 'docker:stack-images', module);

module.exports = { buildStackImages: cli.buildStackImages, stackImageNames: cli.stackImageNames, IMAGES: cli.IMAGES };
if (require.main === module) cli.main(process.argv.slice(2));
