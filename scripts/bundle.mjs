#!/usr/bin/env node
// One file per tool module, run by the bin/ launchers: dist/bundle/<tool>.cjs
// holds the tool and every module of ours and of its dependencies it
// imports, built from what tsc wrote to dist/. A start then reads and
// compiles one file instead of resolving, reading and linking some forty
// (half of a start's time in a kernel-matrix guest went to that).
//
// Left outside, loaded from node_modules as before: koffi (a native addon
// found by its own loader), and yargs and cli-table3, which only --help,
// a mistake or `ebpf-tools check` load, through require.
//
// The tool module is imported dynamically, so that it is evaluated (and
// libbpf opened) inside runMain, which reports a missing libbpf as one line.
// Node's own modules are imported at the top of a bundle whoever imports
// them: one that only some runs need and that costs (node:http) is imported
// where it is used (common/exporter.ts).
// node:module is not loaded by a tool's bundle: its createRequire, all our
// modules take from it (createRequire(import.meta.url), for koffi's binary
// by its path, a package by name or one of Node's modules), is the bundle's
// own require, which finds those as theirs would; loading node:module loads
// Node's ES module loader (23 ms of a start in a kernel-matrix guest).
// chalk's detection of the terminal (its '#supports-color', which loads
// node:tty, node:net and the streams as a start's stdio does not) is left
// out: our tools always give chalk its level (common/colour.ts).
// The bundles live two levels below the package, as dist/tools/ does, so the
// paths our modules take from import.meta.url (bpf/, package.json, bin/)
// are the same from either.
//
// The bundles and launchers are CommonJS: Node's ES module loader cost a
// tool's start ~25 ms on Node 20 (~12 on 24), and an ES module's import of
// one of Node's own modules evaluates every lazy export of it (node:fs loads
// its streams and fs/promises, node:process opens stdin) where require()
// does not. What runs a tool's bundle from its code cache
// (common/compilecache.ts) is bundled on its own, for the launchers; the
// first line of a tool's bundle is a hash of the rest, which names its
// cache.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { COMMANDS } = await import(`${root}/dist/common/commands.js`);
const outdir = `${root}/dist/bundle`;
rmSync(outdir, { recursive: true, force: true });

const options = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // every character outside ASCII escaped: a launcher reads a bundle as latin1 (common/compilecache.ts)
  charset: 'ascii',
  // without the whitespace and with the shorter forms of the same syntax (names are kept, for a
  // stack with EBPF_TOOLS_DEBUG): opensnoop's 226 kB became 153, which a start reads and its code
  // cache holds (~25 ms less of a start in a kernel-matrix guest, counted in instructions)
  minifyWhitespace: true,
  minifySyntax: true,
  // what our ES modules take from import.meta.url, from the bundle's own file
  define: { 'import.meta.url': 'bundleUrl' },
  banner: { js: "const bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  external: ['koffi', 'yargs', 'cli-table3'],
  logLevel: 'warning',
  plugins: [{
    name: 'no-node-module',
    setup(bundle) {
      bundle.onResolve({ filter: /^node:module$/ }, () => ({ path: 'node:module', namespace: 'no-node-module' }));
      // anything else imported from node:module is a build error ("No matching export")
      bundle.onLoad({ filter: /.*/, namespace: 'no-node-module' }, () => ({ contents: 'export const createRequire = () => require;' }));
    },
  }, {
    name: 'no-chalk-detection',
    setup(bundle) {
      bundle.onResolve({ filter: /^#supports-color$/ }, () => ({ path: 'supports-color', namespace: 'no-chalk-detection' }));
      bundle.onLoad({ filter: /.*/, namespace: 'no-chalk-detection' }, () => ({ contents: 'export default { stdout: false, stderr: false };' }));
    },
  }],
};

await build({ ...options, entryPoints: [`${root}/dist/common/compilecache.js`], outfile: `${outdir}/compilecache.cjs` });
for (const tool of new Set(COMMANDS.map((c) => c.tool))) {
  const { outputFiles } = await build({
    ...options,
    stdin: {
      contents: `import { launch } from './dist/common/launch.js';
export const run = (command) => launch(command, () => import('./dist/tools/${tool}.js'));
`,
      resolveDir: root,
      sourcefile: `bundle-${tool}.js`,
    },
    outfile: `${outdir}/${tool}.cjs`,
    write: false,
  });
  mkdirSync(outdir, { recursive: true });
  for (const { path, contents } of outputFiles) {
    const hash = createHash('sha256').update(contents).digest('hex').slice(0, 16);
    writeFileSync(path, Buffer.concat([Buffer.from(`// ebpf-tools bundle ${hash}\n`), contents]));
  }
}
