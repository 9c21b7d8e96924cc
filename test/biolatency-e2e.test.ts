// biolatency against the real kernel: direct I/O of known count by a
// program with a known pid must be counted in the histogram of the right
// disk, flags and cgroup; intervals must come on time and end after count.
import t from 'tap';
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { BLOCK_BYTES, makeLoopDisk, parseHistograms, removeDir, rootDisk, runWorkload, unseenCompletions, type ParsedHistogram } from './bio-helpers.js';
import { cgroupDir, makeCgroups } from './cgroup-helpers.js';
import { runTool, sleep, SLOWDOWN, startAttached, startTool, startVerboseAttached, watchStalls, type RunningTool } from './helpers.js';

const HEADER = /^Tracing block device I\/O\.\.\. Hit Ctrl-C to end\.$/;
const BLOCKS = 16;
const root = rootDisk();
t.teardown(() => removeDir(root.dir));
let files = 0;
const scratch = (): string => join(root.dir, `data${++files}`);

function section(histograms: ParsedHistogram[], name: string): ParsedHistogram | undefined {
  return histograms.find((h) => h.section === name);
}

t.test('-D: the workload\'s I/O is counted in its disk\'s histogram', async (t) => {
  const tool = await startAttached('biolatency', ['-D'], HEADER);
  await runWorkload(scratch(), BLOCKS, 'wr', root);
  const done = await tool.stop('SIGINT');
  t.equal(done.code, 0, 'Ctrl-C exits 0');
  const unseen = unseenCompletions('biolatency', done.stderr);
  t.same(unseen.otherLines, [], 'nothing on stderr but requests reported not traced');
  const histograms = parseHistograms(done.stdout);
  const mine = section(histograms, `disk = ${root.disk}`);
  t.ok(mine, `a histogram for ${root.disk}`);
  t.ok(mine!.total + unseen.count >= 2 * BLOCKS, `at least the ${2 * BLOCKS} direct I/Os, counted or reported not traced (${mine!.total}, ${unseen.count})`);
  t.match(done.stdout, new RegExp(`^Tracing block device I/O\\.\\.\\. Hit Ctrl-C to end\\.\\n\\n\\ndisk = ${root.disk}\\n     usecs {15}: count    distribution\\n`));
  const rows = mine!.lines.slice(1);
  t.ok(rows.every((r) => /^ {0,9}\d+ -> \d+ +: \d+ +\|[* ]{40}\|$/.test(r)), 'rows as libbpf-tools');
});

t.test('-d filters in the kernel; -c counts only I/O issued in the cgroup', async (t) => {
  const loop = makeLoopDisk();
  t.teardown(() => loop.remove());
  const other = loop.disk;
  const cgroup = `/ebpf-tools-biolatency-${process.pid}`;
  makeCgroups(cgroup);
  const onRoot = await startAttached('biolatency', ['-d', root.disk], HEADER);
  const onOther = await startAttached('biolatency', ['-d', other], HEADER);
  const inCgroup = await startAttached('biolatency', ['-c', cgroupDir(cgroup).toString()], HEADER);
  // one after the other: two workloads at once may write adjacent blocks,
  // which the block layer merges into one request of either's
  await runWorkload(scratch(), BLOCKS, 'wr', root, cgroup);
  await runWorkload(scratch(), 2 * BLOCKS, 'wr', root);
  const [rootDone, otherDone, cgroupDone] = await Promise.all([onRoot.stop(), onOther.stop(), inCgroup.stop()]);
  const rootHistograms = parseHistograms(rootDone.stdout);
  t.equal(rootHistograms.length, 1, 'one histogram, no disk name');
  const rootUnseen = unseenCompletions('biolatency', rootDone.stderr).count;
  t.ok(rootHistograms[0].total + rootUnseen >= 6 * BLOCKS, `-d ${root.disk}: both workloads, counted or reported not traced (${rootHistograms[0].total}, ${rootUnseen})`, { stderr: rootDone.stderr });
  t.equal(otherDone.stdout, 'Tracing block device I/O... Hit Ctrl-C to end.\n\n', `-d ${other}: no histogram`);
  const cgroupTotal = parseHistograms(cgroupDone.stdout)[0]?.total ?? 0;
  const unseen = unseenCompletions('biolatency', cgroupDone.stderr).count;
  // its own data I/O, plus the metadata writes and cache flushes of its fdatasync
  t.ok(cgroupTotal + unseen >= 2 * BLOCKS && cgroupTotal < 6 * BLOCKS, `-c: the workload in the cgroup only (${cgroupTotal}, ${unseen} reported not traced)`);
});

t.test('--cgroups: a histogram per cgroup of the issuing process; past --cgroups-max, the others summed', async (t) => {
  // as the histograms name them: relative to the cgroup2 mount
  const parent = `/ebpf-tools-biolatency-cgroups-${process.pid}`;
  const busy = `${parent}/busy`;
  const quiet = `${parent}/one/quiet`;
  makeCgroups(parent, busy, `${parent}/one`, quiet);
  const dir = (path: string): string => cgroupDir(path).toString();
  const all = await startAttached('biolatency', ['--cgroups', '-d', root.disk], HEADER);
  const top = await startAttached('biolatency', ['--cgroups', '--cgroups-max', '1', '-c', dir(parent)], HEADER);
  const json = await startVerboseAttached('biolatency', ['--cgroups', '-j', '-c', dir(parent)]);
  // one after the other, as above: at once, a 7.2 guest counted 95 of the
  // busy cgroup's 96 (a merge fits that count; it was not traced)
  await runWorkload(scratch(), 3 * BLOCKS, 'wr', root, busy);
  await runWorkload(scratch(), BLOCKS, 'w', root, quiet);
  const [allDone, topDone, jsonDone] = await Promise.all([all.stop(), top.stop(), json.stop()]);
  for (const done of [allDone, topDone, jsonDone]) t.equal(done.code, 0);
  const histograms = parseHistograms(allDone.stdout);
  const busyTotal = section(histograms, `cgroup = ${busy}`)?.total ?? 0;
  const quietTotal = section(histograms, `cgroup = ${quiet}`)?.total ?? 0;
  const unseen = unseenCompletions('biolatency', allDone.stderr).count;
  // its own data I/O, plus the metadata writes and cache flushes of its fdatasync
  t.ok(busyTotal + unseen >= 6 * BLOCKS && busyTotal < 12 * BLOCKS, `the busy cgroup's I/O in its histogram (${busyTotal}, ${unseen} reported not traced)`);
  t.ok(quietTotal + unseen >= BLOCKS && quietTotal < 3 * BLOCKS, `the quiet cgroup's, three deep, in its own (${quietTotal}, ${unseen} reported not traced)`);
  const bounded = parseHistograms(topDone.stdout);
  t.same(bounded.map((h) => h.section), [`cgroup = ${busy}`, 'cgroup = (1 other cgroup)'], 'the busiest, then the rest');
  t.equal(bounded[1].total, quietTotal, 'the rest is the quiet cgroup\'s');
  const objects = jsonDone.stdout.trim().split('\n').map((l) => JSON.parse(l) as { cgroup: string; cgroup_id: number; data: { count: number }[] });
  const quietObject = objects.find((o) => o.cgroup === quiet);
  t.ok(quietObject, 'JSON: the exact path');
  t.equal(quietObject?.cgroup_id, statSync(dir(quiet)).ino, 'JSON: the cgroup id');
  t.equal(quietObject?.data.reduce((sum, b) => sum + b.count, 0), quietTotal);
});

/** When the header and each interval's time (-T) reached the test, read as whole lines. */
function intervalArrivals(tool: RunningTool): { attached: () => number; arrivals: number[] } {
  let attached = 0;
  const arrivals: number[] = [];
  let read = 0;
  // after the RunningTool's own listener, which splits the chunks into lines
  tool.proc.stdout!.on('data', () => {
    const lines = tool.completedLines;
    for (; read < lines.length; read++) {
      if (/^\d\d:\d\d:\d\d$/.test(lines[read])) arrivals.push(Date.now());
      else if (lines[read].startsWith('Tracing ')) attached = Date.now();
    }
  });
  return { attached: () => attached, arrivals };
}

t.test('interval and count: histograms on time while I/O flows, then the end', async (t) => {
  const stalls = watchStalls();
  const tool = startTool('biolatency', ['-T', '1', '3']);
  const { attached, arrivals } = intervalArrivals(tool);
  // I/O without a gap: one dd writing on and on, over the same 16 MiB again
  // and again (a workload started again and again left a 6.12 guest's last
  // two intervals without any; a dd of 16 blocks a time, the first interval
  // of a loaded 5.10 guest, its execs taking longer than a second)
  const load = spawn('sh', ['-c', `while :; do dd if=/dev/zero of="$0" bs=${BLOCK_BYTES} count=${(16 << 20) / BLOCK_BYTES} oflag=direct conv=notrunc 2>/dev/null; done`, scratch()],
    { stdio: 'ignore', detached: true });
  const loadEnded = new Promise((resolve) => load.on('close', resolve));
  const done = await tool.finished();
  process.kill(-load.pid!, 'SIGKILL');
  await loadEnded;
  const end = Date.now();
  stalls.stop();
  t.equal(done.code, 0, 'ends by itself with status 0');
  t.equal(arrivals.length, 3, 'three intervals');
  for (let i = 1; i < arrivals.length; i++) {
    const gap = arrivals[i] - arrivals[i - 1];
    const stalled = stalls.stalledBetween(arrivals[i - 1], arrivals[i]);
    t.ok(gap > 1000 - 300 * SLOWDOWN && gap < 1000 + 300 * SLOWDOWN + stalled, `interval ${i} after ${gap} ms (the machine stood still ${stalled} ms of it)`);
  }
  // from the header, printed once attached (start-up itself takes a minute in a loaded TCG guest)
  const stalledInAll = stalls.stalledBetween(attached(), end);
  t.ok(attached() > 0 && end - attached() < 3000 + 1000 * SLOWDOWN + stalledInAll, `three seconds from the header to the end (${end - attached()} ms, the machine stood still ${stalledInAll} ms of it)`);
  const histograms = parseHistograms(done.stdout);
  t.ok(histograms.length >= 2 && histograms.every((h) => h.total > 0), 'the intervals with I/O have histograms', { stdout: done.stdout });
});

t.test('interval after the tool stood still past two deadlines: one late interval, then a whole one', async (t) => {
  const tool = startTool('biolatency', ['-T', '1', '4']);
  const { arrivals } = intervalArrivals(tool);
  await tool.waitForLine(/^\d\d:\d\d:\d\d$/);
  // as a paused virtual machine stands still
  process.kill(tool.proc.pid!, 'SIGSTOP');
  await sleep(3000);
  const continued = Date.now();
  process.kill(tool.proc.pid!, 'SIGCONT');
  const done = await tool.finished();
  t.equal(done.code, 0, 'ends by itself with status 0');
  t.equal(arrivals.length, 4, 'four intervals');
  const afterPause = arrivals.filter((a) => a >= continued);
  t.ok(afterPause.length >= 2 && afterPause[1] - continued >= 1000,
    `the interval after the late one a whole second after the pause (${afterPause.map((a) => a - continued).join(', ')} ms after it)`);
});

t.test('-j -D: bcc\'s JSON histograms', async (t) => {
  const json = await startVerboseAttached('biolatency', ['-j', '-D']);
  await runWorkload(scratch(), BLOCKS, 'wr', root);
  const done = await json.stop();
  t.equal(done.code, 0);
  const objects = done.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const mine = objects.find((o) => o.disk === root.disk) as { ts: string; val_type: string; data: { 'interval-start': number; 'interval-end': number; count: number }[] };
  t.ok(mine, `an object for ${root.disk}`);
  t.same(Object.keys(mine), ['ts', 'val_type', 'data', 'disk']);
  t.match(mine.ts, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  t.equal(mine.val_type, 'usecs');
  mine.data.forEach((bucket, slot) => {
    t.same([bucket['interval-start'], bucket['interval-end']], [slot === 0 ? 0 : 2 ** slot, 2 ** (slot + 1) - 1]);
  });
  const total = mine.data.reduce((sum, b) => sum + b.count, 0);
  const unseen = unseenCompletions('biolatency', done.stderr).count;
  t.ok(total + unseen >= 2 * BLOCKS, `counts the workload, or reports it not traced (${total}, ${unseen})`, { stderr: done.stderr });
});

t.test('-F -m: a histogram per flag set, in milliseconds', async (t) => {
  const tool = await startAttached('biolatency', ['-F', '-m'], HEADER);
  await runWorkload(scratch(), BLOCKS, 'wr', root);
  const done = await tool.stop();
  const histograms = parseHistograms(done.stdout);
  t.ok(histograms.every((h) => /^flags = (\w+-)*\w+$/.test(h.section ?? '')), 'each named by its flags');
  t.ok(histograms.every((h) => h.lines[0] === '     msecs               : count    distribution'), 'msecs');
  const total = (op: string): number =>
    histograms.filter((h) => h.section!.endsWith(`-${op}`) || h.section === `flags = ${op}`).reduce((s, h) => s + h.total, 0);
  // a request this machine's kernel completed unseen is reported, in neither histogram
  const unseen = unseenCompletions('biolatency', done.stderr).count;
  t.ok(total('Write') + unseen >= BLOCKS, `writes, counted or reported not traced (${total('Write')}, ${unseen})`, { stderr: done.stderr });
  t.ok(total('Read') + unseen >= BLOCKS, `reads, counted or reported not traced (${total('Read')}, ${unseen})`, { stderr: done.stderr });
});

t.test('-e and --percentiles: average, total and the estimated percentiles; -Q', async (t) => {
  const tool = await startAttached('biolatency', ['-e', '-Q'], HEADER);
  const percentiles = await startAttached('biolatency', ['--percentiles'], HEADER);
  await runWorkload(scratch(), BLOCKS, 'wr', root);
  const done = await tool.stop();
  const summary = /^count (\d+), avg \d+\.\d usecs, p50 ~\d+\.\d, p90 ~\d+\.\d, p99 ~\d+\.\d usecs$/m;
  const avg = /^\navg = (\d+) usecs, total: (\d+) usecs, count: (\d+)\n\n/m.exec(done.stdout);
  t.ok(avg, 'bcc\'s avg line');
  const [average, total, count] = avg!.slice(1).map(Number);
  const unseen = unseenCompletions('biolatency', done.stderr).count;
  t.ok(count + unseen >= 2 * BLOCKS, `-Q counts the workload, or reports it not traced (${count}, ${unseen})`, { stderr: done.stderr });
  t.equal(average, Math.floor(total / count));
  t.equal(parseHistograms(done.stdout)[0].total, count, 'the histogram counts as many');
  t.equal(Number(summary.exec(done.stdout)?.[1]), count, 'summary line');
  const other = await percentiles.stop();
  t.match(other.stdout, summary);
  t.notMatch(other.stdout, /^avg = /m, 'no avg line without -e');
});

t.test('usage errors: one line, exit 2, nothing loaded', async (t) => {
  const unknown = runTool('biolatency', ['-d', 'nosuchdisk0']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, new RegExp(`^biolatency: invalid --disk 'nosuchdisk0': no such disk \\(disks: .*\\b${root.disk}\\b.*\\)`));
  t.equal(unknown.stderr.trim().split('\n').length, 1);
  for (const args of [['1', '2', '3'], ['0'], ['1', 'x'], ['-c', '/nonexistent'], ['--bogus']]) {
    const r = runTool('biolatency', args);
    t.equal(r.code, 2, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1);
    t.equal(r.stdout, '');
  }
});
