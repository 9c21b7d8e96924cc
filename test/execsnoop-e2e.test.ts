// execsnoop against the real kernel: exec marker commands with unusual
// arguments and assert the exact line the tool prints for them.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_ATTACHED } from '../common/bpfobject.js';
import { left, right } from '../common/format.js';
import { LIBBPF_LOG_LEVEL } from '../common/log.js';
import {
  perfBufferOpen, referenceTool, runCommand, RunningTool, sleep, startAttached, startTool, startVerboseAttached, withoutSkippedRuns,
} from './helpers.js';

const HEADER = /^PCOMM\s+PID\s+PPID\s+RET ARGS$/;
let counter = 0;
const marker = (): string => `mk${process.pid}x${++counter}x${Date.now() % 100000}`;

function line(comm: string, pid: number, ppid: number, ret: number, args: string): string {
  return `${left(comm, 16)} ${left(pid, 6)} ${left(ppid, 6)} ${right(ret, 3)} ${args}`;
}

/** Execs /bin/echo with these arguments; returns its pid. */
function echo(args: string[], options: { uid?: number } = {}): number {
  const r = spawnSync('/bin/echo', args, { stdio: 'ignore', ...(options.uid !== undefined ? { uid: options.uid } : {}) });
  if (r.status !== 0) throw new Error(`echo failed: ${String(r.error)}`);
  return r.pid!;
}

async function trace(args: string[], header: RegExp = HEADER): Promise<RunningTool> {
  return startAttached('execsnoop', args, header);
}


t.test('an exec with spaces, quotes, an escape sequence and many arguments gives the exact line', async (t) => {
  const tool = await trace([]);
  const m = marker();
  const many = Array.from({ length: 25 }, (_, i) => `arg${i}`);
  const pid = echo([m, 'two words', 'say "hi"', '\x1b[31mred', ...many]);
  const shown = [m, 'two words', 'say "hi"', '\\x1b[31mred', ...many].slice(0, 19);
  const expected = line('echo', pid, process.pid, 0, `/bin/echo ${shown.join(' ')} ...`);
  t.equal(await tool.waitForLine((l) => l.includes(m)), expected);
  const done = await tool.stop('SIGINT');
  t.equal(done.code, 0, 'Ctrl-C exits 0');
  t.equal(withoutSkippedRuns(done.stderr), '', 'nothing on stderr');
});

t.test('-x shows failed execs with the error, and without -x they are not shown', async (t) => {
  const m = `/nonexistent-${marker()}`;
  const withFails = await trace(['-x']);
  const without = await trace([]);
  const r = spawnSync('/bin/bash', ['-c', m], { stdio: 'ignore' });
  const failed = line('bash', r.pid!, process.pid, -2, m);
  t.equal(await withFails.waitForLine((l) => l === failed), failed);
  const okMarker = marker();
  echo([okMarker]);
  await without.waitForLine((l) => l.includes(okMarker));
  t.ok(without.lines.includes(line('bash', r.pid!, process.pid, 0, `/bin/bash -c ${m}`)), 'the successful exec of bash is shown');
  t.notOk(without.lines.includes(failed), 'failed exec hidden without -x');
  await withFails.stop();
  await without.stop();
});

t.test('--max-args, -q, -T, -t, -U, -C, -M columns', async (t) => {
  const tool = await trace(['--max-args', '3', '-q', '-T', '-t', '-U', '-C', '-M'],
    /^TIME {5}TIME\(s\) {2}UID {4}PCOMM {12}PID {4}PPCOMM {11}PPID {3}CPU  RET ARGS$/);
  const m = marker();
  const pid = echo([m, 'b c', 'd', 'e']);
  const got = await tool.waitForLine((l) => l.includes(m));
  // the parent is this process: "node", or "MainThread" under Node 24, which names its main thread so
  const parentComm = readFileSync('/proc/self/comm', 'utf8').trim();
  const tail = `${left('echo', 16)} ${left(pid, 6)} ${left(parentComm, 16)} ${left(process.pid, 6)} \\d+ +0 "/bin/echo" "${m}" "b c" \\.\\.\\.`;
  t.match(got, new RegExp(`^\\d\\d:\\d\\d:\\d\\d \\d+\\.\\d{3} +0 {6}${tail}$`));
  await tool.stop();
});

t.test('-u traces only that user; -P only that parent; -n and -l filter by name and arguments', async (t) => {
  const byUid = await trace(['-u', '65534']);
  const byPpid = await trace(['-P', String(process.pid)]);
  const byName = await trace(['-n', '^ech']);
  const byLine = await trace(['-l', 'needle-[0-9]+']);
  const m1 = marker();
  const nobodyPid = echo([m1, 'needle-42'], { uid: 65534 });
  const m2 = marker();
  const rootPid = echo([m2]);
  // The shell forks before exec'ing true (two commands), so true is a grandchild.
  const viaShell = spawnSync('/bin/sh', ['-c', `/bin/true ${m2}-sh; :`], { stdio: 'ignore' });
  t.equal(await byUid.waitForLine((l) => l.includes(m1)), line('echo', nobodyPid, process.pid, 0, `/bin/echo ${m1} needle-42`));
  await byPpid.waitForLine((l) => l.includes(m2));
  await byName.waitForLine((l) => l.includes(m2));
  await byLine.waitForLine((l) => l.includes(m1));
  await sleep(300);
  t.notOk(byUid.lines.some((l) => l.includes(m2)), '-u hides other users');
  t.equal(byPpid.lines.find((l) => l.startsWith('true ') && l.includes(`${m2}-sh`)), undefined, '-P hides grandchildren');
  t.ok(byPpid.lines.some((l) => l.startsWith('sh ') && l.includes(`${m2}-sh`)), '-P shows the child');
  t.ok(byPpid.lines.some((l) => l.startsWith('echo') && l.includes(String(rootPid))));
  t.notOk(byName.lines.some((l) => l.startsWith('true')), '-n hides other names');
  t.ok(viaShell.status === 0);
  t.notOk(byLine.lines.some((l) => l.includes(m2)), '-l hides other argument lists');
  for (const tool of [byUid, byPpid, byName, byLine]) t.equal((await tool.stop()).code, 0);
});

t.test('--json gives one object per exec with the exact argument bytes', async (t) => {
  const tool = await startVerboseAttached('execsnoop', ['--json']);
  const m = marker();
  const pid = echo([m, 'tab\there', 'nl\nhere']);
  const raw = await tool.waitForLine((l) => l.includes(m));
  const e = JSON.parse(raw);
  t.equal(e.pid, pid);
  t.equal(e.ppid, process.pid);
  t.equal(e.comm, 'echo');
  t.equal(e.retval, 0);
  t.same(e.args, ['/bin/echo', m, 'tab\there', 'nl\nhere']);
  t.equal(e.args_truncated, false);
  await tool.stop();
});

t.test('-v: libbpf\'s log down to its debug messages, less as LIBBPF_LOG_LEVEL says; the attach lines always', async (t) => {
  const verbose = async (env: NodeJS.ProcessEnv): Promise<string> => {
    const tool = startTool('execsnoop', ['-v', '--json'], env);
    await tool.waitForStderr(ALL_ATTACHED);
    return (await tool.stop()).stderr;
  };
  const all = await verbose({});
  t.match(all, /^libbpf: loading object from .*\/execsnoop\.bpf\.o$/m, 'libbpf\'s debug messages');
  t.match(all, /^attached exec_done \(.+\)$/m, 'ours');
  for (const level of ['info', 'warn']) {
    const fewer = await verbose({ [LIBBPF_LOG_LEVEL]: level });
    t.notMatch(fewer, /^libbpf: loading object/m, `LIBBPF_LOG_LEVEL=${level}: no debug messages`);
    t.match(fewer, /^attached exec_done \(.+\)$/m, `LIBBPF_LOG_LEVEL=${level}: ours`);
    t.match(fewer, ALL_ATTACHED);
  }
});

t.test('-c traces only processes in that cgroup v2 directory', async (t) => {
  const base = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((d) => existsSync(`${d}/cgroup.procs`) && existsSync(`${d}/cgroup.controllers`));
  if (!base) throw new Error('no cgroup v2 hierarchy mounted');
  const dir = `${base}/ebpf-tools-test-${process.pid}`;
  mkdirSync(dir);
  t.teardown(() => rmdirSync(dir));
  const tool = await trace(['-c', dir]);
  const inside = marker();
  const outside = marker();
  // A shell moves itself into the cgroup, then execs the marker.
  const child = spawn('/bin/sh', ['-c', `echo $$ > ${dir}/cgroup.procs && /bin/echo ${inside}`], { stdio: 'ignore' });
  await new Promise((resolve) => child.on('close', resolve));
  echo([outside]);
  await tool.waitForLine((l) => l.includes(inside));
  await sleep(300);
  t.notOk(tool.lines.some((l) => l.includes(outside)), 'exec outside the cgroup hidden');
  await tool.stop();
});

t.test('SIGTERM and SIGHUP end it with status 0', async (t) => {
  for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
    const tool = await trace([]);
    t.equal((await tool.stop(signal)).code, 0, signal);
  }
});

t.test('a reader on a pipe sees each line at once, not when a buffer fills', async (t) => {
  const tool = await trace([]); // stdout of the tool is a pipe here
  const m = marker();
  echo([m]);
  // a buffered line would come only when the buffer fills or the tool exits
  await tool.waitForLine((l) => l.includes(m));
  t.equal(tool.proc.exitCode, null, 'the line came through the pipe while the tool runs');
  await tool.stop();
});

/**
 * Runs Debian's C execsnoop (line-buffered, so that it prints its header once
 * attached, as ours does) beside ours with `args`, makes the execs, and
 * compares the PID/PPID/RET/ARGS of every line naming `tag`: `count` of them.
 * `last` tells the last of the execs' lines, waited for in both outputs.
 */
async function sameAsC(t: Test, args: string[], makeExecs: (tag: string) => void, last: (line: string, tag: string) => boolean, count: number, what: string): Promise<void> {
  const reference = referenceTool('execsnoop');
  if (!existsSync(reference)) throw new Error(`${reference} missing: install Debian's libbpf-tools`);
  if (!existsSync('/sys/kernel/tracing/events')) spawnSync('mount', ['-t', 'tracefs', 'tracefs', '/sys/kernel/tracing']);
  const theirs = new RunningTool('/usr/bin/stdbuf', ['-oL', reference, ...args]);
  const ours = await trace(args);
  await theirs.waitForLine(/^PCOMM/);
  await perfBufferOpen(theirs);
  const tag = marker();
  makeExecs(tag);
  await ours.waitForLine((l) => last(l, tag));
  await theirs.waitForLine((l) => last(l, tag));
  const theirsDone = await theirs.stop('SIGINT');
  await ours.stop();
  const fields = (l: string): string => l.trim().split(/\s+/).slice(1).join(' ');
  const pick = (lines: string[]): string[] => lines.filter((l) => l.includes(tag)).map(fields);
  const theirLines = pick(theirsDone.stdout.split('\n'));
  t.equal(theirLines.length, count, `the C tool saw every exec (${what})`);
  t.same(pick(ours.lines), theirLines, 'same PID/PPID/RET/ARGS');
}

t.test('same execs as Debian\'s C execsnoop (PID, PPID, RET, ARGS)', (t) => sameAsC(t, ['-x'], (tag) => {
  for (let i = 0; i < 10; i++) echo([`${tag}-${i}`, 'x y', `${i}`]);
  spawnSync('/bin/bash', ['-c', `/nonexistent-${tag}`], { stdio: 'ignore' });
}, (l, tag) => l.includes(`/nonexistent-${tag}`), 12, '10 echo, bash, its failed exec'));

/** A directory of scripts: #!/bin/sh, #!/usr/bin/env sh, #!/bin/sh -e, and one whose interpreter is a script. */
function scripts(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'execsnoop-scripts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = (name: string, text: string): void => writeFileSync(join(dir, name), text, { mode: 0o755 });
  script('s.sh', '#!/bin/sh\nexit 0\n');
  script('e.sh', '#!/usr/bin/env sh\nexit 0\n');
  script('x.sh', '#!/bin/sh -e\nexit 0\n');
  script('inner', '#!/bin/sh\nexit 0\n');
  script('outer', `#!${dir}/inner\n`);
  return dir;
}

t.test('scripts show as typed: the file name, then the caller\'s arguments (not the interpreter\'s argv)', async (t) => {
  const dir = scripts(t);
  const tool = await trace([]);
  const m = marker();
  const run = (file: string, args: string[]) => runCommand(file, args, { cwd: dir });
  const cases: Array<[string, string, string[], string]> = [
    ['s.sh', './s.sh', [`${m}-a`, 'B'], `./s.sh ${m}-a B`],
    ['e.sh', './e.sh', [`${m}-b`, 'D'], `./e.sh ${m}-b D`],
    ['x.sh', './x.sh', [`${m}-c`], `./x.sh ${m}-c`],
    ['s.sh', `${dir}/s.sh`, [`${m}-d`, 'two words'], `${dir}/s.sh ${m}-d two words`],
    ['outer', './outer', [`${m}-e`, 'F'], `./outer ${m}-e F`],
    ['echo', '/bin/echo', [`${m}-f`, 'G'], `/bin/echo ${m}-f G`],
  ];
  for (const [comm, file, args, shown] of cases) {
    const { pid, status } = run(file, args);
    t.equal(status, 0, `${file} ran`);
    t.equal(await tool.waitForLine((l) => l.includes(`${args[0]} `) || l.endsWith(args[0])), line(comm, pid, process.pid, 0, shown), file);
  }
  // env then execs sh itself: that exec is a binary's, with the argv env gave it
  const envExec = tool.lines.find((l) => l.includes(`${m}-b`) && !l.startsWith('e.sh'));
  t.match(envExec, new RegExp(`^sh +\\d+ +\\d+ +0 /\\S*/sh \\./e\\.sh ${m}-b D$`), 'env\'s exec of sh');
  await tool.stop();
});

t.test('--json gives a script\'s interpreter and its arguments in interpreter, null for a binary', async (t) => {
  const dir = scripts(t);
  const tool = await startVerboseAttached('execsnoop', ['--json']);
  const m = marker();
  const cases: Array<[string, string[], string[] | null]> = [
    ['./s.sh', [`${m}-a`], ['/bin/sh']],
    ['./e.sh', [`${m}-b`], ['/usr/bin/env', 'sh']],
    ['./x.sh', [`${m}-c`, 'Y'], ['/bin/sh', '-e']],
    ['./outer', [`${m}-d`], ['/bin/sh', `${dir}/inner`]],
    ['/bin/echo', [`${m}-e`], null],
  ];
  for (const [file, args, interpreter] of cases) {
    const { pid } = runCommand(file, args, { cwd: dir });
    const e = JSON.parse(await tool.waitForLine((l) => l.includes(`"${args[0]}"`) && l.includes(`"pid":${pid},`)));
    t.same(e.args, [file, ...args], `${file}: args as typed`);
    t.same(e.interpreter, interpreter, `${file}: interpreter`);
  }
  await tool.stop();
});

t.test('a script given more arguments than the kernel side counts (64): its path found by its file name', async (t) => {
  const dir = scripts(t);
  const tool = await startVerboseAttached('execsnoop', ['--json', '--max-args', '100']);
  const m = marker();
  const many = (tag: string): string[] => [`${m}-${tag}`, ...Array.from({ length: 69 }, (_, i) => `a${i}`)];
  const cases: Array<[string, string[], string[]]> = [
    ['./x.sh', many('g'), ['/bin/sh', '-e']],
    ['./outer', many('h'), ['/bin/sh', `${dir}/inner`]],
  ];
  for (const [file, args, interpreter] of cases) {
    const { pid } = runCommand(file, args, { cwd: dir });
    const e = JSON.parse(await tool.waitForLine((l) => l.includes(`"${args[0]}"`) && l.includes(`"pid":${pid},`)));
    t.same(e.args, [file, ...args], `${file}: ${args.length} arguments as typed`);
    t.same(e.interpreter, interpreter, `${file}: interpreter`);
  }
  await tool.stop();
});

t.test('scripts: same lines as Debian\'s C execsnoop (PID, PPID, RET, ARGS)', (t) => {
  const dir = scripts(t);
  return sameAsC(t, [], (tag) => {
    for (const file of ['./s.sh', './e.sh', './x.sh', `${dir}/s.sh`, './outer', '/bin/echo']) {
      runCommand(file, [tag, 'A B', 'C'], { cwd: dir });
    }
  }, (l, tag) => l.startsWith('echo') && l.includes(tag), 7, '5 scripts, env\'s exec of sh, echo');
});
