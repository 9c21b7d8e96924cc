// `ebpf-tools check` against what is really here: each feature against the
// machine (uname, sysctl, dpkg), fentry and kprobes against the plans the
// tools then really use, and each tool's answer against a run of the tool
// itself with -v. Runs on this host and in each kernel-matrix guest.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { ALL_ATTACHED } from '../common/bpfobject.js';
import { PROBED_COMMANDS } from '../tools/check.js';
import { kernelSnapshot, leftovers, QUIET_LIBBPF, runTool, startTool, withoutSkippedRuns } from './helpers.js';

interface Answer {
  features: { feature: string; works: boolean; detail: string }[];
  tools: { command: string; plan: string | null; limits: string | null; not_used: { plan: string; reason: string }[]; error?: string }[];
}

// every tool run twice (by check, then on its own): minutes in a TCG guest
t.setTimeout(900_000);

const before = kernelSnapshot();
const run = runTool('ebpf-tools', ['check', '--json']);
t.equal(run.code, 0, `check exits 0 (${run.stderr})`);
t.equal(withoutSkippedRuns(run.stderr), '', 'nothing on stderr');
const answer = JSON.parse(run.stdout) as Answer;
const feature = (name: string) => answer.features.find((f) => f.feature === name)!;

t.test('features: as this machine has them', async (t) => {
  t.same(answer.features.map((f) => f.feature),
    ['kernel', 'privileges', 'BTF', 'libbpf', 'ring buffer', 'fentry', 'kprobes', 'tracefs', 'bpf_stats']);
  t.equal(feature('kernel').detail, release());
  t.equal(feature('privileges').works, true, 'the tests run as root');
  t.equal(feature('BTF').works, true);
  const libbpf = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'libbpf1'], { encoding: 'utf8' }).stdout;
  t.equal(feature('libbpf').detail, /^(?:\d+:)?(\d+\.\d+)/.exec(libbpf)![1], `libbpf ${libbpf}`);
  t.equal(feature('ring buffer').works, true, 'every kernel the tools support has ring buffers');
  t.equal(feature('bpf_stats').works, readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim() === '1');
  if (!existsSync('/sys/bus/event_source/devices/kprobe')) {
    t.same(feature('kprobes'), { feature: 'kprobes', works: false, detail: 'no kprobe PMU (kernel built without CONFIG_KPROBES)' });
  } else {
    t.equal(feature('kprobes').works, true, 'a kernel with kprobes takes one on vfs_read');
  }
});

/** How `command` attaches when run now: its -v lines, until it has attached (and, in `test`, that a SIGINT then ends it with status 0). */
async function usedPlan(test: Test, command: string): Promise<{ plan: string | null; stderr: string }> {
  const tool = startTool(command, ['-v'], QUIET_LIBBPF);
  // a tool that attaches nothing ends on its own: what it said is the answer
  await tool.waitForStderr(ALL_ATTACHED, 300_000).catch(() => undefined);
  const done = await tool.stop('SIGINT');
  // a Ctrl-C the moment it has attached still ends the run as any other
  if (ALL_ATTACHED.test(done.stderr)) {
    test.equal(done.code, 0, `${command}: SIGINT right after attaching: status 0 (${done.signal ?? 'no signal'})`);
  }
  const plan = new RegExp(`^${command}: using plan (.+)$`, 'm').exec(done.stderr)?.[1]
    ?? ([...done.stderr.matchAll(/^attached \S+ \((.+)\)$/gm)].map((m) => m[1]).filter((s, i, all) => all.indexOf(s) === i).join(', ') || null);
  return { plan, stderr: done.stderr };
}

t.test('each tool: the plan check names is the one the tool then uses, and each better plan is why-not', async (t) => {
  t.same(answer.tools.map((a) => a.command), PROBED_COMMANDS, 'every command that traces, fsslower through its names');
  for (const a of answer.tools) {
    const used = await usedPlan(t, a.command);
    t.equal(a.plan, used.plan, `${a.command}: ${a.plan}`);
    t.ok(a.plan !== null || a.error, `${a.command}: a plan, or why none`);
    const limits = new RegExp(`^${a.command}: plan .+? sees less: (.*)$`, 'm').exec(used.stderr)?.[1] ?? null;
    t.equal(a.limits, limits, `${a.command}: what its plan misses, as the tool says (${limits ?? 'nothing'})`);
    for (const n of a.not_used) {
      t.ok(used.stderr.includes(`${a.command}: plan ${n.plan} `), `${a.command}: ${n.plan} not used by the tool either`);
      t.ok(n.reason.length > 0, `${a.command}: ${n.plan}: ${n.reason}`);
    }
  }
});

t.test('fentry and kprobes: check says what the file system tools meet', async (t) => {
  const ext4 = answer.tools.find((a) => a.command === 'ext4slower')!;
  if (ext4.plan === 'fentry') {
    t.ok(feature('fentry').works, 'ext4slower uses fentry only where check says fentry works');
  } else {
    t.equal(ext4.not_used[0]?.plan, 'fentry', `ext4slower (${ext4.plan}) passed fentry over first`);
    // fentry works, but not on ext4's functions: a module without BTF (5.10)
    if (feature('fentry').works) t.match(ext4.not_used[0]?.reason, /^kernel BTF has no ext4_/, 'why, where fentry works');
    t.equal(ext4.plan === 'kprobe', feature('kprobes').works, 'then kprobes exactly when they work');
  }
});

t.test('without arguments: the tools, a line each', async (t) => {
  const list = runTool('ebpf-tools', []);
  t.equal(list.code, 0);
  t.same(list.stdout.split('\n').filter(Boolean).map((l) => l.split(': ')[0]),
    ['execsnoop', 'opensnoop', 'fsslower', 'ext4slower', 'xfsslower', 'btrfsslower', 'nfsslower', 'fuseslower', 'biolatency', 'biosnoop']);
});

t.test('the human table: cli-table3 borders, a row per feature and per tool', async (t) => {
  const human = runTool('ebpf-tools', ['check']);
  t.equal(human.code, 0);
  t.match(human.stdout, /^┌─/);
  t.match(human.stdout, /│ fentry +│ (yes|no) +│/);
  for (const command of PROBED_COMMANDS) t.match(human.stdout, new RegExp(`│ ${command} +│`), command);
  t.same(await leftovers(before), [], 'check left nothing loaded');
});
