// V8's compile cache for our modules (Node ≥ 22.1: module.enableCompileCache),
// which saves most of the time a start spends compiling JavaScript. The
// tools run as root, so the cache is only used in a directory that is ours
// alone: created 0700, refused if it or its parent is someone else's or
// writable by others (whoever could write there could run code as root).
// Node 20 has no cache for ES modules: there, nothing is done.
import { lstatSync, mkdirSync, type Stats } from 'node:fs';
import module from 'node:module';
import { homedir } from 'node:os';
import { dirname } from 'node:path';

const ROOT_CACHE = '/var/cache/ebpf-tools/compile-cache';

/** Where the cache is kept: a system directory for root, the user's cache directory otherwise. */
export function compileCacheDir(uid = process.getuid?.() ?? -1, env = process.env): string {
  if (uid === 0) return ROOT_CACHE;
  return `${env.XDG_CACHE_HOME || `${homedir()}/.cache`}/ebpf-tools/compile-cache`;
}

/** Whether `dir` may hold code we run: a real directory, ours (or root's, for the parent), writable by no one else. */
export function safeDirectory(stats: Stats, uid: number, parent: boolean): boolean {
  const owners = parent ? [uid, 0] : [uid];
  const othersWrite = parent ? 0o022 : 0o077;
  return stats.isDirectory() && owners.includes(stats.uid) && (stats.mode & othersWrite) === 0;
}

/** Turns the compile cache on where Node has it and the directory is safe; otherwise does nothing. */
export function enableCompileCache(): void {
  const enable = (module as { enableCompileCache?: (dir: string) => unknown }).enableCompileCache;
  const uid = process.getuid?.();
  if (!enable || uid === undefined || process.env.NODE_DISABLE_COMPILE_CACHE) return;
  const dir = compileCacheDir(uid);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!safeDirectory(lstatSync(dir), uid, false) || !safeDirectory(lstatSync(dirname(dir)), uid, true)) return;
    enable(dir);
  } catch {
    // no cache (a read-only or full file system): only slower
  }
}
