// Every input a user can get wrong, for every option of every tool: one
// line that names the problem, exit 2, no stack trace, nothing loaded. The
// options come from each tool's --help, so a new option without an entry in
// the matrix fails here. The tools run with libbpf hidden
// (EBPF_TOOLS_LIBBPF): a mistake found only after libbpf was loaded would
// exit 1 with the libbpf message instead of 2, and a good value shows that
// line, which proves the option was accepted.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPTIONAL_VALUES } from '../common/cli.js';
import { blockDevices } from '../common/disks.js';
import { toolOf } from '../common/commands.js';
import { baseArgs, cgroup2Root, helpEntries, runTool, type HelpEntry, startTool, TOOLS, usageError, type Finished } from './helpers.js';

const tools = TOOLS;
const NO_LIBBPF = { EBPF_TOOLS_LIBBPF: '/nonexistent/libbpf.so.1' };

/** What a value means, and so which values are wrong for it. */
type Kind = 'count' | 'threshold' | 'milliseconds' | 'regex' | 'user' | 'comm' | 'flag' | 'disk' | 'cgroup' | 'map' | 'fstype' | 'cgroupMode' | 'listen' | 'comms'
  | 'prefix' | 'command';

/** --prometheus and, with it, --prometheus-comms, which every tool has (biolatency: no comm label). */
const EXPORTER: Record<string, Kind> = { '--prometheus': 'listen', '--prometheus-comms': 'comms' };
/** --prometheus-cgroups: the tools whose counters carry the cgroup id of their events. */
const CGROUP_LABEL: Record<string, Kind> = { '--prometheus-cgroups': 'comms' };

/** The kind of every option and positional that takes a value, by the name --help shows last. */
const VALUE_KINDS: Record<string, Record<string, Kind>> = {
  execsnoop: { ...EXPORTER, ...CGROUP_LABEL, '--uid': 'user', '--name': 'regex', '--line': 'regex', '--ppid': 'count', '--max-args': 'count', '--cgroup': 'cgroup', '--cgroupmap': 'map', '--mntnsmap': 'map', '--print-cgroup': 'cgroupMode' },
  opensnoop: {
    ...EXPORTER, ...CGROUP_LABEL, '--pid': 'count', '--tid': 'count', '--uid': 'user', '--duration': 'count', '--name': 'comm', '--flag_filter': 'flag',
    '--path': 'prefix', '--exec': 'command', '--buffer-pages': 'count', '--cgroup': 'cgroup', '--cgroupmap': 'map', '--mntnsmap': 'map',
    '--print-cgroup': 'cgroupMode',
  },
  biolatency: { '--prometheus': 'listen', interval: 'count', count: 'count', '--disk': 'disk', '--cgroup': 'cgroup', '--cgroupmap': 'map', '--mntnsmap': 'map', '--cgroups-max': 'count' },
  biosnoop: { ...EXPORTER, ...CGROUP_LABEL, duration: 'count', '--disk': 'disk', '--min': 'milliseconds', '--cgroup': 'cgroup', '--cgroupmap': 'map', '--mntnsmap': 'map', '--print-cgroup': 'cgroupMode' },
  fsslower: { ...EXPORTER, ...CGROUP_LABEL, min_ms: 'threshold', '--type': 'fstype', '--pid': 'count', '--min': 'threshold', '--duration': 'count', '--cgroup': 'cgroup', '--print-cgroup': 'cgroupMode' },
  ext4slower: { ...EXPORTER, ...CGROUP_LABEL, min_ms: 'threshold', '--type': 'fstype', '--pid': 'count', '--min': 'threshold', '--duration': 'count', '--cgroup': 'cgroup', '--print-cgroup': 'cgroupMode' },
};

const HUGE = 100_000;
/** Wrong for every kind, and dangerous if echoed raw: escapes, a newline, a bell; too long for a name; an unclosed [. */
const HOSTILE = `\x1b[31m\n\x07${'x'.repeat(20)}[`;
/** Kinds for which HOSTILE is a good value: a path prefix may hold any bytes a path may. */
const HOSTILE_ALLOWED = new Set<Kind>(['prefix']);
const NUMBERS = ['abc', '-1', '1.5', '1e3', '0x10', 'NaN', '5abc', '\u0663', '99999999999999999999', '9'.repeat(HUGE)];
const BAD: Record<Kind, string[]> = {
  count: ['0', ...NUMBERS],
  threshold: NUMBERS,
  milliseconds: ['abc', '-1', '1e3', '0x10', 'NaN', 'Infinity', '1.', '99999999999999999999', '9'.repeat(HUGE)],
  regex: ['(', '[', 'a{2,1}', '('.repeat(HUGE)],
  user: ['no-such-user-here', '-1', '4294967295', '1.5', 'x'.repeat(HUGE)],
  comm: ['a-name-of-16-chr', 'x'.repeat(HUGE)],
  prefix: ['x'.repeat(256), 'x'.repeat(HUGE)],
  command: ['no-such-command-here', '/etc/passwd', '/tmp', 'x'.repeat(HUGE)],
  flag: ['O_NOPE', '0', 'O_RDONLY|O_CREAT', 'x'.repeat(HUGE)],
  disk: ['nosuchdisk', '../vda', 'x'.repeat(HUGE)],
  cgroup: ['/nonexistent', '/etc/passwd', tmpdir(), 'x'.repeat(HUGE)],
  map: ['/nonexistent', '/etc/passwd', tmpdir(), 'x'.repeat(HUGE)],
  fstype: ['zfs', 'EXT4', 'ext', 'ext4 ', 'x'.repeat(HUGE)],
  cgroupMode: ['pod', 'Container', 'path ', 'x'.repeat(HUGE)],
  listen: ['abc', '-1', '65536', '99999999999999999999', ':', ':80', '127.0.0.1:', '[::1]', '::1:80', '[127.0.0.1]:80', 'a b:80', '1.2.3.4:0x10', 'x'.repeat(HUGE)],
  comms: ['-1', '1.5', '1e3', '0x10', 'NaN', 'abc', '100001', '9'.repeat(HUGE)],
};

/** A pinned map of the given type: bcc's hash of 8-byte ids, or something else. */
function pinnedMap(dir: string, name: string, spec: string[]): string {
  const path = join(dir, name);
  const r = spawnSync('bpftool', ['map', 'create', path, ...spec, 'name', name.slice(0, 15)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool map create failed: ${r.stderr}`);
  return path;
}

function bpffsDir(): string {
  if (spawnSync('mountpoint', ['-q', '/sys/fs/bpf']).status !== 0) spawnSync('mount', ['-t', 'bpf', 'bpf', '/sys/fs/bpf']);
  return mkdtempSync('/sys/fs/bpf/ebpf-tools-test-');
}

const pinDir = bpffsDir();
t.teardown(() => rmSync(pinDir, { recursive: true, force: true }));
const hashMap = pinnedMap(pinDir, 'ids', ['type', 'hash', 'key', '8', 'value', '8', 'entries', '8']);
const arrayMap = pinnedMap(pinDir, 'array', ['type', 'array', 'key', '4', 'value', '8', 'entries', '8']);
const aFile = join(mkdtempSync(join(tmpdir(), 'ebpf-tools-bad-input-')), 'file');
writeFileSync(aFile, '');
t.teardown(() => rmSync(aFile, { force: true }));
BAD.map.push(aFile);

const GOOD: Record<Kind, string> = {
  count: '5', threshold: '0', milliseconds: '1.5', regex: 'a.c', user: 'root', comm: 'bash', flag: 'O_WRONLY',
  disk: blockDevices().find((d) => d.disk === undefined)!.name, cgroup: cgroup2Root(), map: hashMap, fstype: 'xfs', cgroupMode: 'container',
  listen: '127.0.0.1:0', comms: '0', prefix: '/etc/', command: '/bin/true',
};

/** How an option is typed: its long name, else its short one; a positional as a bare word (after the positionals before it). */
function invocation(tool: string, entry: HelpEntry, value: string, entries: HelpEntry[]): string[] {
  const name = entry.names.at(-1)!;
  const base = name === '--type' ? [] : baseArgs(tool);
  // an optional value is only ever attached (getopt's "::")
  if (OPTIONAL_VALUES.has(name.slice(2))) return [...base, `${name}=${value}`];
  if (name === '--prometheus-comms' || name === '--prometheus-cgroups') return [...base, '--prometheus', GOOD.listen, name, value];
  if (name === '--cgroups-max') return [...base, '--cgroups', name, value];
  if (!entry.positional) return [...base, name, value];
  const before = entries.filter((e) => e.positional).findIndex((e) => e === entry);
  return [...base, ...Array<string>(before).fill('1'), value];
}

/** The contract of a usage error's message, without the tool's prefix. */
function checkMessage(t: Test, message: string, names: string[], what: string): void {
  t.notMatch(message, /[\x00-\x1f\x7f]/, `${what}: no control character (${JSON.stringify(message.slice(0, 80))})`);
  t.ok(message.length < 400, `${what}: short (${message.length} chars)`);
  t.ok(names.some((n) => message.includes(n)), `${what}: names ${names.join(' or ')} (${message.slice(0, 120)})`);
}

/** The contract of a usage error as the user sees it: exit 2, one line on stderr, nothing on stdout. */
function checkUsageExit(t: Test, tool: string, r: Finished, names: string[], what: string): void {
  t.equal(r.code, 2, `${what}: exit 2 (${r.stderr.trim().slice(0, 160)})`);
  t.equal(r.stdout, '', `${what}: nothing on stdout`);
  const lines = r.stderr.split('\n');
  t.ok(lines.length === 2 && lines[1] === '', `${what}: one line`);
  t.match(lines[0], new RegExp(`^${tool}: .+ \\(see '${tool} --help'\\)$`), `${what}: the tool's usage line`);
  checkMessage(t, lines[0], names, what);
}

/** Runs a tool with libbpf hidden once per argument list, a few at a time. */
async function runAll(tool: string, runs: string[][]): Promise<Finished[]> {
  const results: Finished[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < runs.length) {
      const i = next++;
      results[i] = await startTool(tool, runs[i], NO_LIBBPF).finished();
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  return results;
}

for (const tool of tools) {
  const entries = helpEntries(runTool(tool, ['--help']).stdout);
  const valued = entries.filter((e) => e.kind !== 'boolean');
  const flags = entries.filter((e) => e.kind === 'boolean' && !e.names.includes('--help') && !e.names.includes('--version'));
  const module = (await import(`../tools/${toolOf(tool)}.js`)) as { parseOptions(argv: string[], command?: string): unknown };
  // a tool run under another name (fsslower as ext4slower) is told the name; the others take other second arguments
  const parseOptions = (argv: string[]): unknown => (toolOf(tool) === tool ? module.parseOptions(argv) : module.parseOptions(argv, tool));

  t.test(`${tool}: the matrix covers every option that takes a value`, async (t) => {
    t.same(valued.map((e) => e.names.at(-1)).sort(), Object.keys(VALUE_KINDS[tool]).sort());
    t.ok(flags.length >= 2, 'flags found in --help');
  });

  t.test(`${tool}: every bad value of every option is a usage error naming it`, async (t) => {
    for (const entry of valued) {
      const kind = VALUE_KINDS[tool][entry.names.at(-1)!];
      for (const value of ['', ...(HOSTILE_ALLOWED.has(kind) ? [] : [HOSTILE]), ...BAD[kind]]) {
        const what = `${entry.names.at(-1)} ${JSON.stringify(value.slice(0, 24))}`;
        const message = usageError(() => parseOptions(invocation(tool, entry, value, entries)));
        t.not(message, 'no error', `${what}: refused`);
        checkMessage(t, message, entry.names, what);
      }
      t.equal(usageError(() => parseOptions(invocation(tool, entry, GOOD[kind], entries))), 'no error', `${entry.names.at(-1)} ${GOOD[kind]}: accepted`);
    }
  });

  const mistakes: { args: string[]; names: string[] }[] = [
    { args: ['--no-such-option'], names: ['--no-such-option'] },
    { args: ['-Z'], names: ['-Z'] },
    { args: ['--no-verbose'], names: ['--no-verbose'] },
    { args: ['-'], names: ["'-'"] },
    { args: ['--', 'word'], names: ["'word'"] },
    { args: [...valued.filter((e) => e.positional).map(() => '1'), 'extra'], names: ["'extra'"] },
    { args: [`-${HOSTILE}`], names: ['unknown'] },
  ];
  for (const flag of flags) {
    const long = flag.names.find((n) => n.startsWith('--'));
    const short = flag.names.find((n) => /^-\w$/.test(n));
    if (long) mistakes.push({ args: [`${long}=yes`], names: [long] }, { args: [long, 'false'], names: [long] });
    if (short) mistakes.push({ args: [`${short}5`], names: [short] }, { args: [`${short}=1`], names: [short] });
  }

  t.test(`${tool}: unknown options, extra words, values given to flags`, async (t) => {
    for (const { args, names } of mistakes) {
      const message = usageError(() => parseOptions(args));
      t.not(message, 'no error', `${args.join(' ')}: refused`);
      checkMessage(t, message, names, args.join(' '));
    }
  });

  // The contract as the user meets it, once per option (the matrix above
  // covers the values): the kernel-loading path is never reached.
  t.test(`${tool}: as run, one line, exit 2, before libbpf is loaded; good values get as far as libbpf`, async (t) => {
    const bad = [
      ...valued.filter((entry) => !HOSTILE_ALLOWED.has(VALUE_KINDS[tool][entry.names.at(-1)!]))
        .map((entry) => ({ args: invocation(tool, entry, HOSTILE, entries), names: entry.names })),
      ...mistakes.filter((m) => ['--no-such-option', '--', '--json=yes', '-T5'].includes(m.args[0])),
    ];
    const good = valued.map((entry) => invocation(tool, entry, GOOD[VALUE_KINDS[tool][entry.names.at(-1)!]], entries));
    const results = await runAll(tool, [...bad.map((b) => b.args), ...good]);
    bad.forEach(({ args, names }, i) => checkUsageExit(t, tool, results[i], names, JSON.stringify(args.join(' ').slice(0, 40))));
    good.forEach((args, i) => {
      const r = results[bad.length + i];
      t.equal(r.code, 1, `${args.join(' ')}: accepted, fails only for want of libbpf`);
      t.match(r.stderr, /^\S+: cannot load \/nonexistent\/libbpf\.so\.1: install libbpf/);
    });
  });
}

t.test('a pinned map of the wrong type is a usage error, found before anything is loaded', async (t) => {
  for (const tool of tools.filter((tool) => '--cgroupmap' in VALUE_KINDS[tool])) {
    const r = runTool(tool, ['--cgroupmap', arrayMap]);
    checkUsageExit(t, tool, r, ['--cgroupmap'], tool);
    t.match(r.stderr, /expected a hash map with 8-byte keys/);
  }
});

t.test('good input is read as getopt reads it', async (t) => {
  const execsnoop = await import('../tools/execsnoop.js');
  const opensnoop = await import('../tools/opensnoop.js');
  const grouped = execsnoop.parseOptions(['-Txnbash']);
  t.same([grouped.time, grouped.fails, grouped.name?.source], [true, true, 'bash'], '-Txnbash is -T -x -n bash');
  t.equal(execsnoop.parseOptions(['-n', '-x']).name?.source, '-x', 'a value may start with a dash');
  t.equal(execsnoop.parseOptions(['--line=-a']).line?.source, '-a');
  t.equal(execsnoop.parseOptions(['-P123']).ppid, 123, 'a value attached to its option');
  t.equal(execsnoop.parseOptions(['-P', '5', '-P', '7']).ppid, 7, 'the last of a repeated option counts');
  t.equal(execsnoop.parseOptions(['--']).json, false, 'a lone -- ends the options');
  const opens = opensnoop.parseOptions(['-xf', 'O_WRONLY', '-fO_CREAT', '--flag=O_TRUNC']);
  t.equal(opens.failed, true);
  t.same(opens.flags, opensnoop.parseOptions(['-f', 'O_WRONLY', '-f', 'O_CREAT', '-f', 'O_TRUNC']).flags, 'repeated -f gathers, in every form');
  t.not(opens.flags?.bits, 0);
  t.equal(opensnoop.parseOptions(['-Tn', 'bash']).timestamp, true);
});
