// SIGINT, SIGTERM and SIGHUP in the middle of an event storm: each tool,
// started for real, is signalled while a child process makes its events as
// fast as it can. Just before, a batch of marked events is made and finished:
// each one must be in what the tool printed at exit (or counted in the loss it
// reported), the exit must be prompt with status 0, no torn last line and
// nothing on stderr but loss reports, and nothing may stay loaded. The
// storm goes on until the tool has exited: its last read must stop at what
// was written when the signal came, not chase the storm.
//
// Every tool gets all three signals (about 20 s for the file). One run of each
// tool but biolatency is with --json; biolatency prints no event lines, and
// its JSON histograms are checked in its own e2e test.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { left, right } from '../common/format.js';
import { BLOCK_BYTES, parseHistograms, removeDir, rootDisk, runWorkload, WORKLOAD_COMM } from './bio-helpers.js';
import { sleep, startAttached, startTool } from './helpers.js';

// The storms (open-ended: they run until killed) and the marked batches
// (bounded: they exit once every event is made).
const STORM_SOURCE = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define WRITE_BYTES 100

static void check(long result, const char *what) { if (result < 0) { perror(what); exit(1); } }

static void run_true(const char *arg) {
  pid_t child = fork();
  check(child, "fork");
  if (child == 0) {
    char *const argv[] = { "/bin/true", (char *)arg, NULL };
    execv(argv[0], argv);
    _exit(127);
  }
  int status;
  check(waitpid(child, &status, 0), "waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "/bin/true failed\n"); exit(1); }
}

int main(int argc, char **argv) {
  static char buf[4096] __attribute__((aligned(4096)));
  char name[4096];
  memset(buf, 'x', sizeof(buf));
  /* a storm must not outlive the test, even one killed by tap's timeout */
  check(prctl(PR_SET_PDEATHSIG, SIGKILL), "prctl");
  if (getppid() == 1) return 1;
  if (argc == 3 && !strcmp(argv[1], "open-storm")) {
    for (;;) { int fd = open(argv[2], O_RDONLY); if (fd >= 0) close(fd); }
  }
  if (argc == 2 && !strcmp(argv[1], "exec-storm")) {
    for (;;) run_true("storm");
  }
  if (argc == 3 && !strcmp(argv[1], "dio-storm")) {
    int fd = open(argv[2], O_CREAT | O_RDWR | O_DIRECT, 0600);
    check(fd, "open");
    for (;;) { check(pwrite(fd, buf, sizeof(buf), 0), "pwrite"); check(pread(fd, buf, sizeof(buf), 0), "pread"); }
  }
  if (argc == 3 && !strcmp(argv[1], "ext4-storm")) {
    int fd = open(argv[2], O_CREAT | O_RDWR, 0600);
    check(fd, "open");
    for (;;) { check(pwrite(fd, buf, 100, 0), "pwrite"); check(pread(fd, buf, 100, 0), "pread"); }
  }
  if (argc == 4 && !strcmp(argv[1], "opens")) {
    for (long i = 0; i < atol(argv[3]); i++) {
      snprintf(name, sizeof(name), "%s-%ld", argv[2], i);
      int fd = open(name, O_RDONLY);
      if (fd >= 0) close(fd);
    }
    return 0;
  }
  if (argc == 4 && !strcmp(argv[1], "execs")) {
    for (long i = 0; i < atol(argv[3]); i++) {
      snprintf(name, sizeof(name), "%s-%ld", argv[2], i);
      run_true(name);
    }
    return 0;
  }
  if (argc == 4 && !strcmp(argv[1], "writes")) {
    int fd = open(argv[2], O_CREAT | O_RDWR | O_TRUNC, 0600);
    check(fd, "open");
    for (long i = 0; i < atol(argv[3]); i++) check(pwrite(fd, buf, WRITE_BYTES, i * 1024), "pwrite");
    close(fd);
    return 0;
  }
  fprintf(stderr, "usage: storm open-storm PATH | exec-storm | dio-storm FILE | ext4-storm FILE | opens PREFIX N | execs PREFIX N | writes FILE N\n");
  return 2;
}
`;

/** The storm program's command name, as COMM shows it. */
const COMM = 'sigstorm';
/** Bytes of each marked ext4 write (WRITE_BYTES in the program); the i-th is at i KiB, so OFF_KB tells them apart. */
const WRITE_BYTES = 100;

// On the ext4 root filesystem: the bio and ext4 tools see its I/O; opens and
// execs do not care where they happen.
const root = rootDisk();
// Fifteen storms, each with a tool started and stopped: about 30 s here, 65 s with the machine busy;
// tap's default of 120 s for a file is too close.
t.setTimeout(600_000);
t.teardown(() => removeDir(root.dir));
const STORM = join(root.dir, COMM);
writeFileSync(`${STORM}.c`, STORM_SOURCE);
const cc = spawnSync('cc', ['-O2', '-Wall', '-Werror', '-o', STORM, `${STORM}.c`], { encoding: 'utf8' });
if (cc.status !== 0) throw new Error(`cannot compile the storm program: ${cc.stderr}`);

/** The storms running, each with its exit. */
const storms = new Map<ChildProcess, Promise<unknown>>();
// whatever happens, no storm outlives the test
t.teardown(() => {
  for (const storm of storms.keys()) storm.kill('SIGKILL');
});

/** Starts an open-ended storm; stopped by stopStorm (or the teardown). */
function startStorm(args: string[]): ChildProcess {
  const storm = spawn(STORM, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  storms.set(storm, new Promise((resolve) => storm.on('close', resolve)));
  return storm;
}

async function stopStorm(storm: ChildProcess): Promise<void> {
  const exited = storms.get(storm);
  if (!exited) return;
  storms.delete(storm);
  storm.kill('SIGKILL');
  await exited;
}

/** Runs a bounded batch to its end (asynchronously: the tools' output must keep flowing meanwhile); returns its pid. */
function runBatch(args: string[]): Promise<number> {
  const batch = spawn(STORM, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  batch.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => batch.on('close', (code) => {
    if (code === 0) resolve(batch.pid!);
    else reject(new Error(`${COMM} ${args.join(' ')} failed (${code}): ${stderr}`));
  }));
}

let counter = 0;
const marker = (): string => `sig${process.pid}x${++counter}`;

/** A loss report: the ring buffer was full (with the run's total so far), or records were still unread when the exit's last read had to end. */
const LOST = /^(\w+): (\d+) events lost: (?:ring buffer full \((\d+) lost in all\)|still unread \d+ s after the end of the run)$/;
/** biolatency's and biosnoop's report of more requests they could not follow. */
const UNTRACED = /^(bio\w+): (\d+) requests? not traced: .* \(\d+ in all\)$/;

/** Lines that are not one JSON value each. */
function notJson(lines: string[]): string[] {
  return lines.filter((l) => {
    try {
      JSON.parse(l);
      return false;
    } catch {
      return true;
    }
  });
}

interface Case {
  tool: string;
  /** the signal whose run is with --json */
  jsonWith?: NodeJS.Signals;
}
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const CASES: Case[] = [
  { tool: 'opensnoop', jsonWith: 'SIGTERM' },
  { tool: 'execsnoop', jsonWith: 'SIGHUP' },
  { tool: 'biolatency' },
  { tool: 'biosnoop', jsonWith: 'SIGINT' },
  { tool: 'ext4slower', jsonWith: 'SIGTERM' },
];

/** How long the storm goes on before the marked batch starts. */
const STORM_BEFORE_BATCH_MS = 300;
/** How soon a signalled tool must be gone: its last read ends 2 s after the signal at most (common/events.ts), then it detaches. */
const EXIT_WITHIN_MS = 10000;

/** One tool's run: its storm, its marked batch, and how to find the batch in the output. */
interface Scenario {
  args: string[];
  header: RegExp;
  storm: string[];
  /** makes the marked events, to their end; returns how many there are and which lines (or objects) are theirs */
  batch(): Promise<{ count: number; mine(line: string): string | undefined }>;
}

const escapeRegExp = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');

const OPENS = 2000;
const EXECS = 200;
const BLOCKS = 16;
const WRITES = 2000;

/**
 * Each scenario's `mine` returns a key naming the marked event a line is
 * (so that each can be counted once), or undefined for other lines.
 */
function scenario(tool: string, json: boolean): Scenario {
  const jsonArgs = json ? ['--json'] : [];
  switch (tool) {
    case 'opensnoop': {
      const missing = join(root.dir, 'missing-open');
      return {
        args: jsonArgs,
        header: /^PID {4}COMM {14}FD ERR PATH$/,
        storm: ['open-storm', missing],
        async batch() {
          const prefix = join(root.dir, marker());
          const pid = await runBatch(['opens', prefix, String(OPENS)]);
          const lineStart = `${left(pid, 6)} ${left(COMM, 16)} ${right(-1, 3)} ${right(2, 3)} ${prefix}-`;
          return {
            count: OPENS,
            mine: json
              ? (l) => {
                if (!l.includes(prefix)) return undefined;
                const e = JSON.parse(l) as { pid: number; comm: string; fd: number; err: number; path: string };
                return e.pid === pid && e.comm === COMM && e.fd === -1 && e.err === 2 ? e.path : undefined;
              }
              : (l) => (l.startsWith(lineStart) && /^\d+$/.test(l.slice(lineStart.length)) ? l : undefined),
          };
        },
      };
    }
    case 'execsnoop':
      return {
        args: jsonArgs,
        header: /^PCOMM +PID +PPID +RET ARGS$/,
        storm: ['exec-storm'],
        async batch() {
          const prefix = marker();
          const ppid = await runBatch(['execs', prefix, String(EXECS)]);
          const pattern = new RegExp(`^${left('true', 16)} \\d+ +${left(ppid, 6)} ${right(0, 3)} /bin/true ${prefix}-\\d+$`);
          return {
            count: EXECS,
            mine: json
              ? (l) => {
                if (!l.includes(prefix)) return undefined;
                const e = JSON.parse(l) as { ppid: number; comm: string; retval: number; args: string[] };
                const ok = e.ppid === ppid && e.comm === 'true' && e.retval === 0 && e.args.length === 2 && e.args[0] === '/bin/true';
                return ok ? e.args[1] : undefined;
              }
              : (l) => (pattern.test(l) ? l.slice(l.lastIndexOf(' ') + 1) : undefined),
          };
        },
      };
    case 'biolatency':
    case 'biosnoop':
      return {
        args: jsonArgs,
        header: tool === 'biosnoop' ? /^TIME\(s\) +COMM +PID +DISK +T +SECTOR +BYTES +LAT\(ms\)$/ : /^Tracing block device I\/O\.\.\. Hit Ctrl-C to end\.$/,
        storm: ['dio-storm', join(root.dir, 'dio-storm')],
        async batch() {
          const run = await runWorkload(join(root.dir, marker()), BLOCKS, 'wr', root);
          const sectors = run.sectors.map(String);
          return {
            count: 2 * BLOCKS,
            mine: json
              ? (l) => {
                const e = JSON.parse(l) as { pid: number; comm: string; bytes: number; sector: number; rwbs: string };
                if (e.pid !== run.pid || e.comm !== WORKLOAD_COMM || e.bytes !== BLOCK_BYTES) return undefined;
                return sectors.includes(String(e.sector)) ? `${e.rwbs[0]} ${e.sector}` : undefined;
              }
              : (l) => {
                const m = new RegExp(`^\\d+\\.\\d{6} +${WORKLOAD_COMM} +${run.pid} +${root.disk} +([RW])S? +(\\d+) +${BLOCK_BYTES} +\\d+\\.\\d{3}$`).exec(l);
                return m && sectors.includes(m[2]) ? `${m[1]} ${m[2]}` : undefined;
              },
          };
        },
      };
    case 'ext4slower':
      return {
        args: [...jsonArgs, '0'],
        header: /^Tracing ext4 operations\.\.\. Hit Ctrl-C to end\.$/,
        storm: ['ext4-storm', join(root.dir, 'ext4-storm')],
        async batch() {
          const name = marker();
          const pid = await runBatch(['writes', join(root.dir, name), String(WRITES)]);
          const pattern = new RegExp(
            `^\\d\\d:\\d\\d:\\d\\d ${left(COMM, 16)} ${left(pid, 7)} W ${left(WRITE_BYTES, 7)} (\\d+) +\\d+\\.\\d\\d ${escapeRegExp(name)}$`,
          );
          return {
            count: WRITES,
            mine: json
              ? (l) => {
                if (!l.includes(name)) return undefined;
                const e = JSON.parse(l) as { pid: number; comm: string; type: string; bytes: number; offset: number; file: string };
                const ok = e.pid === pid && e.comm === COMM && e.type === 'W' && e.bytes === WRITE_BYTES && e.file === name;
                return ok ? String(e.offset / 1024) : undefined;
              }
              : (l) => pattern.exec(l)?.[1],
          };
        },
      };
    default:
      throw new Error(`no scenario for ${tool}`);
  }
}


for (const { tool, jsonWith } of CASES) {
  for (const signal of SIGNALS) {
    const json = signal === jsonWith;
    t.test(`${tool}${json ? ' --json' : ''}: ${signal} during a storm exits 0 with the summary printed`, async (t) => {
      const run = scenario(tool, json);
      const traced = json ? startTool(tool, run.args) : await startAttached(tool, run.args, run.header);
      t.teardown(() => traced.proc.kill('SIGKILL'));
      const storm = startStorm(run.storm);
      t.teardown(() => stopStorm(storm));
      // the storm's first event says it has reached the tool (and, in --json, which has no header, that the tool is attached)
      if (tool !== 'biolatency') await traced.waitForLine((l) => !run.header.test(l));
      await sleep(STORM_BEFORE_BATCH_MS);
      const batch = await run.batch();
      t.equal(storm.exitCode ?? storm.signalCode, null, 'the storm is still running when the signal comes');
      t.equal(traced.proc.exitCode, null, `${tool} is still running when the signal comes`);
      const exited = traced.stop(signal);
      // A tool that read until its ring buffer was empty would never end while the storm lasts.
      const inTime = await Promise.race([exited.then(() => true), sleep(EXIT_WITHIN_MS).then(() => false)]);
      t.ok(inTime, `exits within ${EXIT_WITHIN_MS} ms of ${signal} although the storm goes on`);
      if (!inTime) traced.proc.kill('SIGKILL');
      const done = await exited;
      t.equal(storm.exitCode ?? storm.signalCode, null, 'the storm ran until the tool had exited');
      await stopStorm(storm);

      t.equal(done.signal, null, `not killed by ${signal}`);
      t.equal(done.code, 0, 'exit status 0');
      t.ok(done.stdout.endsWith('\n'), `stdout ends with a newline: ...${JSON.stringify(done.stdout.slice(-100))}`);
      const stderrLines = done.stderr.split('\n').filter((l) => l !== '');
      const reporter = (l: string): string | undefined => (LOST.exec(l) ?? UNTRACED.exec(l))?.[1];
      t.same(stderrLines.filter((l) => reporter(l) !== tool), [], 'nothing on stderr but loss reports');
      const reports = stderrLines.map((l) => LOST.exec(l)).filter((m) => m !== null);
      const ringFull = reports.filter((m) => m[3] !== undefined);
      const unread = reports.filter((m) => m[3] === undefined).reduce((sum, m) => sum + Number(m[2]), 0);
      const untraced = stderrLines.map((l) => UNTRACED.exec(l)).filter((m) => m !== null).reduce((sum, m) => sum + Number(m[2]), 0);
      const lost = (ringFull.length ? Number(ringFull.at(-1)![3]) : 0) + unread + untraced;
      const lines = done.stdout.split('\n').filter((l) => l !== '');
      if (json) t.same(notJson(lines).slice(0, 3), [], 'every line is a JSON object');
      else t.match(lines[0], run.header, 'the header first');

      if (tool === 'biolatency') {
        // the summary: the histogram printed at exit, which counts the batch's I/O
        const histograms = parseHistograms(done.stdout);
        t.equal(histograms.length, 1, `one histogram:\n${done.stdout}`);
        t.match(histograms[0]?.lines[0], /^\s+usecs\s+: count\s+distribution$/, 'its header');
        t.ok((histograms[0]?.total ?? 0) >= batch.count, `it counts at least the ${batch.count} marked I/Os (${histograms[0]?.total})`);
        t.equal(done.stdout, `Tracing block device I/O... Hit Ctrl-C to end.\n\n\n${histograms[0]?.lines.join('\n')}\n`, 'nothing else');
      } else {
        // the summary: every event made before the signal, drained at exit
        const keys = lines.map(batch.mine).filter((k) => k !== undefined);
        const captured = new Set(keys).size;
        t.equal(keys.length, captured, 'no marked event twice');
        // Printed or reported lost, never neither. Whether none is lost is a
        // race of the storm (unthrottled) against the tool and this reader on
        // two CPUs: opensnoop lost 11,718 to 147,741 opens in 5 of 14 runs
        // here, on Node 20 and 24 alike, and none in the others. Keeping up
        // is bench/storms.ts's measure, not this.
        t.ok(captured + lost >= batch.count, `${captured} marked events printed + ${lost} reported lost >= ${batch.count}`, { printed: [...new Set(keys)].sort(), stderr: done.stderr });
      }
    });
  }
}

// A slow reader from the signal on (5 ms of reading every 200 ms): the last
// read cannot print the backlog of a full ring buffer in time, so it ends 2 s
// after it began, counts what it left unread and reports it lost. The ring is
// opensnoop's with -b 16384 (64 MiB), of which that reader lets through
// some 6 MiB in 2 s here (the default 4 MiB one it emptied in time once).
t.test('opensnoop -b 16384: SIGINT with a slow reader ends in time and reports the unread lost', async (t) => {
  const run = scenario('opensnoop', false);
  const traced = await startAttached('opensnoop', [...run.args, '-b', '16384'], run.header);
  t.teardown(() => traced.proc.kill('SIGKILL'));
  const storm = startStorm(run.storm);
  t.teardown(() => stopStorm(storm));
  await traced.waitForLine((l) => !run.header.test(l));
  await sleep(STORM_BEFORE_BATCH_MS);
  const batch = await run.batch();
  const stdout = traced.proc.stdout!;
  // not read at all for a while: the tool waits on its full pipe, and the
  // storm fills the ring buffer behind it
  stdout.pause();
  await sleep(500);
  const slowly = setInterval(() => {
    stdout.resume();
    setTimeout(() => stdout.pause(), 5);
  }, 200);
  const exited = traced.stop('SIGINT');
  exited.finally(() => {
    clearInterval(slowly);
    stdout.resume();
  });
  const inTime = await Promise.race([exited.then(() => true), sleep(EXIT_WITHIN_MS).then(() => false)]);
  t.ok(inTime, `exits within ${EXIT_WITHIN_MS} ms of SIGINT although its reader is slow`);
  if (!inTime) traced.proc.kill('SIGKILL');
  const done = await exited;
  await stopStorm(storm);
  t.equal(done.code, 0, 'exit status 0');
  const unread = done.stderr.split('\n').map((l) => LOST.exec(l)).filter((m) => m !== null && m[3] === undefined);
  t.equal(unread.length, 1, `one report of records left unread: ${done.stderr}`);
  const ringFull = done.stderr.split('\n').map((l) => LOST.exec(l)).filter((m) => m !== null && m[3] !== undefined);
  const lost = (ringFull.length ? Number(ringFull.at(-1)![3]) : 0) + Number(unread[0]?.[2] ?? 0);
  const keys = new Set(done.stdout.split('\n').map(batch.mine).filter((k) => k !== undefined));
  t.ok(keys.size + lost >= batch.count, `${keys.size} marked events printed + ${lost} reported lost >= ${batch.count}`);
});
