// Shared by the end-to-end tests of cgroups: cgroup v2 cgroups made by the
// test, named as the CGROUP column shows them (relative to the cgroup2
// mount; any bytes), removed when the test file ends, and commands run in
// them.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { cgroup2Root } from './helpers.js';

let root: Buffer | undefined;

/** The directory of the cgroup at `path`, as the CGROUP column shows it. */
export function cgroupDir(path: Buffer | string): Buffer {
  // found when first needed: a test file that only imports this needs no cgroup2 mount
  root ??= Buffer.from(cgroup2Root());
  return Buffer.concat([root, Buffer.from(path)]);
}

/**
 * A container id of this test process's own, 64 hex digits (its pid first,
 * so that two test files running at once make different ones).
 */
export const TEST_CONTAINER_ID = `${process.pid.toString(16).padStart(8, '0')}${'0123456789abcdef'.repeat(4).slice(8)}`;

const made: Buffer[] = [];

/**
 * Makes the cgroups at `paths`, in order (each parent before its children);
 * when the test file ends, every cgroup made so is removed, innermost first
 * (their processes have exited by then).
 */
export function makeCgroups(...paths: (Buffer | string)[]): void {
  if (made.length === 0) {
    t.teardown(() => {
      for (const dir of made.splice(0)) rmdirSync(dir);
    });
  }
  for (const path of paths) {
    mkdirSync(cgroupDir(path));
    made.unshift(cgroupDir(path));
  }
}

/** Moves process `pid` into the cgroup at `path`. */
export function moveToCgroup(path: Buffer | string, pid: number): void {
  writeFileSync(Buffer.concat([cgroupDir(path), Buffer.from('/cgroup.procs')]), String(pid));
}

/**
 * Runs `file args` in the cgroup at `path`: a shell waits until its pid is
 * written to cgroup.procs, then execs it, which reads `input` from its
 * standard input. Resolves with the pid once it has exited.
 */
export function runIn(path: Buffer | string, file: string, args: string[], input = ''): Promise<number> {
  return heldCommand(file, args, input).runIn(path);
}

/**
 * `file args` started and held in a shell, to be run in a cgroup later:
 * runIn(path) moves it there and lets it go (so that the time it takes to
 * start a process is not counted where a cgroup must live briefly).
 */
export function heldCommand(file: string, args: string[], input = ''): { runIn(path: Buffer | string): Promise<number> } {
  const child = spawn('/bin/sh', ['-c', 'read go; exec "$0" "$@"', file, ...args], { stdio: ['pipe', 'ignore', 'ignore'] });
  const closed = new Promise<number>((resolve) => child.on('close', () => resolve(child.pid!)));
  return {
    runIn(path) {
      moveToCgroup(path, child.pid!);
      // the shell's read takes the line only (it reads a pipe byte by byte): the rest is the command's
      child.stdin!.end(`go\n${input}`);
      return closed;
    },
  };
}
