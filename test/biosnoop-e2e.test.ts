// biosnoop against the real kernel: direct I/O of known sizes by a program
// with a known pid and name, to a file on the root disk whose place on the
// disk is known (FIEMAP), must give exactly these lines.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { blockAttachPlans } from '../common/bio.js';
import { left } from '../common/format.js';
import {
  BLOCK_BYTES, makeLoopDisk, removeDir, rootDisk, runWorkload, unseenCompletions, WORKLOAD_COMM,
  type WorkloadRun,
} from './bio-helpers.js';
import { cgroupDir, makeCgroups, TEST_CONTAINER_ID } from './cgroup-helpers.js';
import { escapeRegExp } from './fsslower-ops.js';
import { QUIET_LIBBPF, runTool, sleep, SLOWDOWN, startAttached, startTool, startVerboseAttached, type RunningTool } from './helpers.js';

const HEADER = /^TIME\(s\) +COMM +PID +DISK +T +SECTOR +BYTES +LAT\(ms\)$/;
const BLOCKS = 8;
const root = rootDisk();
t.teardown(() => removeDir(root.dir));
let files = 0;
const scratch = (): string => join(root.dir, `data${++files}`);

/** The middle columns of the workload's line for block `i`: COMM to BYTES. */
function columns(run: WorkloadRun, i: number, op: 'R' | 'W'): string {
  return `${left(WORKLOAD_COMM, 14)} ${left(run.pid, 7)} ${left(root.disk, 7)} ` +
    `${op}S? +${left(String(run.sectors[i]), 10)} ${left(BLOCK_BYTES, 7)} `;
}

/**
 * The exact line for block `i` of a run, TIME(s) and LAT(ms) being numbers
 * of their format; `cgroup`: what the CGROUP (CONTAINER) column, the last,
 * shows.
 */
function expectedLine(run: WorkloadRun, i: number, op: 'R' | 'W', cgroup?: string): RegExp {
  return new RegExp(`^\\d+\\.\\d{6} +${columns(run, i, op)} *\\d+\\.\\d{3}${cgroup === undefined ? '' : ` ${escapeRegExp(cgroup)}`}$`);
}

/** The lines of a process; `bytes` keeps only I/O of that size. */
function linesOf(tool: RunningTool, pid: number, bytes?: number): string[] {
  const size = bytes === undefined ? '\\d+' : String(bytes);
  return tool.lines.filter((l) => new RegExp(`^\\S+ +${WORKLOAD_COMM} +${pid} +\\S+ +\\S+ +\\d+ +${size} `).test(l));
}

/** The workload's data I/O in the order it is made: each block written, then each read. */
const RUN_ORDER = (['W', 'R'] as const).flatMap((op) => Array.from({ length: BLOCKS }, (_, i) => ({ op, i })));

/**
 * What a tool showed of a run's data I/O (`shown`: its lines or events of
 * the run's pid and block size): each, in order, as the block and direction
 * it is (W0 to R7), or as itself if it is neither.
 */
function blocksShown<T>(shown: T[], isBlock: (item: T, i: number, op: 'R' | 'W') => boolean): (string | T)[] {
  return shown.map((item) => {
    const block = RUN_ORDER.find(({ op, i }) => isBlock(item, i, op));
    return block ? `${block.op}${block.i}` : item;
  });
}

/**
 * Every block of a run written, then read, shown once and in that order, and
 * no other data I/O of the run; a block may be missing only if the tool
 * reported it among the requests it did not trace (on this project's own
 * machine a completion in an interrupt can go unseen).
 */
function everyBlockOnce(t: Test, what: string, shown: unknown[], done: { tool: RunningTool; stderr: string; run: WorkloadRun }): void {
  const all = RUN_ORDER.map(({ op, i }) => `${op}${i}`);
  const missing = all.filter((block) => !shown.includes(block));
  const unseen = unseenCompletions('biosnoop', done.stderr).count;
  // where a block is missing: every line of the workload's process or of its sectors
  const related = (): string[] => done.tool.lines.filter((l) =>
    l.includes(String(done.run.pid)) || done.run.sectors.some((sector) => l.includes(String(sector))));
  t.same(shown, all.filter((block) => !missing.includes(block)), `${what}: each block written, then read, once; no other data I/O`);
  t.ok(missing.length <= unseen, `${what}: every block shown or reported not traced (${missing.length} missing${missing.length ? `: ${missing.join(' ')}` : ''}, ${unseen} reported)`,
    missing.length > unseen ? { sectors: done.run.sectors.map(String), lines: related(), stderr: done.stderr } : {});
}

/**
 * Waits for the line of a workload's last I/O; if it never comes (its
 * completion unseen: the tool reports that only at its end), the blocks are
 * judged after the stop, with what the tool reported (everyBlockOnce).
 */
function lastLine(tool: RunningTool, line: RegExp): Promise<unknown> {
  return tool.waitForLine(line).catch(() => undefined);
}

/** Whether a JSON event is of block `i` of a run, in direction `op`. */
const isEventOf = (run: WorkloadRun) => (e: Record<string, unknown>, i: number, op: 'R' | 'W'): boolean =>
  e.sector === Number(run.sectors[i]) && new RegExp(`^${op}S?$`).test(e.rwbs as string);

t.test('each direct write and read: the issuing process, disk, direction, sector and size', async (t) => {
  const tool = await startAttached('biosnoop', ['-d', root.disk], HEADER);
  const run = await runWorkload(scratch(), BLOCKS, 'wr', root);
  await lastLine(tool, expectedLine(run, BLOCKS - 1, 'R'));
  const done = await tool.stop('SIGINT');
  t.equal(done.code, 0, 'Ctrl-C exits 0');
  t.same(unseenCompletions('biosnoop', done.stderr).otherLines, [], 'nothing else on stderr');
  // the rest of its I/O is the file's metadata and cache flushes (fdatasync)
  everyBlockOnce(t, 'the workload', blocksShown(linesOf(tool, run.pid, BLOCK_BYTES), (l, i, op) => expectedLine(run, i, op).test(l)), { tool, stderr: done.stderr, run });
});

/** The disk's I/O scheduler, and the ones it offers. */
function schedulers(disk: string): { current: string; offered: string[] } {
  const text = readFileSync(`/sys/class/block/${disk}/queue/scheduler`, 'utf8').trim();
  return { current: /\[(\S+)\]/.exec(text)![1], offered: text.replace(/[[\]]/g, '').split(/\s+/) };
}

/** The plans that biosnoop would take before block_getrq. */
const BEFORE_GETRQ = (() => {
  const names = blockAttachPlans(true).map((p) => p.name);
  return names.slice(0, names.indexOf('raw_tp start at block_getrq'));
})();

/** Where `file`'s data is on its disk: [first sector, sectors] of each extent (filefrag, 512-byte units). */
function extents(file: string): [bigint, bigint][] {
  const r = spawnSync('filefrag', ['-v', '-b512', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`filefrag ${file}: ${r.stderr}`);
  return [...r.stdout.matchAll(/^\s*\d+:\s*\d+\.\.\s*\d+:\s*(\d+)\.\.\s*\d+:\s*(\d+):/gm)]
    .map((m) => [root.startSector + BigInt(m[1]), BigInt(m[2])]);
}

// The issue's case: Debian 12's 6.1 has neither block_io_start nor a traceable
// blk_account_io_start, and a disk without a scheduler (none) never calls
// block_rq_insert; block_getrq still names the process. Every request of the
// dd, with either scheduler and with the best plan or block_getrq forced.
for (const forced of [false, true]) {
  for (const scheduler of ['none', 'mq-deadline']) {
    t.test(`dd oflag=direct, scheduler ${scheduler}, ${forced ? 'block_getrq plan' : 'best plan'}: dd and its PID on every request`, async (t) => {
      const { current, offered } = schedulers(root.disk);
      t.ok(offered.includes(scheduler), `${root.disk} offers ${scheduler} (${offered.join(' ')})`);
      const queueScheduler = `/sys/class/block/${root.disk}/queue/scheduler`;
      writeFileSync(queueScheduler, scheduler);
      t.teardown(() => writeFileSync(queueScheduler, current));
      const env = forced ? { EBPF_TOOLS_SKIP_PLANS: BEFORE_GETRQ.map((p) => `biosnoop:${p}`).join(',') } : {};
      const tool = startTool('biosnoop', ['-v', '-d', root.disk], { ...env, ...QUIET_LIBBPF });
      await tool.waitForLine(HEADER);
      const file = scratch();
      const dd = spawn('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', 'count=16', 'oflag=direct'], { stdio: 'ignore' });
      const code = await new Promise((resolve) => dd.on('close', resolve));
      t.equal(code, 0, 'dd succeeded');
      const data = extents(file);
      const inFile = (line: string): boolean => {
        const sector = BigInt(line.trim().split(/ +/)[5]);
        return data.some(([first, length]) => sector >= first && sector < first + length);
      };
      const ddLine = new RegExp(`^\\d+\\.\\d{6} +dd +${dd.pid} +${root.disk} +WS? +(\\d+) +(\\d+) +\\d+\\.\\d{3}$`);
      const written = (): bigint => tool.lines.filter((l) => ddLine.test(l) && inFile(l))
        .reduce((sum, l) => sum + BigInt(ddLine.exec(l)![2]), 0n);
      for (let waited = 0; written() < 16n << 20n && waited < 20000; waited += 50) await sleep(50);
      const done = await tool.stop();
      t.equal(done.code, 0);
      if (forced) t.match(tool.stderr, /^biosnoop: using plan raw_tp start at block_getrq$/m, '-v names the plan');
      const onFile = tool.lines.slice(1).filter((l) => /^\S+ +\S+ +\d+ +\S+ +\S+ +\d+ /.test(l) && inFile(l));
      t.ok(onFile.length > 0, `${onFile.length} requests to the file`);
      t.same(onFile.filter((l) => !ddLine.test(l)), [], 'every request to the file is dd\'s, with its PID');
      // dd's requests are of 1 MiB at most (fewer where the disk takes less)
      const unseen = BigInt(unseenCompletions('biosnoop', done.stderr).count);
      const missing = (16n << 20n) - written();
      t.ok(missing >= 0n && missing <= unseen << 20n, `16 MiB written by dd, shown or reported not traced: ${written()} bytes shown, ${unseen} requests reported`);
    });
  }
}

t.test('-Q -P -t: TIMESTAMP, pattern and queued time columns', async (t) => {
  const tool = await startAttached('biosnoop', ['-Q', '-P', '-t'],
    /^TIMESTAMP {4}COMM {11}PID {5}DISK {4}T {4}SECTOR {5}BYTES {3}P QUE\(ms\) LAT\(ms\)$/);
  const run = await runWorkload(scratch(), BLOCKS, 'wr', root);
  const last = new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} +${columns(run, BLOCKS - 1, 'R')}[SR?] +\\d+\\.\\d{3} +\\d+\\.\\d{3}$`);
  await lastLine(tool, last);
  const done = await tool.stop();
  const line = (i: number, op: 'R' | 'W'): RegExp =>
    new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} +${columns(run, i, op)}[SR?] +\\d+\\.\\d{3} +\\d+\\.\\d{3}$`);
  everyBlockOnce(t, '-Q -P -t', blocksShown(linesOf(tool, run.pid, BLOCK_BYTES), (l, i, op) => line(i, op).test(l)), { tool, stderr: done.stderr, run });
});

t.test('--json: one object per I/O with the documented fields', async (t) => {
  const tool = await startVerboseAttached('biosnoop', ['--json']);
  t.equal(tool.proc.exitCode, null, 'running');
  const run = await runWorkload(scratch(), BLOCKS, 'wr', root);
  const deadline = Date.now() + 10000 * SLOWDOWN;
  const mine = (): Record<string, unknown>[] =>
    tool.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.pid === run.pid && e.bytes === BLOCK_BYTES);
  while (mine().length < 2 * BLOCKS && Date.now() < deadline) await sleep(50);
  const done = await tool.stop();
  const events = mine();
  everyBlockOnce(t, 'JSON', blocksShown(events, isEventOf(run)), { tool, stderr: done.stderr, run });
  for (const e of events) {
    const op = (e.rwbs as string)[0];
    t.same(Object.keys(e), ['time', 'ts', 'comm', 'pid', 'disk', 'rwbs', 'flags', 'sector', 'bytes', 'pattern', 'que_ms', 'lat_ms', 'cgroup_id']);
    t.match(e, { comm: WORKLOAD_COMM, disk: root.disk, bytes: BLOCK_BYTES });
    t.match(e.flags as string, new RegExp(`(^|-)${op === 'W' ? 'Write' : 'Read'}$`));
    t.match(e.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    t.ok(typeof e.que_ms === 'number' && e.que_ms >= 0, 'queued time known');
    t.ok(typeof e.lat_ms === 'number' && e.lat_ms > 0, 'latency');
    t.ok(['sequential', 'random', 'unknown'].includes(e.pattern as string), 'pattern');
  }
});

t.test('-d with another disk and -m above the latency hide the workload; -c shows only its cgroup', async (t) => {
  const loop = makeLoopDisk();
  t.teardown(() => loop.remove());
  const other = loop.disk;
  const cgroup = `/ebpf-tools-biosnoop-c-${process.pid}`;
  makeCgroups(cgroup);
  const onOther = await startAttached('biosnoop', ['-d', other], HEADER);
  const slowOnly = await startAttached('biosnoop', ['-m', '10000'], HEADER);
  const inCgroup = await startAttached('biosnoop', ['-c', cgroupDir(cgroup).toString()], HEADER);
  const [inside, outside] = await Promise.all([
    runWorkload(scratch(), BLOCKS, 'wr', root, cgroup),
    runWorkload(scratch(), BLOCKS, 'wr', root),
  ]);
  await lastLine(inCgroup, expectedLine(inside, BLOCKS - 1, 'R'));
  await sleep(300);
  const finished = [];
  for (const tool of [onOther, slowOnly, inCgroup]) finished.push(await tool.stop());
  for (const done of finished) t.equal(done.code, 0);
  t.same(linesOf(onOther, inside.pid), [], `-d ${other}: nothing from I/O to ${root.disk}`);
  t.same(linesOf(onOther, outside.pid), []);
  t.same(linesOf(slowOnly, inside.pid), [], '-m 10000: no I/O that fast');
  everyBlockOnce(t, '-c: the process in the cgroup', blocksShown(linesOf(inCgroup, inside.pid, BLOCK_BYTES), (l, i, op) => expectedLine(inside, i, op).test(l)), { tool: inCgroup, stderr: finished[2].stderr, run: inside });
  t.same(linesOf(inCgroup, outside.pid), [], '-c: none of the process outside');
});

t.test('--print-cgroup: the issuing process\'s cgroup, three deep, last on each line and in JSON; =container: the id', async (t) => {
  const base = `/ebpf-tools-biosnoop-${process.pid}`;
  const nested = `${base}/one/two/three`;
  const docker = `${base}/docker-${TEST_CONTAINER_ID}.scope`;
  makeCgroups(base, `${base}/one`, `${base}/one/two`, nested, docker);
  const paths = await startAttached('biosnoop', ['--print-cgroup', '-d', root.disk], /^TIME\(s\) +COMM .* LAT\(ms\) CGROUP$/);
  const containers = await startAttached('biosnoop', ['--print-cgroup=container', '-d', root.disk], /^TIME\(s\) +COMM .* LAT\(ms\) CONTAINER$/);
  const json = await startVerboseAttached('biosnoop', ['--json', '--print-cgroup', '-d', root.disk]);
  // one after the other: two workloads at once may write adjacent blocks, which the block layer merges
  const inNested = await runWorkload(scratch(), BLOCKS, 'wr', root, nested);
  const inDocker = await runWorkload(scratch(), BLOCKS, 'wr', root, docker);
  const shortId = TEST_CONTAINER_ID.slice(0, 12);
  await lastLine(paths, expectedLine(inDocker, BLOCKS - 1, 'R', docker));
  await lastLine(containers, expectedLine(inDocker, BLOCKS - 1, 'R', shortId));
  const deadline = Date.now() + 10000 * SLOWDOWN;
  const objects = (run: WorkloadRun): Record<string, unknown>[] => json.lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.pid === run.pid && e.bytes === BLOCK_BYTES);
  while (objects(inDocker).length < 2 * BLOCKS && Date.now() < deadline) await sleep(50);
  const [pathsDone, containersDone, jsonDone] = [await paths.stop(), await containers.stop(), await json.stop()];
  for (const done of [pathsDone, containersDone, jsonDone]) t.equal(done.code, 0);
  for (const [run, path, column] of [[inNested, nested, nested], [inDocker, docker, shortId]] as const) {
    everyBlockOnce(t, path, blocksShown(linesOf(paths, run.pid, BLOCK_BYTES), (l, i, op) => expectedLine(run, i, op, path).test(l)), { tool: paths, stderr: pathsDone.stderr, run });
    everyBlockOnce(t, `=container, ${column}`, blocksShown(linesOf(containers, run.pid, BLOCK_BYTES), (l, i, op) => expectedLine(run, i, op, column).test(l)), { tool: containers, stderr: containersDone.stderr, run });
    const events = objects(run);
    everyBlockOnce(t, `JSON, ${path}`, blocksShown(events, isEventOf(run)), { tool: json, stderr: jsonDone.stderr, run });
    t.same(events.filter((e) => e.cgroup !== path || e.cgroup_id !== statSync(cgroupDir(path)).ino), [], `JSON: cgroup ${path} and its id`);
  }
});

t.test('duration: ends by itself', async (t) => {
  const started = Date.now();
  const tool = startTool('biosnoop', ['1']);
  const done = await tool.finished();
  t.equal(done.code, 0);
  t.match(done.stdout.split('\n')[0], HEADER);
  t.ok(Date.now() - started < 5000 * SLOWDOWN + 1000, 'within the duration and start-up');
});

t.test('usage errors: one line, exit 2, nothing loaded', async (t) => {
  const unknown = runTool('biosnoop', ['-d', 'nosuchdisk0']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, new RegExp(`^biosnoop: invalid --disk 'nosuchdisk0': no such disk \\(disks: .*\\b${root.disk}\\b.*\\)`));
  t.equal(unknown.stderr.trim().split('\n').length, 1);
  for (const args of [['1', '2'], ['0'], ['-m', 'x'], ['-m', '-1'], ['--bogus']]) {
    const r = runTool('biosnoop', args);
    t.equal(r.code, 2, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1);
    t.equal(r.stdout, '');
  }
});
