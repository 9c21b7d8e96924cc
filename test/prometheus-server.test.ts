// --prometheus end to end, scraped by the real Prometheus server (Debian's
// prometheus, started here on 127.0.0.1 with its own storage and a 1 s
// scrape interval): every tool exports at once, a marked workload runs, and
// Prometheus' HTTP API must give back exactly what was done, up == 1, and a
// median latency inside the bucket the I/O really took.
//
// The latency is made known, not hoped for: the disk written to (and the
// file system fsynced) is a loop device whose backing file lives on a second
// ext4 that the workload freezes (FIFREEZE) before each I/O and thaws
// DELAY_MS later, so each write request and each fsync takes DELAY_MS and a
// little more, inside one log2 bucket. Also the cgroup label
// (--prometheus-cgroups), scraped directly. Host only (a TCG guest is too slow
// for its fixed delays): the name does not end in -e2e.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { log2Slot } from '../common/exposition.js';
import { unseenCompletions } from './bio-helpers.js';
import { cgroup2Root, sleep, startTool, type RunningTool } from './helpers.js';
import { get } from 'node:http';

/** Operations of each kind the workload does. */
const N = 20;
/** How long each I/O waits for the thaw: the middle of the bucket [16.384, 32.768) ms. */
const DELAY_MS = 24;
/** One I/O every PERIOD_MS, so that the I/O spans several scrapes (rate() needs two samples of it). */
const PERIOD_MS = 250;

const LOAD_SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int frozen_fd;
static int delay_ms;

static void check(long result, const char *what) { if (result < 0) { perror(what); exit(1); } }

static void *thaw_later(void *unused) {
  usleep(delay_ms * 1000);
  check(ioctl(frozen_fd, FITHAW, 0), "FITHAW");
  return unused;
}

static double now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }

/* exit | openfail N PATH | bio DEVICE FROZEN_DIR N DELAY_MS PERIOD_MS | fsync FILE FROZEN_DIR N DELAY_MS PERIOD_MS
 * (fsync waits for a byte on stdin first, so that its pid can be given to the tracer) */
int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "exit")) return 0;
  if (argc == 4 && !strcmp(argv[1], "openfail")) {
    for (int n = atoi(argv[2]); n > 0; n--)
      if (open(argv[3], O_RDONLY) >= 0 || errno != ENOENT) return 1;
    return 0;
  }
  if (argc == 7 && (!strcmp(argv[1], "bio") || !strcmp(argv[1], "fsync"))) {
    int fsync_mode = !strcmp(argv[1], "fsync");
    int count = atoi(argv[4]), period_ms = atoi(argv[6]);
    char go;
    void *buf;
    delay_ms = atoi(argv[5]);
    if (fsync_mode && read(0, &go, 1) != 1) return 3;
    frozen_fd = open(argv[3], O_RDONLY | O_DIRECTORY);
    check(frozen_fd, "open the frozen file system");
    int fd = open(argv[2], fsync_mode ? O_RDWR | O_CREAT : O_RDWR | O_DIRECT, 0644);
    check(fd, "open");
    if (posix_memalign(&buf, 4096, 4096)) return 1;
    memset(buf, 0x5a, 4096);
    for (int i = 0; i < count; i++) {
      double start = now_ms();
      pthread_t thawer;
      if (fsync_mode) check(pwrite(fd, buf, 4096, (off_t)i * 4096), "pwrite");
      check(ioctl(frozen_fd, FIFREEZE, 0), "FIFREEZE");
      if (pthread_create(&thawer, NULL, thaw_later, NULL)) return 1;
      double began = now_ms();
      if (fsync_mode) check(fsync(fd), "fsync");
      else check(pwrite(fd, buf, 4096, (off_t)i * 4096), "O_DIRECT pwrite");
      printf("%.3f\n", now_ms() - began);
      pthread_join(thawer, NULL);
      double left = period_ms - (now_ms() - start);
      if (left > 0) usleep(left * 1000);
    }
    return 0;
  }
  return 2;
}
`;

function run(file: string, args: string[]): string {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.status}): ${r.stderr.trim()}`);
  return r.stdout;
}

const work = mkdtempSync('/var/tmp/ebpf-tools-prometheus-');
const cleanups: (() => void)[] = [];
t.teardown(() => {
  for (const cleanup of cleanups.reverse()) {
    try {
      cleanup();
    } catch {
      // the rest still runs
    }
  }
  rmSync(work, { recursive: true, force: true });
});

/** A loop device on a fresh sparse file of `mib` MiB at `file`; returns the device. */
function loopDevice(file: string, mib: number): string {
  writeFileSync(file, '');
  truncateSync(file, mib << 20);
  const device = run('losetup', ['--find', '--show', file]).trim();
  cleanups.push(() => run('losetup', ['-d', device]));
  return device;
}

function mountExt4(device: string, dir: string, options: string[] = []): void {
  run('mkfs.ext4', ['-q', device]);
  mkdirSync(dir);
  run('mount', [...options, device, dir]);
  cleanups.push(() => run('umount', [dir]));
}

// The frozen file system, and on it the backing files of the disk written
// raw and of the ext4 fsynced (mounted without barriers: its fsyncs are
// its writes, no cache flush through to the real disk).
const frozen = join(work, 'frozen');
mountExt4(loopDevice(join(work, 'frozen.img'), 256), frozen);
const rawDevice = loopDevice(join(frozen, 'raw.img'), 32);
const rawDisk = rawDevice.replace('/dev/', '');
const synced = join(work, 'synced');
mountExt4(loopDevice(join(frozen, 'synced.img'), 32), synced, ['-o', 'nobarrier']);
// a run killed between freeze and thaw must not leave it frozen (nothing could unmount then)
cleanups.push(() => spawnSync('fsfreeze', ['-u', frozen]));

// One static program (no dynamic loader, so no opens but its own) under four
// unique command names, one per kind of work.
const tag = (process.pid % 100000).toString(36);
writeFileSync(join(work, 'load.c'), LOAD_SOURCE);
const built = join(work, 'load');
run('cc', ['-O2', '-Wall', '-Werror', '-static', '-o', built, join(work, 'load.c'), '-lpthread']);
const program = (kind: string): { comm: string; path: string } => {
  const comm = `pm${kind}${tag}`;
  const path = join(work, comm);
  copyFileSync(built, path);
  run('chmod', ['755', path]);
  return { comm, path };
};
const execer = program('x');
const opener = program('o');
const writer = program('w');
const syncer = program('s');

/** A free TCP port on 127.0.0.1 for Prometheus itself (its log does not say which port 0 gave). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    }).on('error', reject);
  });
}

interface Sample { metric: Record<string, string>; value: [number, string] }

class Prometheus {
  private log = '';
  private constructor(private readonly proc: ChildProcess, private readonly base: string) {
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.log = (this.log + chunk).slice(-20000)));
  }

  /** Starts the server scraping `targets` (job name -> host:port) every second. */
  static async start(targets: Record<string, string>): Promise<Prometheus> {
    const config = join(work, 'prometheus.yml');
    const jobs = Object.entries(targets).map(([job, target]) =>
      `  - job_name: ${job}\n    static_configs:\n      - targets: ['${target}']\n`).join('');
    writeFileSync(config, `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n${jobs}`);
    const port = await freePort();
    const proc = spawn('prometheus', [
      `--config.file=${config}`, `--storage.tsdb.path=${join(work, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.on('error', (err) => {
      throw new Error(`prometheus cannot start (Debian package prometheus; scripts/install-test-deps.sh): ${err.message}`);
    });
    const server = new Prometheus(proc, `http://127.0.0.1:${port}`);
    cleanups.push(() => proc.kill('SIGKILL'));
    await server.until('ready', async () => (await fetch(`${server.base}/-/ready`).catch(() => undefined))?.ok === true, 30000);
    return server;
  }

  /** The instant vector of `query`, now. */
  async query(query: string): Promise<Sample[]> {
    const response = await fetch(`${this.base}/api/v1/query?query=${encodeURIComponent(query)}`);
    const body = await response.json() as { status: string; error?: string; data: { result: Sample[] } };
    if (body.status !== 'success') throw new Error(`${query}: ${body.error}`);
    return body.data.result;
  }

  /** The one value of `query` (undefined when it gives no sample; an error when several). */
  async value(query: string): Promise<number | undefined> {
    const result = await this.query(query);
    if (result.length > 1) throw new Error(`${query} gives ${result.length} series: ${JSON.stringify(result)}`);
    return result.length ? Number(result[0].value[1]) : undefined;
  }

  /** Waits until `done` holds, or fails with what is known. */
  async until(what: string, done: () => Promise<boolean>, ms = 20000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await done())) {
      if (this.proc.exitCode !== null || Date.now() > deadline) {
        throw new Error(`Prometheus: ${what} not reached in ${ms} ms; its log:\n${this.log}`);
      }
      await sleep(250);
    }
  }

  async stop(): Promise<number | null> {
    if (this.proc.exitCode !== null) return this.proc.exitCode;
    const exited = new Promise<number | null>((resolve) => this.proc.on('close', resolve));
    this.proc.kill('SIGTERM');
    return exited;
  }
}

/** Starts a tool in exporter mode on a port of its choosing; resolves with it and the host:port it serves. */
async function exporting(tool: string, args: string[]): Promise<{ tool: RunningTool; target: string }> {
  const running = startTool(tool, [...args, '--prometheus', '127.0.0.1:0']);
  await running.waitForStderr(/serving metrics at \S+\n/);
  const url = new RegExp(`^${tool}: serving metrics at http://(127\\.0\\.0\\.1:\\d+)/metrics$`, 'm').exec(running.stderr);
  if (!url) throw new Error(`${tool}: unexpected stderr ${running.stderr}`);
  return { tool: running, target: url[1] };
}

/** The workload's held fsync run, released by go(); resolves with the latencies it measured (ms). */
function heldSyncer(): { pid: number; go(): Promise<number[]> } {
  const child = spawn(syncer.path, ['fsync', join(synced, 'synced.dat'), frozen, String(N), String(DELAY_MS), String(PERIOD_MS)],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  cleanups.push(() => child.kill('SIGKILL'));
  return {
    pid: child.pid!,
    async go() {
      child.stdin.end('g');
      const code = await exited;
      if (code !== 0) throw new Error(`${syncer.comm} fsync failed (${code}): ${stderr}`);
      return stdout.trim().split('\n').map(Number);
    },
  };
}

/** Runs the bio workload; resolves with the latencies it measured (ms). */
async function writeRaw(): Promise<number[]> {
  const child = spawn(writer.path, ['bio', rawDevice, frozen, String(N), String(DELAY_MS), String(PERIOD_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`${writer.comm} bio failed (${code}): ${stderr}`);
  return stdout.trim().split('\n').map(Number);
}

/** The bounds (s) of the log2 bucket a latency in ms falls in, as the kernel's slots give them. */
function bucketOf(ms: number): [number, number] {
  const slot = log2Slot(Math.floor(ms * 1000));
  return [2 ** slot / 1e6, 2 ** (slot + 1) / 1e6];
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

t.test('every tool scraped by Prometheus: exact counts, up == 1, the median latency in the bucket the I/O took', async (t) => {
  t.setTimeout(240000);
  const held = heldSyncer();
  const tools = {
    execsnoop: await exporting('execsnoop', ['-x']),
    opensnoop: await exporting('opensnoop', []),
    biolatency: await exporting('biolatency', []),
    biosnoop: await exporting('biosnoop', []),
    ext4slower: await exporting('ext4slower', ['-p', String(held.pid), '10']),
  };
  const prometheus = await Prometheus.start(Object.fromEntries(Object.entries(tools).map(([job, { target }]) => [job, target])));
  t.teardown(() => prometheus.stop());
  const jobs = Object.keys(tools);
  await prometheus.until('every target up', async () => (await prometheus.query('up == 1')).length === jobs.length);

  for (let i = 0; i < N; i++) run(execer.path, ['exit']);
  run(opener.path, ['openfail', String(N), join(work, `missing-${tag}`)]);
  const bioLatencies = await writeRaw();
  const fsyncLatencies = await held.go();
  t.comment(`I/O measured by the workload: write median ${median(bioLatencies)} ms, fsync median ${median(fsyncLatencies)} ms`);

  const raw = `disk="${rawDisk}",op="write"`;
  const exact: [string, number][] = [
    [`ebpf_tools_execs_total{job="execsnoop",comm="${execer.comm}"}`, N],
    [`ebpf_tools_opens_total{job="opensnoop",comm="${opener.comm}"}`, N],
    [`ebpf_tools_open_failures_total{job="opensnoop",comm="${opener.comm}",errno="ENOENT"}`, N],
    [`ebpf_tools_bio_latency_seconds_count{job="biolatency",${raw}}`, N],
    [`ebpf_tools_bio_latency_seconds_count{job="biosnoop",${raw}}`, N],
    [`ebpf_tools_bio_requests_total{job="biosnoop",${raw},comm="${writer.comm}"}`, N],
    [`ebpf_tools_bio_bytes_total{job="biosnoop",${raw},comm="${writer.comm}"}`, N * 4096],
    [`ebpf_tools_ext4_slow_operations_total{job="ext4slower",op="fsync",comm="${syncer.comm}"}`, N],
    [`ebpf_tools_ext4_operation_latency_seconds_count{job="ext4slower",op="fsync"}`, N],
    [`ebpf_tools_ext4_operation_latency_seconds_count{job="ext4slower",op="write"}`, N],
  ];
  // the last scrape after the workload: every value is there once it has been taken
  await prometheus.until('the workload scraped', async () => {
    for (const [query, expected] of exact) if ((await prometheus.value(query)) !== expected) return false;
    return true;
  }).catch(() => {});
  for (const [query, expected] of exact) t.equal(await prometheus.value(query), expected, query);
  t.equal(await prometheus.value(`ebpf_tools_exec_failures_total{job="execsnoop",comm="${execer.comm}"}`), undefined, 'no failed exec of the marked program');
  t.equal(await prometheus.value(`ebpf_tools_ext4_slow_operations_total{job="ext4slower",op="write"}`), undefined, 'the fast writes are not slow');
  for (const job of jobs) {
    t.equal(await prometheus.value(`up{job="${job}"}`), 1, `${job}: up == 1`);
    t.equal(await prometheus.value(`ebpf_tools_build_info{job="${job}",tool="${job}"}`), 1, `${job}: build_info`);
    t.equal(await prometheus.value(`ebpf_tools_lost_events_total{job="${job}"}`), 0, `${job}: nothing lost`);
  }

  const quantiles: [string, number[]][] = [
    [`ebpf_tools_bio_latency_seconds_bucket{job="biolatency",${raw}}`, bioLatencies],
    [`ebpf_tools_bio_latency_seconds_bucket{job="biosnoop",${raw}}`, bioLatencies],
    [`ebpf_tools_ext4_operation_latency_seconds_bucket{job="ext4slower",op="fsync"}`, fsyncLatencies],
  ];
  for (const [buckets, measured] of quantiles) {
    const query = `histogram_quantile(0.5, rate(${buckets}[15s]))`;
    const [low, high] = bucketOf(median(measured));
    const quantile = await prometheus.value(query);
    t.ok(quantile !== undefined && quantile > low && quantile <= high, `${query} = ${quantile}: in (${low}, ${high}], the bucket of the median I/O`);
  }

  for (const [name, { tool }] of Object.entries(tools)) {
    const done = await tool.stop('SIGTERM');
    t.equal(done.code, 0, `${name}: SIGTERM exits 0`);
    t.equal(done.stdout, '', `${name}: prints no events`);
    // biolatency and biosnoop may also report requests whose completion the kernel ran no program for (test/bio-helpers.ts)
    const { otherLines } = unseenCompletions(name, done.stderr);
    t.equal(otherLines.length, 1, `${name}: one line on stderr (${JSON.stringify(otherLines)}), besides requests reported not traced`);
    t.match(otherLines[0], new RegExp(`^${name}: serving metrics at http://127\\.0\\.0\\.1:\\d+/metrics$`), `${name}: where it serves`);
  }
  t.equal(await prometheus.stop(), 0, 'Prometheus stops cleanly');
});

/** Runs `file args` in the cgroup at `dir` (a shell moves itself there, then execs); resolves when it has exited. */
function runIn(dir: string, file: string, args: string[]): void {
  const r = spawnSync('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, file, ...args], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${file} in ${dir} failed (${r.status})`);
}

function scrapeText(target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(`http://${target}/metrics`, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve(body));
    }).on('error', reject);
  });
}

t.test('--prometheus-cgroups: counters by the cgroup path, three deep; a cgroup removed at once keeps its path', async (t) => {
  const base = `/ebpf-tools-prom-${process.pid}`;
  const nested = `${base}/one/two`;
  const brief = `${base}/brief`;
  for (const path of [base, `${base}/one`, nested]) mkdirSync(`${cgroup2Root()}${path}`);
  t.teardown(() => {
    for (const path of [nested, `${base}/one`, base]) rmdirSync(`${cgroup2Root()}${path}`);
  });
  const execs = await exporting('execsnoop', ['--prometheus-cgroups', '5']);
  const opens = await exporting('opensnoop', ['--prometheus-cgroups', '5']);
  const plain = await exporting('execsnoop', []);
  const slow = await exporting('ext4slower', ['--prometheus-cgroups', '5', '0']);
  for (let i = 0; i < N; i++) runIn(`${cgroup2Root()}${nested}`, execer.path, ['exit']);
  runIn(`${cgroup2Root()}${nested}`, opener.path, ['openfail', String(N), join(work, `missing-${tag}`)]);
  // one write on ext4 (work is on /var/tmp's ext4) by a shell in the cgroup (its opens include the loader's)
  runIn(`${cgroup2Root()}${nested}`, '/bin/sh', ['-c', `echo x > ${join(work, 'in-cgroup.txt')}`]);
  // made, used for one exec and its opens, and gone before anything is scraped
  mkdirSync(`${cgroup2Root()}${brief}`);
  runIn(`${cgroup2Root()}${brief}`, opener.path, ['openfail', '1', join(work, `missing-${tag}`)]);
  rmdirSync(`${cgroup2Root()}${brief}`);
  const want = [
    [execs.target, `ebpf_tools_execs_total{comm="${execer.comm}",cgroup="${nested}"} ${N}`],
    [opens.target, `ebpf_tools_opens_total{comm="${opener.comm}",cgroup="${nested}"} ${N}`],
    [opens.target, `ebpf_tools_open_failures_total{comm="${opener.comm}",cgroup="${nested}",errno="ENOENT"} ${N}`],
    [opens.target, `ebpf_tools_open_failures_total{comm="${opener.comm}",cgroup="${brief}",errno="ENOENT"} 1`],
    [execs.target, `ebpf_tools_execs_total{comm="${opener.comm}",cgroup="${brief}"} 1`],
    [plain.target, `ebpf_tools_execs_total{comm="${execer.comm}"} ${N}`],
    [slow.target, `ebpf_tools_ext4_slow_operations_total{op="write",comm="sh",cgroup="${nested}"} 1`],
  ];
  for (const [target, line] of want) {
    let text = '';
    for (let i = 0; i < 50 && !text.split('\n').includes(line); i++) {
      text = await scrapeText(target);
      if (!text.split('\n').includes(line)) await sleep(100);
    }
    t.ok(text.split('\n').includes(line), `${line}${text.split('\n').includes(line) ? '' : `; served:\n${text}`}`);
  }
  t.notMatch(await scrapeText(plain.target), /cgroup=/, 'no cgroup label by default');
  for (const { tool } of [execs, opens, plain, slow]) t.equal((await tool.stop('SIGTERM')).code, 0);
});
