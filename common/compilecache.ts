// How a bin/ launcher runs its tool's bundle: with V8's code for it cached
// between runs, which saves most of the time a start spends compiling
// JavaScript (3 ms of a start on Node 22, 6 on Node 20, measured).
//
// The bundle is compiled as a vm.Script, and its cache is made once the tool
// has started (its main has returned: loaded, attached, reading), so that it
// holds every function the start ran, or as it exits if that is sooner. Node's own compile cache
// (module.enableCompileCache, Node >= 22.1) is made at compile time, before
// anything runs, and so holds only a module's top level: the functions of a
// start were compiled again in every run. It is still turned on, for the
// packages a bundle requires by name (yargs, for --help or a mistake), just
// before the first of them: turning it on loads node:module, and with it
// Node's ES module loader, which a start does not otherwise need (0.8 ms of
// it here on Node 20, 23 ms in a kernel-matrix guest).
//
// The tools run as root, so a cache is only used in a directory that is ours
// alone: created 0700, refused if it or its parent is someone else's or
// writable by others (whoever could write there could run code as root). A
// cache is named by a hash of its bundle (its first line, scripts/bundle.mjs)
// and the Node version: V8 checks the rest (its version and flags) and
// rejects a cache that does not fit, which is then made again.
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { constants as vmConstants, Script } from 'node:vm';

const ROOT_CACHE = '/var/cache/ebpf-tools/compile-cache';

/** The first line of every tool's bundle: a hash of what follows. */
const BUNDLE_HASH_LINE = /^\/\/ ebpf-tools bundle ([0-9a-f]{16})\n/;

/** How long after the tool has started its code cache is made: its first events have been handled (and their code compiled) by then. */
const CACHE_DELAY_MS = 250;

/** Where the cache is kept: a system directory for root, the user's cache directory otherwise. */
export function compileCacheDir(uid = process.getuid?.() ?? -1, env = process.env): string {
  if (uid === 0) return ROOT_CACHE;
  // node:os only here: root's start does without it
  return `${env.XDG_CACHE_HOME || `${process.getBuiltinModule('node:os').homedir()}/.cache`}/ebpf-tools/compile-cache`;
}

/** Whether `dir` may hold code we run: a real directory, ours (or root's, for the parent), writable by no one else. */
export function safeDirectory(stats: Stats, uid: number, parent: boolean): boolean {
  const owners = parent ? [uid, 0] : [uid];
  const othersWrite = parent ? 0o022 : 0o077;
  return stats.isDirectory() && owners.includes(stats.uid) && (stats.mode & othersWrite) === 0;
}

/** The cache directory, made if need be; undefined where it is turned off, not safe or cannot be made (no cache: only slower). */
function cacheDirectory(): string | undefined {
  const uid = process.getuid?.();
  if (uid === undefined || process.env.NODE_DISABLE_COMPILE_CACHE) return undefined;
  const dir = compileCacheDir(uid);
  try {
    // made where it is missing; a start finds it, and skips the mkdir and stat a recursive mkdir of it costs
    let stats = lstatSync(dir, { throwIfNoEntry: false });
    if (!stats) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      stats = lstatSync(dir);
    }
    return safeDirectory(stats, uid, false) && safeDirectory(lstatSync(dirname(dir)), uid, true) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** The code cache file of a bundle's `source` in `dir` (undefined for a bundle without its hash line). */
export function codeCacheFile(dir: string, bundle: string, source: string): string | undefined {
  const hash = BUNDLE_HASH_LINE.exec(source)?.[1];
  return hash && `${dir}/${bundle}-${hash}-${process.version}-${process.arch}.v8`;
}

/** Writes `data` as `file` whole or not at all, and removes the caches of other builds of the same bundle. */
function storeCodeCache(file: string, bundle: string, data: Buffer): void {
  try {
    const dir = dirname(file);
    const name = file.slice(dir.length + 1);
    const hash = name.slice(bundle.length + 1, bundle.length + 17);
    const temporary = `${file}.${process.pid}`;
    writeFileSync(temporary, data, { mode: 0o600 });
    renameSync(temporary, file);
    for (const other of readdirSync(dir)) {
      if (other.startsWith(`${bundle}-`) && !other.startsWith(`${bundle}-${hash}-`)) rmSync(`${dir}/${other}`, { force: true });
    }
  } catch {
    // a full or read-only file system: the next run compiles again
  }
}

interface ToolBundle {
  run(command: string): Promise<void>;
}

/**
 * The require() a bundle is given: the launcher's, which finds what a
 * bundle requires (Node's modules, koffi's binary by its path, packages by
 * name) as one in dist/bundle/ would, both being inside the package. Node's
 * compile cache is turned on before the first package by name.
 */
function bundleRequire(launcherRequire: NodeJS.Require, dir: string | undefined): (id: string) => unknown {
  let cacheOn = dir === undefined;
  return (id: string): unknown => {
    // resolve.paths() is null for Node's own modules, with or without node:
    if (!cacheOn && !id.startsWith('/') && launcherRequire.resolve.paths(id) !== null) {
      cacheOn = true;
      const { enableCompileCache } = launcherRequire('node:module') as { enableCompileCache?: (dir: string) => unknown };
      enableCompileCache?.(dir!);
    }
    return launcherRequire(id);
  };
}

/**
 * Runs the tool bundle `file` (dist/bundle/<tool>.cjs) as `command`
 * (ext4slower runs fsslower's), compiled from its code cache where there is
 * one, with the launcher's `require`. Returns the bundle's script, and
 * whether its cache was used.
 */
export function runBundle(bundleFile: string, command: string, launcherRequire: NodeJS.Require): { script: Script; cached: boolean } {
  const dir = cacheDirectory();
  const file = resolve(bundleFile);
  const bundle = basename(file, '.cjs');
  // ASCII (scripts/bundle.mjs): as latin1, the same string without UTF-8's decoding (14 ms of a start in a kernel-matrix guest)
  const source = readFileSync(file, 'latin1');
  const cacheFile = dir && codeCacheFile(dir, bundle, source);
  let cachedData: Buffer | undefined;
  try {
    if (cacheFile) cachedData = readFileSync(cacheFile);
  } catch {
    // none yet
  }
  // the wrapper CommonJS gives a module, on the first line so that line numbers stay the bundle's
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file, cachedData, importModuleDynamically: vmConstants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const loaded = { exports: {} as ToolBundle };
  (script.runInThisContext() as (...args: unknown[]) => void)(loaded.exports, bundleRequire(launcherRequire, dir), loaded, file, dirname(file));
  const started = loaded.exports.run(command);
  if (cacheFile && (!cachedData || script.cachedDataRejected)) {
    let stored = false;
    const store = (): void => {
      if (stored) return;
      stored = true;
      storeCodeCache(cacheFile, bundle, script.createCachedData());
    };
    void started.then(() => {
      setTimeout(store, CACHE_DELAY_MS).unref();
      // a run cut short before then (stopped at its header, as the
      // benchmark's and a script's are) makes it as it exits: otherwise such
      // runs would compile everything every time
      process.once('exit', store);
    });
  }
  return { script, cached: cachedData !== undefined && !script.cachedDataRejected };
}
