#!/usr/bin/env node
// The compile cache is turned on before the rest is loaded, so that it covers it.
import { enableCompileCache } from '../dist/common/compilecache.js';

enableCompileCache();
const { run } = await import('../dist/bundle/fsslower.js');
run('fuseslower');
