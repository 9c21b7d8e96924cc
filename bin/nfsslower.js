#!/usr/bin/env node
// CommonJS (bin/package.json): the compile cache is turned on before the tool's bundle is loaded, so that it covers it.
require('../dist/bundle/compilecache.cjs').enableCompileCache();
require('../dist/bundle/fsslower.cjs').run('nfsslower');
