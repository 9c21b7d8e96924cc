// ext4slower against the real kernel. A small C program does known reads,
// writes, opens and fsyncs on a file of the ext4 root filesystem and on a
// tmpfs file, and the exact lines are asserted. Upstream's C ext4slower
// cannot attach on this machine (no kprobes, fentry refused), so the
// expected values are stated here: the offset is where each operation
// starts, BYTES what it returned, an fsync covers the whole file (LL_MAX).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { escapeText } from '../common/escape.js';
import { EventStream } from '../common/events.js';
import { left } from '../common/format.js';
import { loadWithPlans } from '../common/plan.js';
import { attachPlans, decodeEvent, eventDecoder, kernelConfig, parseOptions as parseFsslower, renderLine, SYSCALLS } from '../tools/fsslower.js';
import {
  kernelSnapshot, leftovers, runTool, sleep, startAttached, startTool, type RunningTool,
} from './helpers.js';

const OPS_SOURCE = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static char buf[8192];
static long page;
static int uffd;
static int delay_ms;

static void check(long result, const char *what) { if (result < 0) { perror(what); exit(1); } }

/* Resolves the one page fault on the registered page, delay_ms late. */
static void *serve_fault(void *unused) {
  struct pollfd p = { .fd = uffd, .events = POLLIN };
  struct uffd_msg msg;
  check(poll(&p, 1, -1), "poll");
  check(read(uffd, &msg, sizeof(msg)), "read uffd");
  usleep(delay_ms * 1000);
  struct uffdio_copy copy = { .dst = msg.arg.pagefault.address & ~(page - 1), .src = (unsigned long)buf, .len = page };
  check(ioctl(uffd, UFFDIO_COPY, &copy), "UFFDIO_COPY");
  return unused;
}

int main(int argc, char **argv) {
  char go;
  memset(buf, 'x', sizeof(buf));
  if (read(0, &go, 1) != 1) return 2; /* held until the tracers are attached */
  if (argc == 4 && !strcmp(argv[1], "ops")) {
    int shm = open(argv[3], O_CREAT | O_RDWR | O_TRUNC, 0644);
    check(shm, "open shm");
    check(write(shm, buf, 3000), "write shm");
    check(fsync(shm), "fsync shm");
    check(pread(shm, buf, 3000, 0), "pread shm");
    close(shm);
    int fd = open(argv[2], O_CREAT | O_RDWR | O_TRUNC, 0644);
    check(fd, "open");
    check(lseek(fd, 102400, SEEK_SET), "lseek");
    check(write(fd, buf, 5000), "write");
    check(pwrite(fd, buf, 3333, 410112), "pwrite");
    check(fsync(fd), "fsync");
    check(lseek(fd, 204800, SEEK_SET), "lseek");
    check(read(fd, buf, 4000), "read");
    check(pread(fd, buf, 1111, 308223), "pread");
    struct iovec iov = { .iov_base = buf, .iov_len = 2222 };
    check(lseek(fd, 51200, SEEK_SET), "lseek");
    check(preadv2(fd, &iov, 1, -1, 0), "preadv2");
    check(fdatasync(fd), "fdatasync");
    close(fd);
    return 0;
  }
  if (argc == 3 && !strcmp(argv[1], "int80")) {
    /* ia32's lseek (19) by int 0x80, rdi also holding the descriptor: read by
       x86-64's numbers and registers, it would be a readv (19) of the file */
    int fd = open(argv[2], O_CREAT | O_RDWR | O_TRUNC, 0644);
    check(fd, "open");
    check(write(fd, buf, 600), "write");
#ifdef __x86_64__
    long ret;
    __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(19L), "b"((long)fd), "c"(0L), "d"(0L), "D"((long)fd)
                      : "r8", "r9", "r10", "r11", "memory");
    check(ret, "int 0x80 lseek");
#else
    return 3;
#endif
    check(pread(fd, buf, 10, 500), "pread");
    close(fd);
    return 0;
  }
  if (argc == 4 && !strcmp(argv[1], "slow")) {
    /* A write whose source page is served by userfaultfd after a delay: slow in every attach mode. */
    pthread_t server;
    delay_ms = atoi(argv[3]);
    page = sysconf(_SC_PAGESIZE);
    uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
    check(uffd, "userfaultfd");
    struct uffdio_api api = { .api = UFFD_API };
    check(ioctl(uffd, UFFDIO_API, &api), "UFFDIO_API");
    char *area = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) return 1;
    struct uffdio_register reg = { .range = { .start = (unsigned long)area, .len = page }, .mode = UFFDIO_REGISTER_MODE_MISSING };
    check(ioctl(uffd, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER");
    check(pthread_create(&server, NULL, serve_fault, NULL), "pthread_create");
    int fd = open(argv[2], O_CREAT | O_RDWR | O_TRUNC, 0644);
    check(fd, "open");
    check(pwrite(fd, area, page, 0), "slow pwrite");
    check(pread(fd, buf, 100, 0), "pread");
    pthread_join(server, NULL);
    close(fd);
    return 0;
  }
  return 2;
}
`;

function filesystemType(path: string): string {
  // the first line: the mount a path resolves to (a mount point may have several stacked)
  const r = spawnSync('findmnt', ['-n', '-o', 'FSTYPE', '-T', path], { encoding: 'utf8' });
  return r.stdout.split('\n')[0].trim();
}

/** As ext4slower parses them (fsslower -t ext4). */
const parseOptions = (argv: string[]) => parseFsslower(argv, 'ext4slower');

const before = kernelSnapshot();
const work = mkdtempSync('/var/tmp/ext4slower-test-');
t.teardown(() => rmSync(work, { recursive: true, force: true }));
if (filesystemType(work) !== 'ext4') throw new Error(`${work} is not on ext4 (${filesystemType(work)}): the test needs the ext4 root`);
if (filesystemType('/dev/shm') !== 'tmpfs') throw new Error('/dev/shm is not tmpfs');
const OPS = join(work, 'e4ops');
writeFileSync(`${OPS}.c`, OPS_SOURCE);
const cc = spawnSync('cc', ['-O2', '-Wall', '-Werror', '-o', OPS, `${OPS}.c`, '-lpthread'], { encoding: 'utf8' });
if (cc.status !== 0) throw new Error(`cannot compile the test program: ${cc.stderr}`);

/** e4ops started and held before its first operation, so its pid is known to the tracers. */
function startOps(args: string[]): { pid: number; go(): Promise<void> } {
  const child = spawn(OPS, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return {
    pid: child.pid!,
    async go() {
      child.stdin.end('g');
      const code = await exited;
      if (code !== 0) throw new Error(`e4ops ${args.join(' ')} failed (${code}): ${stderr}`);
    },
  };
}

const escapeRegExp = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');

/** The whole line for one operation of e4ops: latency is the only value not known in advance. */
function row(pid: number, type: string, bytes: number | string, offKb: number, file: string): RegExp {
  return new RegExp(
    `^\\d\\d:\\d\\d:\\d\\d ${left('e4ops', 16)} ${left(pid, 7)} ${type} ${left(bytes, 7)} ${left(offKb, 8)} ` +
    `[ ]{0,3}\\d+\\.\\d\\d ${escapeRegExp(file)}$`,
  );
}

const pidColumn = (line: string): string => line.slice(26, 33).trim();

async function attachedQuietly(args: string[]): Promise<RunningTool> {
  // JSON has no header: -v says when the programs are attached.
  const tool = startTool('ext4slower', ['-v', ...args]);
  for (let waited = 0; !/^ext4slower: using plan /m.test(tool.stderr); waited += 20) {
    if (waited > 15000 || tool.proc.exitCode !== null) throw new Error(`not attached: ${tool.stderr.slice(-2000)}`);
    await sleep(20);
  }
  return tool;
}

// The operations e4ops does on its ext4 file, in order: [T, BYTES, offset in bytes].
// Offsets are chosen so that OFF_KB shows KiB rounded down (400, 300), not kB.
const EXPECTED: [string, number | 'LL_MAX', number][] = [
  ['O', 0, 0],
  ['W', 5000, 102400],
  ['W', 3333, 410112],
  ['S', 'LL_MAX', 0],
  ['R', 4000, 204800],
  ['R', 1111, 308223],
  ['R', 2222, 51200],
  ['S', 'LL_MAX', 0],
];

t.test('each read, write, open and fsync on ext4 gives its exact line in every format; tmpfs gives none', async (t) => {
  // A hostile name: the lines must stay one per operation, escaped; JSON keeps the bytes.
  const rawName = `ops, "x" ${process.pid}\n\x1b[1m.dat`;
  const ext4File = join(work, rawName);
  const shmFile = `/dev/shm/ext4slower-test-${process.pid}.dat`;
  t.teardown(() => rmSync(shmFile, { force: true }));
  const ops = startOps(['ops', ext4File, shmFile]);
  const pid = ops.pid;
  const header = /^Tracing ext4 operations\.\.\. Hit Ctrl-C to end\.$/;
  const [all, byPid, csv, bccCsv, json] = await Promise.all([
    startAttached('ext4slower', ['0'], header),
    startAttached('ext4slower', ['-p', String(pid), '0'], header),
    startAttached('ext4slower', ['-c', '0'], /^ENDTIME_ns,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE$/),
    startAttached('ext4slower', ['-j', '0'], /^ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE$/),
    attachedQuietly(['--json', '-p', String(pid), '0']),
  ]);
  const startNs = process.hrtime.bigint();
  await ops.go();
  const endNs = process.hrtime.bigint();

  const shown = escapeText(Buffer.from(rawName));
  t.equal(shown, `ops, "x" ${process.pid}\\n\\x1b[1m.dat`);
  const rows = EXPECTED.map(([type, bytes, offset]) => row(pid, type, bytes, Math.floor(offset / 1024), shown));
  await all.waitForLine(rows[rows.length - 1]);
  for (const tool of [byPid, csv, bccCsv, json]) await tool.waitForLine((l) => l.includes('LL_MAX') || l.includes('"bytes":null'));
  await sleep(200);
  const finished = await Promise.all([all, byPid, csv, bccCsv, json].map((tool) => tool.stop('SIGINT')));
  for (const done of finished) t.equal(done.code, 0, 'Ctrl-C exits 0');

  const ofFile = (lines: string[]): string[] => lines.filter((l) => pidColumn(l) === String(pid) && l.endsWith(` ${shown}`));
  const mine = ofFile(all.lines);
  t.equal(mine.length, EXPECTED.length, `one line per operation:\n${mine.join('\n')}`);
  mine.forEach((line, i) => t.match(line, rows[i], `${EXPECTED[i][0]} ${EXPECTED[i][1]} at ${EXPECTED[i][2]}`));
  t.notOk(all.lines.some((l) => l.endsWith(` ${basename(shmFile)}`)), 'nothing for the tmpfs file');
  t.equal(finished[0].stderr, '', 'nothing on stderr');

  const pidLines = byPid.lines.slice(2);
  t.ok(pidLines.length >= EXPECTED.length, '-p shows the operations');
  t.same(pidLines.filter((l) => pidColumn(l) !== String(pid)), [], '-p shows that process only');
  t.same(ofFile(pidLines).map((l) => l.replace(/^\S+/, '').replace(/\d+\.\d\d /, '')),
    mine.map((l) => l.replace(/^\S+/, '').replace(/\d+\.\d\d /, '')), '-p: the same lines');

  const csvName = `"ops, ""x"" ${process.pid}\\n\\x1b[1m.dat"`;
  for (const [tool, scale] of [[csv, 1n], [bccCsv, 1000n]] as const) {
    const lines = tool.lines.filter((l) => l.includes(`,e4ops,${pid},`) && l.endsWith(`,${csvName}`));
    t.equal(lines.length, EXPECTED.length, `CSV: one line per operation:\n${lines.join('\n')}`);
    lines.forEach((line, i) => {
      const [type, bytes, offset] = EXPECTED[i];
      const m = new RegExp(`^(\\d+),e4ops,${pid},${type},${bytes},${offset},(\\d+),${escapeRegExp(csvName)}$`).exec(line);
      t.ok(m, `CSV line ${line}`);
      if (!m) return;
      const end = BigInt(m[1]);
      t.ok(end >= startNs / scale && end <= endNs / scale, 'ENDTIME on the monotonic clock, while e4ops ran');
      t.ok(BigInt(m[2]) <= (endNs - startNs) / 1000n, 'LATENCY_us within the run');
    });
  }

  const objects = json.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(objects.every((o) => o.pid === pid), '--json -p: that process only');
  const ofJsonFile = objects.filter((o) => o.file === rawName);
  t.same(ofJsonFile.map((o) => [o.comm, o.type, o.bytes, o.offset]),
    EXPECTED.map(([type, bytes, offset]) => ['e4ops', type, bytes === 'LL_MAX' ? null : bytes, offset]), 'JSON: exact values and name');
  t.ok(ofJsonFile.every((o) => typeof o.latency_ms === 'number' && o.latency_ms > 0), 'latency_ms');
  const plans = attachPlans(parseOptions([])).map((p) => p.name);
  t.match(finished[4].stderr, new RegExp(`^ext4slower: using plan (${plans.join('|')})$`, 'm'), '-v names the attach mode');
  const chosen = /^ext4slower: using plan (.+)$/m.exec(finished[4].stderr)![1];
  for (const earlier of plans.slice(0, plans.indexOf(chosen))) {
    t.match(finished[4].stderr, new RegExp(`^ext4slower: plan ${earlier} (failed|skipped): .+$`, 'm'), `-v says why not ${earlier}`);
  }
});

t.test('the threshold filters: a write held 800 ms passes 300 ms, nothing passes 10000 ms', async (t) => {
  const file = join(work, 'slow.dat');
  const ops = startOps(['slow', file, '800']);
  const [over300, over10000] = await Promise.all([
    startAttached('ext4slower', ['300'], /^Tracing ext4 operations slower than 300 ms\.\.\. Hit Ctrl-C to end\.$/),
    startAttached('ext4slower', ['-m', '10000'], /^Tracing ext4 operations slower than 10000 ms\.\.\. Hit Ctrl-C to end\.$/),
  ]);
  const started = Date.now();
  await ops.go();
  const took = Date.now() - started;
  const slowWrite = await over300.waitForLine(row(ops.pid, 'W', 4096, 0, 'slow.dat'));
  await sleep(200);
  await over300.stop();
  await over10000.stop();
  const latency = Number(/(\d+\.\d\d) slow\.dat$/.exec(slowWrite)![1]);
  t.ok(latency >= 800 && latency <= took, `LAT(ms) ${latency}: at least the 800 ms hold, at most the ${took} ms run`);
  t.same(over300.lines.filter((l) => pidColumn(l) === String(ops.pid)), [slowWrite], 'only the slow write, not the fast open and read');
  t.same(over10000.lines.filter((l) => pidColumn(l) === String(ops.pid)), [], 'nothing slower than 10 s');
});

t.test('a 32-bit syscall (int 0x80) is not read with x86-64\'s numbers', async (t) => {
  const ops = startOps(['int80', join(work, 'int80.dat')]);
  const tool = await startAttached('ext4slower', ['-p', String(ops.pid), '0'], /^Tracing ext4 operations\.\.\. Hit Ctrl-C to end\.$/);
  await ops.go();
  await tool.waitForLine(row(ops.pid, 'R', 10, 0, 'int80.dat'));
  await sleep(200);
  const done = await tool.stop('SIGINT');
  t.equal(done.code, 0);
  t.equal(done.stderr, '', 'nothing on stderr');
  const lines = tool.lines.filter((l) => pidColumn(l) === String(ops.pid));
  const expected = [row(ops.pid, 'O', 0, 0, 'int80.dat'), row(ops.pid, 'W', 600, 0, 'int80.dat'), row(ops.pid, 'R', 10, 0, 'int80.dat')];
  // ia32's lseek (19) read as x86-64's readv (19) would add "R 0" at offset 600
  t.equal(lines.length, expected.length, `the open, write and pread only:\n${lines.join('\n')}`);
  lines.forEach((line, i) => t.match(line, expected[i]));
});

t.test('the syscall tracepoints (the mode off x86-64) see the same operations, each on its exact line', async (t) => {
  const plan = attachPlans(parseOptions([])).find((p) => p.name === 'syscall tracepoints')!;
  const file = join(work, 'tracepoints.dat');
  const shmFile = `/dev/shm/ext4slower-tracepoints-${process.pid}.dat`;
  t.teardown(() => rmSync(shmFile, { force: true }));
  const ops = startOps(['ops', file, shmFile]);
  let stream: EventStream | undefined;
  const { obj } = loadWithPlans('ext4slower', [plan], (candidate) => {
    candidate.setConfig(kernelConfig(parseOptions(['-p', String(ops.pid), '0'])));
    stream = new EventStream(candidate);
  }, 'fsslower');
  t.same(obj.programs().filter((p) => p.section.startsWith('tracepoint/')).length, 2 * SYSCALLS.length);
  const decoder = eventDecoder(obj.struct('event'));
  const lines: string[] = [];
  const onEvent = (view: DataView, offset: number): void => {
    lines.push(renderLine(decodeEvent(decoder, view, offset)));
  };
  stream!.start(onEvent, () => {});
  await ops.go();
  for (let waited = 0; lines.length < EXPECTED.length && waited < 5000; waited += 20) await sleep(20);
  stream!.stop(onEvent);
  obj.close();
  t.equal(lines.length, EXPECTED.length, `one line per operation on the ext4 file, none for tmpfs:\n${lines.join('\n')}`);
  lines.forEach((line, i) => {
    const [type, bytes, offset] = EXPECTED[i];
    t.match(line, row(ops.pid, type, bytes, Math.floor(offset / 1024), 'tracepoints.dat'), `${type} ${bytes} at ${offset}`);
  });
});

t.test('-d ends the run by itself with status 0', async (t) => {
  const r = runTool('ext4slower', ['-d', '1', '10000']);
  t.equal(r.code, 0);
  t.equal(r.stdout.split('\n')[0], 'Tracing ext4 operations slower than 10000 ms for 1 secs.');
  t.equal(r.stderr, '');
});

t.test('usage errors: one line, status 2', async (t) => {
  for (const args of [['-p', 'abc'], ['1', '2'], ['-j', '--json'], ['x']]) {
    const r = runTool('ext4slower', args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, /^ext4slower: .+\n$/, 'one line');
    t.equal(r.stdout, '');
  }
});

t.test('nothing is left loaded in the kernel', async (t) => {
  // leftovers() waits for the kernel to free them: the raw syscall
  // tracepoints' programs go about 200 ms after the tool has exited
  t.same(await leftovers(before, 'ext4slower'), []);
});
