// What the command line prints and decides, byte for byte, against
// test/fixtures/cli-output.json (recorded from the tools as they were when
// yargs parsed every command line): --help, --version, completion, every
// usage error, and the options each accepted command line yields. The
// command lines come from each tool's --help, so a new option is covered.
// Regenerate the fixtures (only for a deliberate change of output) with
// UPDATE_CLI_FIXTURES=1 npx tap dist/test/cli-output.test.js
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { toolOf } from '../common/commands.js';
import { baseArgs, helpEntries, ROOT, type HelpEntry, runTool, TOOLS, usageError } from './helpers.js';

// ~170 runs of the tools one after another: minutes on a loaded machine
t.setTimeout(600_000);

const FIXTURES = `${ROOT}test/fixtures/cli-output.json`;
const UPDATE = process.env.UPDATE_CLI_FIXTURES === '1';
const NO_LIBBPF = { EBPF_TOOLS_LIBBPF: '/nonexistent/libbpf.so.1' };
/** Options whose values are looked up on this machine (disks, cgroups, pinned maps): only their missing-value forms are recorded. */
const MACHINE_VALUES = new Set(['--disk', '--cgroup', '--cgroupmap', '--mntnsmap']);

const camel = (long: string): string => `--${long.slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())}`;

/** Command lines parsed in-process: their usage error, or the options they give. */
function parsedCases(entries: HelpEntry[]): string[][] {
  const cases: string[][] = [[], ['--no-such-option'], ['-Z'], ['--no-verbose'], ['-'], ['--'], ['--', 'word'], ['extra'],
    ['-vZ'], ['--verbose=1'], ['-v', '-v'], ['--verbose', '--json'], ['--VERBOSE'], ['---verbose'], ['-5'], ['--5']];
  // --help, --version and --usage print and exit: run as the user runs them (RUN_CASES)
  const options = entries.filter((e) => !e.positional && !['--help', '--version', '--usage'].some((n) => e.names.includes(n)));
  const shortFlags = options.filter((e) => e.kind === 'boolean').map((e) => e.names.find((n) => /^-\w$/.test(n))).filter((n) => n !== undefined);
  if (shortFlags.length) cases.push([`-${shortFlags.map((n) => n[1]).join('')}`]);
  for (const e of options) {
    const long = e.names.find((n) => n.startsWith('--'));
    const short = e.names.find((n) => /^-\w$/.test(n));
    const names = [long, short].filter((n) => n !== undefined);
    if (long && long.includes('-', 2)) cases.push([camel(long)]);
    if (e.kind === 'boolean') {
      for (const n of names) cases.push([n], [`${n}=yes`], [n, 'false'], [n, 'true'], [n, n], [n, 'word']);
      if (short) cases.push([`${short}5`], [`${short}=1`]);
      if (long) cases.push([`--no-${long.slice(2)}`]);
      continue;
    }
    for (const n of names) cases.push([n], [n, ''], [`${n}=`]);
    if (long && MACHINE_VALUES.has(long)) continue;
    for (const n of names) cases.push([n, '5'], [`${n}=5`], [n, '-1'], [n, 'abc'], [n, '5', n, '7'], [n, '--verbose'], [n, '-v']);
    if (short) {
      cases.push([`${short}5`], [`${short}=5`]);
      if (shortFlags.length) cases.push([`-${shortFlags[0][1]}${short[1]}5`], [`-${shortFlags[0][1]}${short[1]}`, '5']);
    }
  }
  const positionals = entries.filter((e) => e.positional);
  if (positionals.length) {
    cases.push(['1'], ['abc'], ['-1'], ['0'], ['1', '2'], ['1', '2', '3'], ['1', '--verbose'], ['--verbose', '1'], ['--', '1'], ['1.5']);
  }
  return cases;
}

/** Command lines run as the user runs them: what they print, and their status. */
const RUN_CASES = [['--help'], ['-h'], ['--version'], ['-V'], ['completion'], ['--get-yargs-completions'],
  ['--get-yargs-completions', '-'], ['--help', '--no-such'], ['--version', '--help'], ['-vh'], ['--no-such-option'],
  ['-T5'], ['--json=yes'], ['--', 'word'], ['--help=1'], ['-h', 'extra'], ['1', 'completion'], ['completion', '1'],
  ['-?'], ['-v?'], ['--usage'], ['--usage', '--no-such'], ['--usage=1'], ['--', '--usage']];

function describe(parseOptions: (argv: string[]) => unknown, argv: string[]): string {
  let options: unknown;
  const message = usageError(() => (options = parseOptions(argv)));
  return message === 'no error' ? `options ${inspect(options, { depth: 5, sorted: true, breakLength: Infinity })}` : `usage error ${message}`;
}

/** The tool's path and node's, as they differ between checkouts and machines. */
function portable(text: string): string {
  return text.split(ROOT).join('<ROOT>/').split(process.execPath).join('<NODE>');
}

type Recorded = Record<string, { parsed: Record<string, string>; run: Record<string, { status: number | null; stdout: string; stderr: string }> }>;

const recorded: Recorded = {};
const expected: Recorded | undefined = existsSync(FIXTURES) ? JSON.parse(readFileSync(FIXTURES, 'utf8')) : undefined;
if (!UPDATE && !expected) throw new Error(`${FIXTURES} is missing: record it with UPDATE_CLI_FIXTURES=1`);

for (const tool of TOOLS) {
  const module = (await import(`../tools/${toolOf(tool)}.js`)) as { parseOptions(argv: string[], command?: string): unknown };
  // a tool run under another name (fsslower as ext4slower) is told the name; the others take other second arguments
  const parseOptions = (argv: string[]): unknown => (toolOf(tool) === tool ? module.parseOptions(argv) : module.parseOptions(argv, tool));
  // fsslower needs -t: its command lines are given one first (-t ext4), which a later -t overrides
  const base = baseArgs(tool);
  const entries = helpEntries(runTool(tool, ['--help']).stdout);
  const mine: Recorded[string] = { parsed: {}, run: {} };
  recorded[tool] = mine;
  for (const argv of parsedCases(entries).map((a) => [...base, ...a])) mine.parsed[JSON.stringify(argv)] = describe(parseOptions, argv);
  for (const argv of RUN_CASES) {
    const r = runTool(tool, argv, NO_LIBBPF);
    mine.run[JSON.stringify(argv)] = { status: r.code, stdout: portable(r.stdout), stderr: portable(r.stderr) };
  }
  if (UPDATE) continue;
  t.test(`${tool}: every command line parsed as recorded`, async (t) => {
    const want = expected![tool]?.parsed ?? {};
    t.same(Object.keys(mine.parsed).filter((k) => !(k in want)), [], 'every command line has a recording');
    for (const [argv, got] of Object.entries(mine.parsed)) if (argv in want) t.equal(got, want[argv], argv);
  });
  t.test(`${tool}: a plain command line is read without loading yargs`, async (t) => {
    // accepted, and typed as documented (not --camelCase, ---name or after a --)
    const unusual = (token: string): boolean => /^---|^--$|^--[a-z]+[A-Z]/.test(token);
    const plain = Object.entries(mine.parsed)
      .filter(([argv, got]) => got.startsWith('options ') && !(JSON.parse(argv) as string[]).some(unusual)).map(([argv]) => argv);
    t.ok(plain.length > 10, `${plain.length} accepted command lines`);
    const script = `const { parseOptions } = await import(${JSON.stringify(`${ROOT}dist/tools/${toolOf(tool)}.js`)});
      for (const argv of ${JSON.stringify(plain)}) parseOptions(JSON.parse(argv)${toolOf(tool) === tool ? '' : `, ${JSON.stringify(tool)}`});
      const { createRequire } = await import('node:module');
      console.log(Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes('/node_modules/yargs/')).length);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    t.equal(r.stderr, '', 'no error');
    t.equal(r.stdout, '0\n', 'no module of yargs loaded');
  });
  t.test(`${tool}: help, version, completion and errors as run, byte for byte`, async (t) => {
    const want = expected![tool]?.run ?? {};
    for (const [argv, got] of Object.entries(mine.run)) t.same(got, want[argv], argv);
  });
}

if (UPDATE) {
  mkdirSync(`${ROOT}test/fixtures`, { recursive: true });
  writeFileSync(FIXTURES, `${JSON.stringify(recorded, null, 1)}\n`);
  t.pass(`recorded ${FIXTURES}`);
}
