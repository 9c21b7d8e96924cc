// The compile cache directory: where it is, and that a directory anyone
// else could write to (and so put code in that root would run) is refused.
import t from 'tap';
import { chmodSync, lstatSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import module from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileCacheDir, safeDirectory } from '../common/compilecache.js';
import { runTool } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ebpf-tools-cache-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const uid = process.getuid!();

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

t.test('a tool run leaves its compiled code in the cache where Node has one', async (t) => {
  const enable = (module as { enableCompileCache?: unknown }).enableCompileCache;
  if (enable === undefined) {
    t.match(process.version, /^v(20|21|22\.0)\./, `Node ${process.version} has no compile cache: nothing to do`);
    return;
  }
  const r = runTool('execsnoop', ['--version']);
  t.equal(r.code, 0);
  const cache = compileCacheDir(uid);
  t.equal(statSync(cache).mode & 0o777, 0o700, `${cache} is 0700`);
  t.ok(readdirSync(cache).length > 0, 'and holds a cache');
});
