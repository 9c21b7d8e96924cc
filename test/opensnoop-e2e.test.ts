// opensnoop against the real kernel: a small C program opens unique paths
// (existing and missing, absolute and relative, through open, openat and
// openat2, from threads, as another user) and the exact lines are asserted,
// option by option, then compared with Debian's C opensnoop.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { left, right } from '../common/format.js';
import { loadWithPlans } from '../common/plan.js';
import { kernelConfig, parseOptions, tracepointPlan } from '../tools/opensnoop.js';
import {
  cgroupIdOf, kernelSnapshot, leftovers, perfBufferOpen, referenceTool, RunningTool, sleep, SLOWDOWN, startAttached, startTool, startVerboseAttached, withoutSkippedRuns, withoutTapHooks,
} from './helpers.js';

const OPENER_SOURCE = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long do_open(const char *sys, int dirfd, const char *path, int flags) {
  if (!strcmp(sys, "open")) {
#ifdef SYS_open
    return syscall(SYS_open, path, flags, 0644);
#else
    fprintf(stderr, "no open syscall here\n");
    exit(2);
#endif
  }
  if (!strcmp(sys, "openat")) return syscall(SYS_openat, dirfd, path, flags, 0644);
  if (!strcmp(sys, "openat2")) {
    struct open_how how = { .flags = flags, .mode = (flags & O_CREAT) ? 0644 : 0 };
    return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
  }
  fprintf(stderr, "unknown syscall %s\n", sys);
  exit(2);
}

static void *in_thread(void *path) { do_open("openat", AT_FDCWD, path, O_RDONLY); return NULL; }

/* Operations, in order: wait (for a byte on stdin), cd DIR, uid UID, thread PATH,
 * at SYSCALL DIR PATH FLAGS, repeat N PATH, or SYSCALL PATH FLAGS (octal). */
int main(int argc, char **argv) {
  char byte;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "wait")) {
      if (read(0, &byte, 1) != 1) return 3;
    } else if (!strcmp(argv[i], "cd")) {
      if (chdir(argv[++i])) return 4;
    } else if (!strcmp(argv[i], "uid")) {
      if (setuid(atoi(argv[++i]))) return 5;
    } else if (!strcmp(argv[i], "thread")) {
      pthread_t thread;
      pthread_create(&thread, NULL, in_thread, argv[++i]);
      pthread_join(thread, NULL);
    } else if (!strcmp(argv[i], "at")) {
      int dirfd = open(argv[i + 2], O_PATH | O_DIRECTORY);
      do_open(argv[i + 1], dirfd, argv[i + 3], strtol(argv[i + 4], NULL, 8));
      close(dirfd);
      i += 4;
    } else if (!strcmp(argv[i], "repeat")) {
      for (long n = atol(argv[i + 1]); n > 0; n--) {
        int fd = open(argv[i + 2], O_RDONLY);
        if (fd >= 0) close(fd);
      }
      i += 2;
    } else {
      do_open(argv[i], AT_FDCWD, argv[i + 1], strtol(argv[i + 2], NULL, 8));
      i += 2;
    }
  }
  return 0;
}
`;

const HEADER = /^PID {4}COMM {14}FD ERR PATH$/;
/** open(2) exists on x86-64 (this CI); arm64 and riscv have only openat. */
const OPEN = process.arch === 'x64' ? 'open' : 'openat';

const dir = mkdtempSync('/tmp/opensnoop-e2e-');
chmodSync(dir, 0o755); // so that the uid test's process can open in it
const opener = join(dir, 'opener');
const cc = spawnSync('cc', ['-O2', '-pthread', '-o', opener, '-x', 'c', '-'], { input: OPENER_SOURCE, encoding: 'utf8' });
if (cc.status !== 0) throw new Error(`cannot compile the test helper: ${cc.stderr}`);
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
/** A unique file name under the test directory, existing (mode 644) or not. */
function path(existing: boolean, name = 'f'): string {
  const p = join(dir, `${name}${++counter}-${existing ? 'here' : 'missing'}`);
  if (existing) writeFileSync(p, '', { mode: 0o644 });
  return p;
}

/** The line opensnoop prints, as libbpf-tools' "%-6d %-16s %3d %3d %s". */
function line(pid: number, fd: number, err: number, shown: string, comm = 'opener'): string {
  return `${left(pid, 6)} ${left(comm, 16)} ${right(fd, 3)} ${right(err, 3)} ${shown}`;
}

/** Runs the helper to completion; returns its pid. */
function open(ops: string[], options: { cwd?: string; program?: string } = {}): number {
  const r = spawnSync(options.program ?? opener, ops, { stdio: 'ignore', cwd: options.cwd ?? dir });
  if (r.status !== 0) throw new Error(`opener ${ops.join(' ')} failed: ${r.status}`);
  return r.pid!;
}

/** The helper started but held before its first operation, so that a tracer can be pointed at its pid. */
class Held {
  readonly proc: ChildProcess;
  readonly pid: number;
  private readonly exited: Promise<number | null>;

  constructor(ops: string[], command: string[] = []) {
    const [file, ...args] = [...command, opener, 'wait', ...ops];
    this.proc = spawn(file, args, { stdio: ['pipe', 'ignore', 'ignore'], cwd: dir });
    this.pid = this.proc.pid!;
    this.exited = new Promise((resolve) => this.proc.on('close', resolve));
  }

  async release(): Promise<void> {
    this.proc.stdin!.end('x');
    const status = await this.exited;
    if (status !== 0) throw new Error(`held opener failed: ${status}`);
  }
}


const trace = (args: string[], header: RegExp = HEADER): Promise<RunningTool> => startAttached('opensnoop', args, header);
/** Matches the line of process `pid` opening `shown` (the test's own opens of the same paths, to create them, are not it). */
const by = (pid: number, shown: string) => (l: string): boolean => l.endsWith(` ${shown}`) && ` ${l}`.includes(` ${left(pid, 6)} `);

const before = kernelSnapshot();

t.test('open, openat, openat2; existing and missing; absolute and relative: the exact lines', async (t) => {
  const tool = await trace([]);
  const absHere = path(true);
  const absMissing = path(false);
  const relHere = path(true).slice(dir.length + 1);
  const relMissing = path(false).slice(dir.length + 1);
  const via2 = path(true);
  const pid = open([OPEN, absHere, '0', 'openat', absMissing, '0', 'openat2', relHere, '0', OPEN, relMissing, '0', 'openat2', via2, '0']);
  t.equal(await tool.waitForLine(by(pid, absHere)), line(pid, 3, 0, absHere));
  t.equal(await tool.waitForLine(by(pid, absMissing)), line(pid, -1, 2, absMissing));
  t.equal(await tool.waitForLine(by(pid, relHere)), line(pid, 4, 0, relHere));
  t.equal(await tool.waitForLine(by(pid, relMissing)), line(pid, -1, 2, relMissing));
  t.equal(await tool.waitForLine(by(pid, via2)), line(pid, 5, 0, via2));
  const done = await tool.stop('SIGINT');
  t.equal(done.code, 0, 'Ctrl-C exits 0');
  t.equal(withoutSkippedRuns(done.stderr), '', 'nothing on stderr');
});

t.test('-x shows only failed opens; -E names the error', async (t) => {
  const here = path(true);
  const missing = path(false);
  const failed = await trace(['-x']);
  const named = await trace(['-x', '-E'], /^PID {4}COMM {14}FD ERR {5}PATH$/);
  const pid = open(['openat', here, '0', 'openat', missing, '0']);
  t.equal(await failed.waitForLine(by(pid, missing)), line(pid, -1, 2, missing));
  t.equal(await named.waitForLine(by(pid, missing)), `${left(pid, 6)} ${left('opener', 16)}  -1 ENOENT  ${missing}`);
  t.notOk(failed.lines.some(by(pid, here)), 'a successful open is not shown with -x');
  await failed.stop();
  await named.stop();
});

t.test('-p traces one process, -t one thread of it', async (t) => {
  const mainPath = path(true);
  const threadPath = path(true);
  const last = path(false);
  const held = new Held(['openat', mainPath, '0', 'thread', threadPath, 'openat', last, '0']);
  const other = path(true);
  const byPid = await trace(['-p', String(held.pid)]);
  const byTid = await trace(['-t', String(held.pid)]);
  const otherPid = open(['openat', other, '0']);
  await held.release();
  for (const tool of [byPid, byTid]) {
    t.equal(await tool.waitForLine(by(held.pid, mainPath)), line(held.pid, 3, 0, mainPath));
    t.equal(await tool.waitForLine(by(held.pid, last)), line(held.pid, -1, 2, last));
    t.notOk(tool.lines.some(by(otherPid, other)), 'another process is not shown');
  }
  t.equal(byPid.lines.find(by(held.pid, threadPath)), line(held.pid, 4, 0, threadPath), '-p shows every thread');
  t.notOk(byTid.lines.some(by(held.pid, threadPath)), '-t hides the other threads');
  await byPid.stop();
  await byTid.stop();
});

t.test('-u traces one user, with its uid in the -U column; -T adds the time', async (t) => {
  const asRoot = path(true);
  const asNobody = path(true);
  const tool = await trace(['-u', '65534', '-U', '-T'], /^TIME {5}UID {5}PID {4}COMM {14}FD ERR PATH$/);
  const pid = open(['openat', asRoot, '0', 'uid', '65534', 'openat', asNobody, '0']);
  const got = await tool.waitForLine(by(pid, asNobody));
  t.match(got, new RegExp(`^\\d\\d:\\d\\d:\\d\\d ${left(65534, 7)} ${escape(line(pid, 4, 0, asNobody))}$`));
  t.notOk(tool.lines.some(by(pid, asRoot)), 'root\'s open is not shown');
  await tool.stop();
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

t.test('-n shows only matching command names, and keeps going past the others', async (t) => {
  const otherProgram = join(dir, 'zzother');
  copyFileSync(opener, otherProgram);
  chmodSync(otherProgram, 0o755);
  const byOther = path(true);
  const first = path(true);
  const second = path(false);
  const tool = await trace(['-n', 'pene']);
  // Upstream's C tool stops at the first event it filters out: ours must not.
  open(['openat', byOther, '0'], { program: otherProgram });
  const pid1 = open(['openat', first, '0']);
  open(['openat', byOther, '0'], { program: otherProgram });
  const pid2 = open(['openat', second, '0']);
  t.equal(await tool.waitForLine(by(pid1, first)), line(pid1, 3, 0, first));
  t.equal(await tool.waitForLine(by(pid2, second)), line(pid2, -1, 2, second));
  t.notOk(tool.lines.some((l) => l.endsWith(byOther)), 'zzother is not shown');
  t.equal(tool.proc.exitCode, null, 'still running');
  await tool.stop();
});

t.test('-f filters on the flags (access mode or flag bits); -e shows FLAGS and MODE', async (t) => {
  const reading = path(true);
  const creating = path(false); // created by the open
  const both = path(true);
  const writeOnly = await trace(['-f', 'O_WRONLY', '-e'], /^PID {4}COMM {14}FD ERR FLAGS {4}MODE  PATH$/);
  const readOnly = await trace(['-f', 'O_RDONLY']);
  const rdwrOrCreat = await trace(['-f', 'O_RDWR', '-f', 'O_CREAT']);
  const all = await trace(['-e'], /^PID {4}COMM {14}FD ERR FLAGS {4}MODE  PATH$/);
  const pid = open(['openat', reading, '0', 'openat', creating, '1101', 'openat', both, '2']);
  t.equal(await writeOnly.waitForLine(by(pid, creating)), `${line(pid, 4, 0, '').slice(0, -1)} 00001101 0644  ${creating}`);
  t.equal(await readOnly.waitForLine(by(pid, reading)), line(pid, 3, 0, reading));
  t.equal(await rdwrOrCreat.waitForLine(by(pid, creating)), line(pid, 4, 0, creating));
  t.equal(await rdwrOrCreat.waitForLine(by(pid, both)), line(pid, 5, 0, both));
  t.equal(await all.waitForLine(by(pid, reading)), `${line(pid, 3, 0, '').slice(0, -1)} 00000000 n/a   ${reading}`);
  t.equal(await all.waitForLine(by(pid, both)), `${line(pid, 5, 0, '').slice(0, -1)} 00000002 n/a   ${both}`);
  await sleep(300);
  const mine = (tool: RunningTool): number => tool.lines.filter((l) => l.includes(dir) && ` ${l}`.includes(` ${left(pid, 6)} `)).length;
  t.equal(mine(writeOnly), 1, '-f O_WRONLY: only the write-only open');
  t.equal(mine(readOnly), 1, '-f O_RDONLY: only the read-only open');
  t.equal(mine(rdwrOrCreat), 2, '-f O_RDWR -f O_CREAT: either');
  for (const tool of [writeOnly, readOnly, rdwrOrCreat, all]) await tool.stop();
});

t.test('-F resolves relative paths in the kernel: cwd, dirfd, mount points, bind mounts, depth limit', async (t) => {
  const full = await trace(['-F']);
  const plain = await trace([]);
  const cwd = join(dir, 'cwd');
  mkdirSync(join(cwd, 'sub'), { recursive: true });
  const name = `sub/rel${++counter}`;
  const viaDirfd = `dirfd${++counter}`;
  const absolute = path(false);
  const pid = open(['openat', name, '0', 'at', 'openat2', cwd, viaDirfd, '0', OPEN, absolute, '0'], { cwd });
  t.equal(await full.waitForLine(by(pid, `${cwd}/${name}`)), line(pid, -1, 2, `${cwd}/${name}`), 'against the cwd');
  t.equal(await plain.waitForLine(by(pid, name)), line(pid, -1, 2, name), 'as given without -F');
  t.equal(await full.waitForLine(by(pid, `${cwd}/${viaDirfd}`)), line(pid, -1, 2, `${cwd}/${viaDirfd}`), 'against the dirfd');
  t.equal(await full.waitForLine(by(pid, absolute)), line(pid, -1, 2, absolute), 'absolute as given');

  // /dev/shm is a tmpfs mount: the walk crosses into the root filesystem.
  const shm = mkdtempSync('/dev/shm/opensnoop-e2e-');
  t.teardown(() => rmSync(shm, { recursive: true, force: true }));
  const shmPid = open(['openat', 'x', '0'], { cwd: shm });
  t.equal(await full.waitForLine(by(shmPid, `${shm}/x`)), line(shmPid, -1, 2, `${shm}/x`), 'across a mount point');

  // A bind mount of a subdirectory shows where it is mounted, not where it comes from.
  const source = join(dir, 'source');
  const target = join(dir, 'target');
  mkdirSync(join(source, 'deep'), { recursive: true });
  mkdirSync(target);
  t.equal(spawnSync('mount', ['--bind', source, target]).status, 0, 'bind mount');
  t.teardown(() => spawnSync('umount', [target]));
  const bindPid = open(['openat', 'y', '0'], { cwd: join(target, 'deep') });
  t.equal(await full.waitForLine(by(bindPid, `${target}/deep/y`)), line(bindPid, -1, 2, `${target}/deep/y`), 'through a bind mount');

  // Deeper than the kernel walks: the outer directories are marked as left out.
  let deep = join(dir, 'deep');
  for (let i = 0; i < 70; i++) deep = join(deep, 'd');
  mkdirSync(deep, { recursive: true });
  const deepPid = open(['openat', 'z', '0'], { cwd: deep });
  const cut = await full.waitForLine((l) => l.startsWith(`${left(deepPid, 6)} `) && l.endsWith('/d/z'));
  t.match(cut, new RegExp(`^${escape(line(deepPid, -1, 2, ''))}\\.\\.\\.(/d){60,64}/z$`));
  await full.stop();
  await plain.stop();
});

t.test('--json: one object per open with every field', async (t) => {
  const missing = path(false);
  const threadPath = path(true);
  const held = new Held(['openat', missing, '1101', 'thread', threadPath], []);
  const cgroupId = cgroupIdOf(held.pid);
  const tool = await startVerboseAttached('opensnoop', ['--json', '-p', String(held.pid)]);
  await held.release();
  const parse = async (p: string): Promise<Record<string, unknown>> => JSON.parse(await tool.waitForLine((l) => l.includes(p)));
  const created = await parse(missing);
  t.match(created.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.type(created.ts, 'number');
  t.same({ ...created, time: 0, ts: 0 }, {
    time: 0, ts: 0, pid: held.pid, tid: held.pid, uid: 0, comm: 'opener', fd: 3, err: 0, errno: null,
    flags: 0o1101, mode: 0o644, path: missing, cgroup_id: cgroupId,
  });
  const inThread = await parse(threadPath);
  t.equal(inThread.pid, held.pid);
  t.not(inThread.tid, held.pid, 'a thread has its own tid');
  t.same([inThread.fd, inThread.flags, inThread.mode], [4, 0, null]);
  await tool.stop();
});

t.test('-d ends the trace on time with status 0', async (t) => {
  const started = Date.now();
  const tool = startTool('opensnoop', ['-d', '2']);
  await tool.waitForLine(HEADER);
  const attachedAt = Date.now();
  const done = await tool.finished();
  t.equal(done.code, 0);
  t.ok(Date.now() - attachedAt >= 1000 && Date.now() - started < 7000 * SLOWDOWN + 1000, `ended after ${Date.now() - started} ms`);
});

t.test('a ring buffer of one page under a burst: captured plus reported lost is every open', async (t) => {
  const target = path(true);
  const opens = 20000;
  const held = new Held(['repeat', String(opens), target]);
  const tool = await trace(['-b', '1', '-p', String(held.pid)]);
  await held.release();
  await sleep(500);
  const done = await tool.stop();
  const captured = done.stdout.split('\n').filter(by(held.pid, target)).length;
  const reports = [...done.stderr.matchAll(/^opensnoop: \d+ events lost: ring buffer full \((\d+) lost in all\)$/gm)];
  const lost = reports.length ? Number(reports.at(-1)![1]) : 0;
  t.ok(lost > 0, `a 4 KiB ring buffer overflows (${lost} lost; stderr: ${done.stderr})`);
  t.equal(captured + lost, opens, `${captured} captured + ${lost} lost`);
});

/** A cgroup v2 directory for the test, removed at the end. */
function testCgroup(): string {
  const base = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((d) => existsSync(`${d}/cgroup.procs`) && existsSync(`${d}/cgroup.controllers`));
  if (!base) throw new Error('no cgroup v2 hierarchy mounted');
  const cgroup = `${base}/opensnoop-test-${process.pid}-${++counter}`;
  mkdirSync(cgroup);
  t.teardown(() => rmdirSync(cgroup));
  return cgroup;
}

/** Runs the helper from a shell that first moves itself into `cgroup`. */
function openInCgroup(cgroup: string, ops: string[]): Promise<void> {
  const child = spawn('/bin/sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec "$@"`, 'sh', opener, ...ops], { stdio: 'ignore' });
  return new Promise((resolve) => child.on('close', () => resolve()));
}

/** A pinned BPF hash map holding one 8-byte key, as bcc's --cgroupmap/--mntnsmap want; removed at the end. */
function pinnedIdMap(key: bigint, valueSize: number): string {
  const pin = `/sys/fs/bpf/opensnoop-test-${process.pid}-${++counter}`;
  const hex = (value: bigint, bytes: number): string[] =>
    Array.from({ length: bytes }, (_, i) => ((value >> BigInt(8 * i)) & 0xffn).toString(16).padStart(2, '0'));
  const bpftool = (args: string[]): void => {
    const r = spawnSync('bpftool', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`bpftool ${args.join(' ')}: ${r.stderr}`);
  };
  bpftool(['map', 'create', pin, 'type', 'hash', 'key', '8', 'value', String(valueSize), 'entries', '4', 'name', 'opensnoop_test']);
  t.teardown(() => rmSync(pin, { force: true }));
  bpftool(['map', 'update', 'pinned', pin, 'key', 'hex', ...hex(key, 8), 'value', 'hex', ...hex(1n, valueSize)]);
  return pin;
}

t.test('-c and --cgroupmap trace only processes in the cgroup', async (t) => {
  const cgroup = testCgroup();
  const outside = path(true);
  const inside = path(false);
  const byPath = await trace(['--cgroup', cgroup]);
  const byMap = await trace(['--cgroupmap', pinnedIdMap(BigInt(statSync(cgroup).ino), 8)]);
  open(['openat', outside, '0']);
  await openInCgroup(cgroup, ['openat', inside, '0']);
  for (const tool of [byPath, byMap]) {
    t.match(await tool.waitForLine((l) => l.endsWith(` ${inside}`)), new RegExp(`^\\d+ +opener +-1 +2 ${escape(inside)}$`));
    t.notOk(tool.lines.some((l) => l.endsWith(` ${outside}`)), 'an open outside the cgroup is not shown');
    await tool.stop();
  }
});

t.test('--mntnsmap traces only the mount namespaces in the map', async (t) => {
  const inNamespace = path(false);
  const outside = path(false);
  const held = new Held(['openat', inNamespace, '0'], ['unshare', '--mount']);
  // unshare execs the helper in place: once the pid's namespace differs from ours, it is set up.
  const ours = statSync('/proc/self/ns/mnt').ino;
  let theirs = ours;
  for (let i = 0; i < 250 && theirs === ours; i++) {
    await sleep(20);
    theirs = statSync(`/proc/${held.pid}/ns/mnt`).ino;
  }
  t.not(theirs, ours, 'the helper runs in a new mount namespace');
  const tool = await trace(['--mntnsmap', pinnedIdMap(BigInt(theirs), 4)]);
  open(['openat', outside, '0']);
  await held.release();
  t.equal(await tool.waitForLine(by(held.pid, inNamespace)), line(held.pid, -1, 2, inNamespace));
  t.notOk(tool.lines.some((l) => l.endsWith(` ${outside}`)), 'an open in our namespace is not shown');
  await tool.stop();
});

t.test('same lines as Debian\'s C opensnoop on the same workload (header, PID, COMM, FD, ERR, PATH)', async (t) => {
  const reference = referenceTool('opensnoop');
  if (!existsSync(reference)) throw new Error(`${reference} missing: install Debian's libbpf-tools`);
  if (!existsSync('/sys/kernel/tracing/events')) spawnSync('mount', ['-t', 'tracefs', 'tracefs', '/sys/kernel/tracing']);
  // Debian's opensnoop (bcc 0.26) has no openat2, and looks for tracepoints under
  // /sys/kernel/debug/tracing only, so here it never traces open(): the
  // workload is what it does trace, openat from threads and against a dirfd.
  const paths = [path(true), path(false), path(true), path(false), path(true)];
  const rel = paths.map((p) => p.slice(dir.length + 1));
  const held = new Held(['openat', paths[0], '0', 'openat', paths[1], '0', 'openat', rel[2], '1101', 'openat', rel[3], '0',
    'thread', paths[4], 'at', 'openat', dir, rel[0], '0']);
  const ours = await trace(['-p', String(held.pid)]);
  // Line-buffered, the C tool prints its header once attached, as ours does.
  const theirs = new RunningTool(...withoutTapHooks('/usr/bin/stdbuf', ['-oL', reference, '-p', String(held.pid)]));
  await theirs.waitForLine(/^PID/);
  await perfBufferOpen(theirs);
  await held.release();
  // the header and 7 opens each, in whatever order they come (below)
  for (const [name, tool] of [['ours', ours], ['the C tool', theirs]] as const) {
    await tool.waitForLine(() => tool.lines.length >= 8).catch((err: Error) => {
      throw new Error(`${name}: ${err.message}`);
    });
  }
  const theirsDone = await theirs.stop('SIGINT');
  const oursDone = await ours.stop();
  const theirLines = theirsDone.stdout.split('\n').filter((l) => l !== '');
  const ourLines = oursDone.stdout.split('\n').filter((l) => l !== '');
  t.equal(theirLines.length, 8, `the C tool saw the header and every open:\n${theirsDone.stdout}${theirsDone.stderr}`);
  // the thread's open races the main thread's: each tool may print it elsewhere among them
  const sorted = (lines: string[]): string[] => [lines[0], ...lines.slice(1).sort()];
  t.same(sorted(ourLines), sorted(theirLines), 'the same lines, byte for byte');
});

t.test('without open() (arm64, riscv64) or openat2() (before 5.6) the other programs load and attach', async (t) => {
  for (const missing of ['open', 'openat2']) {
    const { obj, plan } = loadWithPlans('opensnoop', [tracepointPlan((s) => s !== missing)], (candidate) => {
      candidate.setConfig(kernelConfig(parseOptions([])));
    });
    const other = missing === 'open' ? 'openat2' : 'open';
    t.same(plan.programs, [`enter_${missing === 'open' ? 'openat' : 'open'}`, `enter_${missing === 'open' ? 'openat2' : 'openat'}`, 'exit_open_calls'],
      `no ${missing} program: the other syscalls' entries and the one exit program`);
    t.same(plan.alsoAttached, { exit_open_calls: [`syscalls/sys_exit_${other}`] }, `the exit program also at ${other}'s exit, not at ${missing}'s`);
    obj.close();
  }
});

t.test('nothing is left loaded in the kernel', async (t) => {
  await sleep(200);
  t.same(await leftovers(before, 'opensnoop'), []);
});

t.test('--path shows only opens under the prefixes: absolute as given, relative only with -F', async (t) => {
  const sub = join(dir, `under${++counter}`);
  const other = join(dir, `other${++counter}`);
  mkdirSync(sub);
  mkdirSync(other);
  const inSub = join(sub, 'a');
  const inOther = join(other, 'b');
  writeFileSync(inSub, '');
  writeFileSync(inOther, '');
  const relSub = `${sub.slice(dir.length + 1)}/a`;
  const byPrefix = await trace(['--path', `${sub}/`, '--path', '/nonexistent-prefix/']);
  const full = await trace(['-F', '--path', `${sub}/`]);
  const relative = await trace(['--path', relSub.slice(0, -1)]);
  const pid = open(['openat', inOther, '0', 'openat', inSub, '0', 'openat', relSub, '0', 'openat', 'other-missing', '0', 'openat', join(dir, 'last-missing'), '0']);
  t.equal(await byPrefix.waitForLine(by(pid, inSub)), line(pid, 4, 0, inSub));
  t.equal(await full.waitForLine(by(pid, inSub)), line(pid, 4, 0, inSub));
  const fullRelative = line(pid, 5, 0, `${dir}/${relSub}`); // the same path as inSub, opened relative: fd 5
  t.equal(await full.waitForLine((l) => l === fullRelative), fullRelative, 'a relative path, matched on its full path');
  t.equal(await relative.waitForLine(by(pid, relSub)), line(pid, 5, 0, relSub), 'without -F a relative prefix matches the path as given');
  // the tools have seen the helper's last open once another process's marker arrives
  const marker = join(sub, 'marker');
  writeFileSync(marker, '');
  const markerPid = open(['openat', marker, '0']);
  for (const tool of [byPrefix, full]) await tool.waitForLine(by(markerPid, marker));
  t.same(byPrefix.lines.filter((l) => l.startsWith(left(pid, 6))), [line(pid, 4, 0, inSub)], 'nothing else of the helper');
  t.same(full.lines.filter((l) => l.startsWith(left(pid, 6))), [line(pid, 4, 0, inSub), line(pid, 5, 0, `${dir}/${relSub}`)], 'nothing else with -F');
  for (const tool of [byPrefix, full, relative]) t.equal((await tool.stop()).code, 0);
});

t.test('--exec runs the command and traces only it, from its first open to its exit status', async (t) => {
  const here = path(true);
  const missing = path(false);
  const other = path(true);
  const tool = startTool('opensnoop', ['-F', '--exec', opener, 'openat', here, '0', 'thread', missing, 'openat', 'rel-missing', '0']);
  const otherPid = open(['openat', other, '0']);
  const done = await tool.finished();
  t.equal(done.code, 0, 'ends when the command exits, status 0');
  const lines = done.stdout.split('\n').filter(Boolean);
  t.match(lines[0], HEADER);
  const pid = Number(/^(\d+) /.exec(lines.find((l) => l.endsWith(here)) ?? '')?.[1]);
  const ours = lines.slice(1);
  t.ok(ours.every((l) => l.startsWith(left(pid, 6))), 'only the command\'s process');
  t.ok(ours.some((l) => / \/\S*ld-linux\S*\.so\S*$|\/etc\/ld\.so\.cache$/.test(l)), 'from its first instruction: the dynamic loader\'s opens are there');
  t.ok(ours.includes(line(pid, 3, 0, here)), 'its open');
  t.ok(ours.includes(line(pid, -1, 2, missing)), 'its thread\'s open');
  t.ok(ours.includes(line(pid, -1, 2, `${process.cwd()}/rel-missing`)), 'its relative open, in its working directory');
  t.notOk(lines.some((l) => l.endsWith(other)), 'another process is not shown');
  t.notOk(otherPid === pid);
  t.equal(done.stderr, `opensnoop: ${opener} openat ${here} 0 thread ${missing} openat rel-missing 0 exited with status 0\n`);
  const failing = startTool('opensnoop', ['--exec', '/bin/sh', '-c', 'exit 7']);
  const failed = await failing.finished();
  t.equal(failed.code, 0);
  t.equal(failed.stderr, 'opensnoop: /bin/sh -c exit 7 exited with status 7\n', 'its exit status in the summary');
});

/**
 * -c's helper: an open made by the syscall instruction itself, in a function
 * built with frame pointers, so the kernel's walk of the user stack is known:
 * past the syscall's own address, main, then main's caller in the C library.
 * A process that has exited by the time its event is read shows addresses.
 */
const CALLERS_SOURCE = String.raw`
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
__attribute__((noinline)) static long open_here(const char *path) {
  long ret;
  __asm__ volatile ("syscall" : "=a"(ret) : "0"((long)SYS_openat), "D"((long)AT_FDCWD), "S"(path), "d"((long)O_RDONLY) : "rcx", "r11", "memory");
  return ret;
}
/* it stays a second: its names are read from its maps while it runs */
int main(int argc, char **argv) { long fd = open_here(argv[1]); sleep(1); return fd < 0; }
`;

t.test('-c shows the calling functions under the line, named from the process\'s own symbol tables', async (t) => {
  const helper = join(dir, 'callers-helper');
  const built = spawnSync('cc', ['-O0', '-fno-omit-frame-pointer', '-o', helper, '-x', 'c', '-'], { input: CALLERS_SOURCE, encoding: 'utf8' });
  t.equal(built.status, 0, `the helper builds (x86-64 assembly): ${built.stderr}`);
  const here = path(true);
  const done = await startTool('opensnoop', ['-c', '--path', here, '--exec', helper, here]).finished();
  t.equal(done.code, 0, done.stderr);
  const lines = done.stdout.split('\n').filter(Boolean);
  t.equal(lines[0], 'PID    COMM              FD ERR PATH/CALLER');
  const pid = Number(/^(\d+) /.exec(lines[1] ?? '')?.[1]);
  t.equal(lines[1], line(pid, 3, 0, here, 'callers-helper'));
  const indent = ' '.repeat('PID    COMM              FD ERR '.length);
  t.equal(lines[2], `${indent}main`, 'the first caller: main, by the helper\'s .symtab');
  t.match(lines[3], new RegExp(`^${indent}(__libc_start_call_main|__libc_start_main\\S*|/\\S*libc\\.so\\.6\\+0x[0-9a-f]+)$`), 'then main\'s caller, in the C library');
  t.equal(lines.length, 4, 'nothing else');
  const json = await startTool('opensnoop', ['-c', '--json', '--path', here, '--exec', helper, here]).finished();
  const event = JSON.parse(json.stdout.split('\n')[0]) as { callers: string[] };
  t.equal(event.callers[0], 'main', '--json: callers');
  t.equal(event.callers.length, 2);
});
