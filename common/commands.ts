// The commands the package installs, each run by a tool module: fsslower
// runs under its own name and as ext4slower, xfsslower, btrfsslower,
// nfsslower and fuseslower, as libbpf-tools' fsslower does (bcc has a script
// for each but fuse);
// ebpf-tools runs tools/check.ts.
// bin/ launchers, the ebpf-tools command and the tests read this one list.

export interface Command {
  /** what the user types (bin/<name>.js, man8/<name>.8) */
  name: string;
  /** the module tools/<tool>.ts and its object bpf/<tool>.bpf.o */
  tool: string;
  /** one line for the list of tools */
  summary: string;
}

export const COMMANDS: readonly Command[] = [
  { name: 'execsnoop', tool: 'execsnoop', summary: 'every exec (execve, execveat), with complete arguments' },
  { name: 'opensnoop', tool: 'opensnoop', summary: 'every open, openat, openat2' },
  { name: 'fsslower', tool: 'fsslower', summary: 'file system reads, writes, opens and fsyncs slower than a threshold (-t btrfs, ext4, fuse, nfs, xfs)' },
  { name: 'ext4slower', tool: 'fsslower', summary: 'ext4 reads, writes, opens and fsyncs slower than a threshold (fsslower -t ext4)' },
  { name: 'xfsslower', tool: 'fsslower', summary: 'XFS reads, writes, opens and fsyncs slower than a threshold (fsslower -t xfs)' },
  { name: 'btrfsslower', tool: 'fsslower', summary: 'btrfs reads, writes, opens and fsyncs slower than a threshold (fsslower -t btrfs)' },
  { name: 'nfsslower', tool: 'fsslower', summary: 'NFS reads, writes, opens and fsyncs slower than a threshold (fsslower -t nfs)' },
  { name: 'fuseslower', tool: 'fsslower', summary: 'FUSE reads, writes, opens and fsyncs slower than a threshold (fsslower -t fuse)' },
  { name: 'biolatency', tool: 'biolatency', summary: 'block I/O latency as log2 histograms' },
  { name: 'biosnoop', tool: 'biosnoop', summary: 'each block I/O with its process, disk, size and latency' },
  { name: 'ebpf-tools', tool: 'check', summary: 'these tools, and (check) what works on this machine and how each attaches here' },
];

/**
 * The Node options of every bin/ launcher, on its shebang line
 * (#!/usr/bin/env -S node ...; the package test checks each). V8 reads them
 * only as it starts: v8.setFlagsFromString() in the launcher is too late.
 * - V8 compiles a tool's hot code on the main thread rather than on a
 *   thread of its own. That thread's memory, and its own heap arena in
 *   glibc, held 3 to 4 MiB of the peak in the 500k-open storm on Node 20,
 *   22 and 24 (66 to 62 MiB on Node 24), and the storm took no more CPU
 *   (measured 2026-12-03, bench's storm).
 * - The young generation starts at 2 MiB a semi-space, not 1: a start
 *   allocates ~1.4 MiB before its header, and so paid a scavenge (~0.8 ms
 *   of opensnoop's start on Node 20, 22 and 24) for nothing. It costs ~0.1
 *   MiB more resident once attached, and ~0.5 MiB more at the peak of the
 *   500k-open storm (58.1 against 57.7 MiB on Node 20, 63.3 against 62.8 on
 *   Node 24; a smaller --max-semi-space-size changed nothing there), measured
 *   2026-12-03.
 */
export const LAUNCHER_NODE_OPTIONS: readonly string[] = ['--no-concurrent-recompilation', '--min-semi-space-size=2'];

/** The tool module a command runs. */
export function toolOf(command: string): string {
  const found = COMMANDS.find((c) => c.name === command);
  if (!found) throw new Error(`no command ${command}`);
  return found.tool;
}
