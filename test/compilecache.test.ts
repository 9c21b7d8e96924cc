// How a launcher runs its tool's bundle: the code cache's directory (where it
// is, and that a directory anyone else could write to, and so put code in
// that root would run, is refused), and the cache itself: made once a
// bundle has started, used by the next run, made again for a changed bundle.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileCacheDir, safeDirectory } from '../common/compilecache.js';

const dir = mkdtempSync(join(tmpdir(), 'ebpf-tools-cache-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const uid = process.getuid!();
const launcher = fileURLToPath(new URL('../bundle/compilecache.cjs', import.meta.url));

t.test('root caches in /var/cache, a user in their cache directory', async (t) => {
  t.equal(compileCacheDir(0, {}), '/var/cache/ebpf-tools/compile-cache');
  t.equal(compileCacheDir(1000, { XDG_CACHE_HOME: '/home/u/.xdg' }), '/home/u/.xdg/ebpf-tools/compile-cache');
});

t.test('only a directory of ours that no one else may write is used', async (t) => {
  chmodSync(dir, 0o700);
  t.ok(safeDirectory(lstatSync(dir), uid, false), 'ours, 0700');
  chmodSync(dir, 0o770);
  t.notOk(safeDirectory(lstatSync(dir), uid, false), 'group-writable');
  chmodSync(dir, 0o755);
  t.notOk(safeDirectory(lstatSync(dir), uid, false), 'readable by others: the cache is ours alone');
  t.ok(safeDirectory(lstatSync(dir), uid, true), 'as a parent, 0755 is fine');
  chmodSync(dir, 0o700);
  t.notOk(safeDirectory(lstatSync(dir), uid + 1, false), "someone else's");
  const link = join(dir, 'link');
  symlinkSync(dir, link);
  t.notOk(safeDirectory(lstatSync(link), uid, false), 'a symbolic link');
  t.notOk(safeDirectory(lstatSync('/tmp'), uid, true), 'a world-writable parent (/tmp)');
});

t.test("a bundle's code cache: made once it has started, used by the next run, made again when the bundle changes", async (t) => {
  const cache = compileCacheDir(uid);
  const name = `test-bundle-${process.pid}`;
  const bundle = join(dir, `${name}.cjs`);
  const caches = () => (existsSync(cache) ? readdirSync(cache).filter((f) => f.startsWith(`${name}-`)) : []);
  t.teardown(() => { for (const f of caches()) rmSync(join(cache, f)); });
  // started at once, then busy for longer than the cache waits: as a tool that traces
  const write = (hashLine: string, body: string) => writeFileSync(bundle, `${hashLine}` +
    `exports.run = async (command) => { ${body}; console.log(command); setTimeout(() => {}, 600); };\n`);
  const run = () => {
    const code = `const { cached } = require(${JSON.stringify(launcher)}).runBundle(${JSON.stringify(bundle)}, 'cmd', require); console.log(cached)`;
    const r = spawnSync(process.execPath, ['-e', code], { env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '' }, encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    return r.stdout.trim().split('\n');
  };

  write('// ebpf-tools bundle 0123456789abcdef\n', 'const a = [1, 2, 3].map((x) => x * 2)');
  t.same(run(), ['cmd', 'false'], 'a first run compiles');
  t.same(caches(), [`${name}-0123456789abcdef-${process.version}-${process.arch}.v8`], 'and leaves its cache, named by the hash and Node');
  t.equal(statSync(cache).mode & 0o777, 0o700, `${cache} is 0700`);
  t.equal(statSync(join(cache, caches()[0])).mode & 0o777, 0o600, 'the cache is a file only its owner reads');
  t.same(run(), ['cmd', 'true'], 'the next run takes its code from it');

  write('// ebpf-tools bundle fedcba9876543210\n', 'const b = [4, 5, 6].filter((x) => x > 4)');
  t.same(run(), ['cmd', 'false'], 'a changed bundle compiles');
  t.same(caches(), [`${name}-fedcba9876543210-${process.version}-${process.arch}.v8`], "and its cache replaces the old one's");

  // stopped right after its start, as a run cut short at its header
  for (const f of caches()) rmSync(join(cache, f));
  writeFileSync(bundle, '// ebpf-tools bundle 00112233aabbccdd\nexports.run = async (command) => { console.log(command); setTimeout(() => process.exit(0), 10); };\n');
  t.same(run(), ['cmd', 'false'], 'a run that ends at once compiles');
  t.same(caches(), [`${name}-00112233aabbccdd-${process.version}-${process.arch}.v8`], 'and leaves its cache as it exits');
  t.same(run(), ['cmd', 'true'], 'which the next run takes its code from');

  for (const f of caches()) rmSync(join(cache, f));
  write('', '');
  t.same(run(), ['cmd', 'false'], 'a bundle without its hash line runs');
  t.same(caches(), [], 'uncached');
});

t.test("a start loads neither node:module nor Node's ES module loader; a package required by name turns Node's compile cache on first", async (t) => {
  const bundles = fileURLToPath(new URL('../bundle/', import.meta.url));
  for (const file of readdirSync(bundles).filter((f) => f.endsWith('.cjs'))) {
    const bytes = readFileSync(join(bundles, file));
    t.notMatch(bytes.toString('latin1'), /require\("(node:)?module"\)/, `${file} does not require node:module`);
    t.ok(bytes.every((b) => b < 0x80), `${file} is ASCII, as the launcher reads it`);
  }
  const work = mkdtempSync(join(tmpdir(), 'ebpf-tools-require-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  mkdirSync(join(work, 'node_modules/a-package'), { recursive: true });
  writeFileSync(join(work, 'node_modules/a-package/index.js'), 'module.exports = 1;\n');
  writeFileSync(join(work, 'by-path.cjs'), 'module.exports = 2;\n');
  // what a start requires (Node's modules, an addon by its path), then a package by name, as --help loads yargs
  writeFileSync(join(work, 'bundle.cjs'), `exports.run = async () => {
    const loaded = () => process.moduleLoadList.includes('NativeModule module');
    require('node:fs'); require('path'); require(${JSON.stringify(join(work, 'by-path.cjs'))});
    console.log(loaded());
    require('a-package');
    console.log(loaded());
  };\n`);
  // a launcher of its own, as bin/ holds them (node -e loads node:module
  // itself), started as a user starts one: tap's runner puts NODE_OPTIONS
  // that load it too into whatever its tests start, so env(1) drops them
  writeFileSync(join(work, 'launcher.cjs'), `require(${JSON.stringify(launcher)}).runBundle(${JSON.stringify(join(work, 'bundle.cjs'))}, 'cmd', require);\n`);
  const r = spawnSync('env', ['-u', 'NODE_OPTIONS', process.execPath, join(work, 'launcher.cjs')],
    { env: { ...process.env, NODE_DISABLE_COMPILE_CACHE: '' }, encoding: 'utf8', timeout: 30000 });
  t.equal(r.status, 0, r.stderr);
  t.same(r.stdout.trim().split('\n'), ['false', 'true'], 'node:module is loaded, to turn the cache on, only for the package');
});
