#!/usr/bin/env -S node --no-concurrent-recompilation --min-semi-space-size=2
// CommonJS (bin/package.json), as the bundles: see common/compilecache.ts for how the tool's bundle is run.
require('../dist/bundle/compilecache.cjs').runBundle(`${__dirname}/../dist/bundle/fsslower.cjs`, 'xfsslower', require);
