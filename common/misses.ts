// Runs of a tool's BPF programs that the kernel skipped. The kernel does not
// run a program on a CPU where it is already running (an interrupt that
// fires the same tracepoint meanwhile: a request dispatched from a
// completion's softirq while the dispatch program runs for another) and
// counts each skip in the program's recursion_misses, shown in its fdinfo
// (kernel >= 5.12). Each is an event or request not traced: reported, so
// that none is lost silently.
import { readSync } from 'node:fs';
import type { BpfObject } from './bpfobject.js';

/** The skips reported so far, by object: an object's event stream and its request counters both report them, once. */
const reported = new WeakMap<BpfObject, number>();

/** The runs skipped that a program fd's fdinfo text shows (0 where it does not say: kernels before 5.12). */
export function missesInFdinfo(text: string): number {
  const found = /^recursion_misses:\s*(\d+)$/m.exec(text);
  return found ? Number(found[1]) : 0;
}

/** Where a program's fdinfo is read: a few hundred bytes. */
const fdinfo = Buffer.alloc(4096);

/** The runs the kernel skipped so far of the programs whose fdinfo files are open as `fdinfoFds` (each read again from its start). */
export function recursionMisses(fdinfoFds: number[]): number {
  return fdinfoFds.reduce((sum, fd) => sum + missesInFdinfo(fdinfo.toString('latin1', 0, readSync(fd, fdinfo, 0, fdinfo.length, 0))), 0);
}

/**
 * Prints how many more runs of `obj`'s programs the kernel skipped since the
 * last report, if any, as `what` (events, requests) not traced; `command`:
 * the name the user ran.
 */
export function reportSkippedRuns(obj: BpfObject, what: 'events' | 'requests', command = obj.tool): void {
  const misses = obj.skippedRuns();
  const before = reported.get(obj) ?? 0;
  if (misses === before) return;
  reported.set(obj, misses);
  process.stderr.write(`${command}: ${misses - before} ${what} not traced: the kernel skipped a program of ours already running on that CPU (${misses} in all)\n`);
}
