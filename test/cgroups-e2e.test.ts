// --print-cgroup and --cgroup against the real kernel: processes moved into
// cgroups this test makes (nested, hostile names, a container-shaped one,
// one that lives under 50 ms, a pod's) and the exact column and JSON they
// get, in execsnoop, opensnoop and ext4slower; and the kernel's table of
// names reading again a name it could not read.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject } from '../common/bpfobject.js';
import { PathStatus } from '../common/cgroups.js';
import { left, right } from '../common/format.js';
import { cgroupDir as dir, heldCommand, makeCgroups, runIn, TEST_CONTAINER_ID as CONTAINER } from './cgroup-helpers.js';
import { compileOps, escapeRegExp, filesystemType } from './fsslower-ops.js';
import { type RunningTool, sleep, startAttached, startTool, startVerboseAttached, withoutSkippedRuns } from './helpers.js';

/**
 * How long the brief cgroup may live: 50 ms here; in a TCG guest a fork and
 * exec alone take a few hundred ms, more under load, so there it is 10 s.
 * Either way the tools are stopped meanwhile, so they read its events only
 * once it is gone.
 */
const BRIEF_MS = process.env.VM_RUN_KERNEL ? 10000 : 50;

const BASE = `/ebpf-tools-cg-${process.pid}`;
const NESTED = `${BASE}/one/two/three`;
const HOSTILE = Buffer.concat([Buffer.from(`${BASE}/ev\x1b[31mil`), Buffer.from([0xff]), Buffer.from('x')]);
const DOCKER = `${BASE}/docker-${CONTAINER}.scope`;
/** A Kubernetes pod's own cgroup as the systemd driver names it (its uid's dashes as underscores), and a container in it. */
const POD_UID = `${process.pid.toString(16).padStart(8, '0')}-0123-4567-89ab-0123456789ab`;
const POD = `${BASE}/kubepods-besteffort-pod${POD_UID.replace(/-/g, '_')}.slice`;
const POD_CONTAINER_ID = `${CONTAINER.slice(0, 8)}${'f'.repeat(56)}`;
const POD_CONTAINER = `${POD}/cri-containerd-${POD_CONTAINER_ID}.scope`;

t.before(() => makeCgroups(BASE, `${BASE}/one`, `${BASE}/one/two`, NESTED, HOSTILE, DOCKER, POD, POD_CONTAINER));

let counter = 0;
const marker = (): string => `/cg${process.pid}x${++counter}`;

const EXEC_HEADER = /^PCOMM\s+PID\s+PPID\s+RET (CGROUP|CONTAINER)\s+ARGS$/;
const OPEN_HEADER = /^PID\s+COMM\s+FD\s+ERR (CGROUP|CONTAINER)\s+PATH$/;
/** An exec's line; the CGROUP column is 32 wide, CONTAINER 12. */
const execLine = (comm: string, pid: number, column: string, args: string, width = 32): string =>
  `${left(comm, 16)} ${left(pid, 6)} ${left(process.pid, 6)} ${right(0, 3)} ${left(column, width)} ${args}`;

async function stopped(t: { equal(a: unknown, b: unknown): void }, tool: RunningTool): Promise<void> {
  const done = await tool.stop();
  t.equal(done.code, 0);
  t.equal(withoutSkippedRuns(done.stderr), '');
}

t.test('execsnoop --print-cgroup: the path three deep and a hostile name, escaped in the column', async (t) => {
  const tool = await startAttached('execsnoop', ['--print-cgroup'], EXEC_HEADER);
  const m1 = marker();
  const nested = await runIn(NESTED, '/bin/echo', [m1]);
  const m2 = marker();
  const hostile = await runIn(HOSTILE, '/bin/echo', [m2]);
  t.equal(await tool.waitForLine((l) => l.startsWith('echo') && l.includes(m1)), execLine('echo', nested, NESTED, `/bin/echo ${m1}`));
  t.equal(await tool.waitForLine((l) => l.startsWith('echo') && l.includes(m2)),
    execLine('echo', hostile, `${BASE}/ev\\x1b[31mil\\xffx`, `/bin/echo ${m2}`));
  await stopped(t, tool);
});

/** Starts a --json tool; ready once an exec (execsnoop) or open (opensnoop) of a probe shows. */
async function startJson(tool: 'execsnoop' | 'opensnoop', args: string[]): Promise<RunningTool> {
  const running = startTool(tool, ['--json', ...args]);
  const probe = marker();
  for (let seen = false; !seen;) {
    await runIn('', tool === 'execsnoop' ? '/bin/echo' : '/bin/cat', [probe]);
    seen = await running.waitForLine((l) => l.includes(probe), 200).then(() => true, () => running.proc.exitCode !== null);
  }
  return running;
}

const json = (tool: RunningTool, m: string, comm: string): Promise<Record<string, unknown>> =>
  tool.waitForLine((l) => l.includes(m) && l.includes(`"comm":"${comm}"`)).then((l) => JSON.parse(l) as Record<string, unknown>);

t.test('--json: cgroup_id always (the directory inode), cgroup exact with --print-cgroup', async (t) => {
  const ids = await startJson('execsnoop', []);
  const named = await startJson('execsnoop', ['--print-cgroup']);
  const opens = await startJson('opensnoop', ['--print-cgroup']);
  const m1 = marker();
  await runIn(NESTED, '/bin/cat', [m1]);
  const m2 = marker();
  await runIn(HOSTILE, '/bin/cat', [m2]);
  const nestedId = statSync(dir(NESTED)).ino;
  const hostileId = statSync(dir(HOSTILE)).ino;
  const plain = await json(ids, m1, 'cat');
  t.equal(plain.cgroup_id, nestedId);
  t.notOk('cgroup' in plain, 'no path without --print-cgroup');
  t.same([(await json(named, m1, 'cat')).cgroup, (await json(named, m1, 'cat')).cgroup_id], [NESTED, nestedId]);
  const hostile = await json(named, m2, 'cat');
  t.same([hostile.cgroup, hostile.cgroup_id], [`${BASE}/ev\x1b[31mil\udcffx`, hostileId], 'exact bytes: \\xff as \\udcff');
  const opened = await json(opens, m2, 'cat');
  t.same([opened.path, opened.cgroup, opened.cgroup_id], [m2, `${BASE}/ev\x1b[31mil\udcffx`, hostileId]);
  for (const tool of [ids, named, opens]) t.equal((await tool.stop()).code, 0);
});

t.test('a cgroup made, used for one exec and one open, and removed within 50 ms keeps its path', async (t) => {
  const execs = await startAttached('execsnoop', ['--print-cgroup'], EXEC_HEADER);
  const opens = await startAttached('opensnoop', ['--print-cgroup'], OPEN_HEADER);
  const brief = `${BASE}/brief-${Date.now()}`;
  const m = marker();
  const held = heldCommand('/bin/cat', [m]);
  await sleep(100); // the shell started, waiting
  for (const tool of [execs, opens]) tool.proc.kill('SIGSTOP');
  const started = process.hrtime.bigint();
  mkdirSync(dir(brief));
  const pid = await held.runIn(brief);
  rmdirSync(dir(brief));
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  for (const tool of [execs, opens]) tool.proc.kill('SIGCONT');
  t.ok(elapsedMs < BRIEF_MS, `made, used and removed in ${elapsedMs.toFixed(1)} ms, while the tools were stopped`);
  t.equal(await execs.waitForLine((l) => l.startsWith('cat') && l.includes(m)), execLine('cat', pid, brief, `/bin/cat ${m}`));
  t.equal(await opens.waitForLine((l) => l.endsWith(` ${m}`)),
    `${left(pid, 6)} ${left('cat', 16)} ${right(-1, 3)} ${right(2, 3)} ${left(brief, 32)} ${m}`);
  await stopped(t, execs);
  await stopped(t, opens);
});

t.test('--print-cgroup=container: the 12-character id of a docker-<id>.scope, the path elsewhere; --cgroup takes the id', async (t) => {
  const all = await startAttached('execsnoop', ['--print-cgroup=container'], EXEC_HEADER);
  const only = await startAttached('execsnoop', ['--print-cgroup=container', '--cgroup', CONTAINER.slice(0, 12)], EXEC_HEADER);
  const byPath = await startAttached('opensnoop', ['--print-cgroup', '--cgroup', NESTED], OPEN_HEADER);
  const outside = marker();
  const outsidePid = await runIn(NESTED, '/bin/cat', [outside]);
  const inside = marker();
  const insidePid = await runIn(DOCKER, '/bin/cat', [inside]);
  const containerLine = `${left('cat', 16)} ${left(insidePid, 6)} ${left(process.pid, 6)} ${right(0, 3)} ${CONTAINER.slice(0, 12)} /bin/cat ${inside}`;
  t.equal(await all.waitForLine((l) => l.startsWith('cat') && l.includes(inside)), containerLine);
  t.equal(await all.waitForLine((l) => l.startsWith('cat') && l.includes(outside)),
    `${left('cat', 16)} ${left(outsidePid, 6)} ${left(process.pid, 6)} ${right(0, 3)} ${left(NESTED, 12)} /bin/cat ${outside}`);
  t.equal(await only.waitForLine((l) => l.startsWith('cat') && l.includes(inside)), containerLine);
  t.notOk(only.lines.some((l) => l.includes(outside)), 'the container filter leaves out the other cgroup');
  t.match(await byPath.waitForLine((l) => l.endsWith(` ${outside}`)), new RegExp(`^${outsidePid} .* ${NESTED} +${outside}$`));
  t.notOk(byPath.lines.some((l) => l.includes(inside)), 'a path as CGROUP shows it filters too');
  for (const tool of [all, only, byPath]) await stopped(t, tool);
});

t.test('--print-cgroup=container: pod<uid> for a pod\'s own cgroup, which --cgroup takes back, with the pod\'s containers', async (t) => {
  const all = await startAttached('execsnoop', ['--print-cgroup=container'], EXEC_HEADER);
  const pod = await startAttached('execsnoop', ['--print-cgroup=container', '--cgroup', `pod${POD_UID}`], EXEC_HEADER);
  // in this order, so that once the pod's tool has shown the last, it has read (and left out) the first
  const outside = marker();
  await runIn(NESTED, '/bin/echo', [outside]);
  const inPod = marker();
  const inPodPid = await runIn(POD, '/bin/echo', [inPod]);
  const inContainer = marker();
  const inContainerPid = await runIn(POD_CONTAINER, '/bin/echo', [inContainer]);
  const podLine = execLine('echo', inPodPid, `pod${POD_UID}`, `/bin/echo ${inPod}`, 12);
  const containerLine = execLine('echo', inContainerPid, POD_CONTAINER_ID.slice(0, 12), `/bin/echo ${inContainer}`, 12);
  const echoOf = (m: string) => (l: string): boolean => l.startsWith('echo') && l.endsWith(` ${m}`);
  t.equal(await all.waitForLine(echoOf(inPod)), podLine, 'the pod\'s own cgroup: pod<uid>, dashed');
  t.equal(await all.waitForLine(echoOf(inContainer)), containerLine, 'a container in the pod: its id');
  t.equal(await pod.waitForLine(echoOf(inPod)), podLine);
  t.equal(await pod.waitForLine(echoOf(inContainer)), containerLine, '--cgroup pod<uid>: its containers too');
  t.notOk(pod.lines.some((l) => l.includes(outside)), '--cgroup pod<uid> leaves out the cgroups outside the pod');
  for (const tool of [all, pod]) await stopped(t, tool);
});

function bpftool(args: string[]): string {
  const r = spawnSync('bpftool', ['-j', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool ${args.slice(0, 3).join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The id of a running tool's cgroup_paths map, found among the maps its file descriptors hold. */
function cgroupPathsMap(tool: RunningTool): string {
  const fdinfo = `/proc/${tool.proc.pid}/fdinfo`;
  for (const fd of readdirSync(fdinfo)) {
    let id: string | undefined;
    try {
      id = /^map_id:\s*(\d+)$/m.exec(readFileSync(`${fdinfo}/${fd}`, 'utf8'))?.[1];
    } catch {
      continue; // closed meanwhile
    }
    if (id !== undefined && (JSON.parse(bpftool(['map', 'show', 'id', id])) as { name: string }).name === 'cgroup_paths') return id;
  }
  throw new Error(`${tool.proc.spawnargs.join(' ')} holds no cgroup_paths map`);
}

const hexBytes = (bytes: Buffer): string[] => [...bytes].map((b) => b.toString(16).padStart(2, '0'));

// A name the kernel cannot read does not happen at will: a cgroup v2
// directory cannot be renamed, and a task's cgroup lives while its names are
// read. So the entry such a walk leaves is put by hand in a running tool's
// table, as is a known one with a name the cgroup does not have.
t.test('cgroup_paths: an unknown name is read again at the cgroup\'s next event, a known one is kept', async (t) => {
  const unread = `${BASE}/unread`;
  const known = `${BASE}/known`;
  makeCgroups(unread, known);
  const tool = await startAttached('opensnoop', ['--print-cgroup'], OPEN_HEADER);
  const map = cgroupPathsMap(tool);
  const obj = BpfObject.openUnchecked('opensnoop');
  const layout = obj.struct('cgroup_path');
  obj.close();
  const put = (path: string, status: PathStatus, names: string): void => {
    const key = Buffer.alloc(8);
    key.writeBigUInt64LE(BigInt(statSync(dir(path)).ino));
    const value = Buffer.alloc(layout.size);
    value.writeUInt32LE(Buffer.byteLength(names), layout.fields.get('end')!.offset);
    value.writeUInt32LE(status, layout.fields.get('status')!.offset);
    value.write(names, layout.fields.get('names')!.offset);
    // noexist: the cgroups are new, so no event of theirs has been named yet
    bpftool(['map', 'update', 'id', map, 'key', 'hex', ...hexBytes(key), 'value', 'hex', ...hexBytes(value), 'noexist']);
  };
  put(unread, PathStatus.Unknown, '');
  put(known, PathStatus.Complete, 'kept\0');
  const m1 = marker();
  const unreadPid = await runIn(unread, '/bin/cat', [m1]);
  const m2 = marker();
  const knownPid = await runIn(known, '/bin/cat', [m2]);
  const openLine = (pid: number, column: string, m: string): string =>
    `${left(pid, 6)} ${left('cat', 16)} ${right(-1, 3)} ${right(2, 3)} ${left(column, 32)} ${m}`;
  t.equal(await tool.waitForLine((l) => l.endsWith(` ${m1}`)), openLine(unreadPid, unread, m1), 'the unknown one read again: its path');
  t.equal(await tool.waitForLine((l) => l.endsWith(` ${m2}`)), openLine(knownPid, '/kept', m2), 'the known one not walked again');
  await stopped(t, tool);
});

t.test('a newline in a cgroup name is refused by the kernel (so never shown)', async (t) => {
  t.throws(() => mkdirSync(dir(`${BASE}/new\nline`)), { code: 'EINVAL' });
});

t.test('ext4slower: CGROUP (CONTAINER) before FILENAME, --cgroup by path or container id, cgroup in JSON', async (t) => {
  const work = mkdtempSync('/var/tmp/cgroups-test-');
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  if (filesystemType(work) !== 'ext4') throw new Error(`${work} is not on ext4 (${filesystemType(work)}): the test needs it`);
  const ops = compileOps(work);
  const header = /^TIME +COMM +PID +T BYTES +OFF_KB +LAT\(ms\) (CGROUP|CONTAINER) +FILENAME$/;
  // One after another: four loading at once on a TCG guest's one CPU took longer than any wait.
  const all = await startAttached('ext4slower', ['--print-cgroup', '0'], (l) => header.test(l));
  const byId = await startAttached('ext4slower', ['--print-cgroup=container', '--cgroup', CONTAINER.slice(0, 12), '0'], (l) => header.test(l));
  const byPath = await startAttached('ext4slower', ['-c', '--print-cgroup', '--cgroup', NESTED, '0'], /^ENDTIME_ns,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,CGROUP,FILE$/);
  const json = await startVerboseAttached('ext4slower', ['--json', '--print-cgroup', '0']);
  const nestedFile = join(work, `nested-${process.pid}.dat`);
  const dockerFile = join(work, `docker-${process.pid}.dat`);
  const nested = await runIn(NESTED, ops, ['slow', nestedFile, '0'], 'g');
  const docker = await runIn(DOCKER, ops, ['slow', dockerFile, '0'], 'g');
  // e4ops slow: open, the pwrite of one page, a pread of 100 bytes
  const write = (pid: number, column: string, file: string): RegExp => new RegExp(
    `^\\d\\d:\\d\\d:\\d\\d ${left('e4ops', 16)} ${left(pid, 7)} W ${left(4096, 7)} ${left(0, 8)} [ ]{0,3}\\d+\\.\\d\\d ` +
    `${escapeRegExp(column)} ${escapeRegExp(file)}$`);
  const base = (path: string): string => path.slice(path.lastIndexOf('/') + 1);
  t.match(await all.waitForLine((l) => l.includes(' W ') && l.endsWith(base(nestedFile))), write(nested, left(NESTED, 32), base(nestedFile)));
  t.match(await all.waitForLine((l) => l.includes(' W ') && l.endsWith(base(dockerFile))), write(docker, left(DOCKER, 32), base(dockerFile)));
  t.match(await byId.waitForLine((l) => l.includes(' W ') && l.endsWith(base(dockerFile))), write(docker, CONTAINER.slice(0, 12), base(dockerFile)));
  t.match(await byPath.waitForLine((l) => l.includes(',W,') && l.endsWith(base(nestedFile))),
    new RegExp(`^\\d+,e4ops,${nested},W,4096,0,\\d+,${escapeRegExp(NESTED)},${escapeRegExp(base(nestedFile))}$`));
  const object = JSON.parse(await json.waitForLine((l) => l.includes('"type":"W"') && l.includes(base(dockerFile)))) as Record<string, unknown>;
  t.same([object.pid, object.cgroup, object.cgroup_id], [docker, DOCKER, statSync(dir(DOCKER)).ino], 'JSON: the full path and id');
  await sleep(200);
  t.notOk(byId.lines.some((l) => l.endsWith(base(nestedFile))), '--cgroup by container id leaves out the other cgroup');
  t.notOk(byPath.lines.some((l) => l.endsWith(base(dockerFile))), '--cgroup by path leaves out the other cgroup');
  for (const tool of [all, byId, byPath]) await stopped(t, tool);
  t.equal((await json.stop()).code, 0);
});
