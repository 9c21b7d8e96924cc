// ext4slower against the real kernel. A small C program does known reads,
// writes, opens and fsyncs on a file of the ext4 root filesystem and on a
// tmpfs file, and the exact lines are asserted. Upstream's C ext4slower
// cannot attach on this machine (no kprobes, fentry refused), so the
// expected values are stated here: the offset is where each operation
// starts, BYTES what it returned, an fsync covers the whole file (LL_MAX).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ALL_ATTACHED } from '../common/bpfobject.js';
import { escapeText } from '../common/escape.js';
import { EventStream } from '../common/events.js';
import { loadWithPlans } from '../common/plan.js';
import { RETRY_PLANS_VARIABLE } from '../common/refusedplans.js';
import { attachPlans, decodeEvent, eventDecoder, kernelConfig, parseOptions as parseFsslower, renderLine, SYSCALLS } from '../tools/fsslower.js';
import {
  kernelSnapshot, leftovers, QUIET_LIBBPF, runTool, sleep, SLOWDOWN, startAttached, startTool, startVerboseAttached, withoutSkippedRuns,
} from './helpers.js';
import { refusal } from './plans.js';
import { compileOps, escapeRegExp, EXPECTED, filesystemType, pidColumn, row, startOps as startFsOps } from './fsslower-ops.js';

/** As ext4slower parses them (fsslower -t ext4). */
const parseOptions = (argv: string[]) => parseFsslower(argv, 'ext4slower');

const before = kernelSnapshot();
const work = mkdtempSync('/var/tmp/ext4slower-test-');
t.teardown(() => rmSync(work, { recursive: true, force: true }));
if (filesystemType(work) !== 'ext4') throw new Error(`${work} is not on ext4 (${filesystemType(work)}): the test needs the ext4 root`);
if (filesystemType('/dev/shm') !== 'tmpfs') throw new Error('/dev/shm is not tmpfs');
const OPS = compileOps(work);

const startOps = (args: string[]) => startFsOps(OPS, args);


t.test('each read, write, open and fsync on ext4 gives its exact line in every format; tmpfs gives none', async (t) => {
  // A hostile name: the lines must stay one per operation, escaped; JSON keeps the bytes.
  const rawName = `ops, "x" ${process.pid}\n\x1b[1m.dat`;
  const ext4File = join(work, rawName);
  const shmFile = `/dev/shm/ext4slower-test-${process.pid}.dat`;
  t.teardown(() => rmSync(shmFile, { force: true }));
  const ops = startOps(['ops', ext4File, shmFile]);
  const pid = ops.pid;
  const header = /^Tracing ext4 operations\.\.\. Hit Ctrl-C to end\.$/;
  // One after another: five loading at once on a TCG guest's one CPU took longer than any wait.
  const all = await startAttached('ext4slower', ['0'], header);
  const byPid = await startAttached('ext4slower', ['-p', String(pid), '0'], header);
  const csv = await startAttached('ext4slower', ['-c', '0'], /^ENDTIME_ns,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE$/);
  const bccCsv = await startAttached('ext4slower', ['-j', '0'], /^ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE$/);
  const json = await startVerboseAttached('ext4slower', ['--json', '-p', String(pid), '0']);
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
  t.equal(withoutSkippedRuns(finished[0].stderr), '', 'nothing on stderr');

  const pidLines = byPid.lines.slice(2);
  t.ok(pidLines.length >= EXPECTED.length, '-p shows the operations');
  t.same(pidLines.filter((l) => pidColumn(l) !== String(pid)), [], '-p shows that process only');
  // but for TIME and LAT(ms), with its padding (a guest's latencies reach 10 ms and more)
  const untimed = (l: string): string => l.replace(/^\S+/, '').replace(/ +\d+\.\d\d /, ' ');
  t.same(ofFile(pidLines).map(untimed), mine.map(untimed), '-p: the same lines');

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
  const over300 = await startAttached('ext4slower', ['300'], /^Tracing ext4 operations slower than 300 ms\.\.\. Hit Ctrl-C to end\.$/);
  const over10000 = await startAttached('ext4slower', ['-m', '10000'], /^Tracing ext4 operations slower than 10000 ms\.\.\. Hit Ctrl-C to end\.$/);
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
  t.equal(withoutSkippedRuns(done.stderr), '', 'nothing on stderr');
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
  for (let waited = 0; lines.length < EXPECTED.length && waited < 5000 * SLOWDOWN; waited += 20) await sleep(20);
  stream!.stop(onEvent);
  obj.close();
  t.equal(lines.length, EXPECTED.length, `one line per operation on the ext4 file, none for tmpfs:\n${lines.join('\n')}`);
  lines.forEach((line, i) => {
    const [type, bytes, offset] = EXPECTED[i];
    t.match(line, row(ops.pid, type, bytes, Math.floor(offset / 1024), 'tracepoints.dat'), `${type} ${bytes} at ${offset}`);
  });
});

t.test('a plan the kernel refused is passed over by the next start of this boot, with why; tried again on request', async (t) => {
  const plans = attachPlans(parseOptions([])).map((p) => p.name);
  /** ext4slower -v --json 0 until attached: its plan, and what -v said about each better one */
  const run = async (env: NodeJS.ProcessEnv) => {
    const tool = startTool('ext4slower', ['-v', '--json', '0'], { ...env, ...QUIET_LIBBPF });
    await tool.waitForStderr(ALL_ATTACHED);
    const done = await tool.stop('SIGINT');
    const chosen = /^ext4slower: using plan (.+)$/m.exec(done.stderr)![1];
    return { chosen, passedOver: plans.slice(0, plans.indexOf(chosen)).map((p) => refusal('ext4slower', p, done.stderr)) };
  };
  const first = await run({ [RETRY_PLANS_VARIABLE]: '1' });
  const next = await run({});
  const again = await run({ [RETRY_PLANS_VARIABLE]: '1' });
  t.equal(next.chosen, first.chosen, `the same plan (${first.chosen})`);
  t.equal(again.chosen, first.chosen, 'tried again: the same plan');
  t.same(again.passedOver, first.passedOver, 'tried again: refused (or skipped) as the first time');
  // refused at load with EPERM or EOPNOTSUPP/ENOTSUPP, or at attach with those or EINVAL: the kernel's answer until the next boot
  const stable = /^failed: (failed to load BPF programs: (Operation not permitted|Operation not supported|Unknown error 524)|failed to attach .+: (Operation not permitted|Invalid argument|Operation not supported|Unknown error 524))$/;
  first.passedOver.forEach((why, i) => {
    const expected = why && stable.test(why) ? `skipped: refused earlier this boot (${why.slice('failed: '.length)})` : why;
    t.equal(next.passedOver[i], expected, `${plans[i]}: ${expected}`);
  });
});

t.test('-d ends the run by itself with status 0', async (t) => {
  const r = runTool('ext4slower', ['-d', '1', '10000']);
  t.equal(r.code, 0);
  t.equal(r.stdout.split('\n')[0], 'Tracing ext4 operations slower than 10000 ms for 1 secs.');
  t.equal(withoutSkippedRuns(r.stderr), '');
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
