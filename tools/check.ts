// ebpf-tools: without arguments, the tools of the package, a line each;
// `ebpf-tools check`, what works on this machine and why each tool attaches
// the way it does here. Nothing is guessed: the kernel features are tried
// with the smallest programs (bpf/check.bpf.o), and each tool is run with
// -v until it has attached, so that its own plan list and checks
// (common/plan.ts) say which plan it uses and why the better ones were not.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ALL_ATTACHED, BpfObject } from '../common/bpfobject.js';
import { commandLine, parseCommandLine } from '../common/cli.js';
import { COMMANDS } from '../common/commands.js';
import { quoted, RuntimeError, UsageError } from '../common/errors.js';
import { terminalSafeJson } from '../common/escape.js';
import { LIBBPF_LOG_LEVEL, libbpfLog } from '../common/log.js';
import { libbpfVersion } from '../common/native.js';
import { kprobesAvailable } from '../common/plan.js';
import { checkKernelBtf, checkPrivileges, VMLINUX_BTF } from '../common/preflight.js';
import { RETRY_PLANS_VARIABLE } from '../common/refusedplans.js';

const USAGE = `List the tools, or check what works on this machine

USAGE: ebpf-tools [-h] [-V] [--json] [-v] [check]`;

const EXAMPLES = `    ebpf-tools              # the tools, a line each
    ebpf-tools check        # kernel features, and how each tool attaches here and why
    ebpf-tools check --json # the same, as one JSON object`;

export interface Options {
  check: boolean;
  json: boolean;
  verbose: boolean;
}

export function parseOptions(argv: string[]): Options {
  const args = parseCommandLine(commandLine('ebpf-tools', USAGE, EXAMPLES)
    .command('$0 [what]', false, (y) =>
      y.positional('what', { type: 'string', description: 'check: what works here, and how each tool attaches' }))
    .options({
      json: { type: 'boolean', default: false, description: 'print one JSON object' },
      verbose: { alias: 'v', type: 'boolean', default: false, description: 'also print each tool\'s own -v lines about its plans' },
    }), argv);
  const what = (args as { what?: string }).what;
  if (what !== undefined && what !== 'check') throw new UsageError(`unknown command ${quoted(what)} (the one command is check)`);
  return { check: what === 'check', json: args.json, verbose: args.verbose };
}

/** A kernel or machine feature: whether it works, and what was found. */
export interface Feature {
  feature: string;
  works: boolean;
  detail: string;
}

/** How one command attaches here, as it said with -v. */
export interface ToolPlan {
  command: string;
  /** the plan used, or for a tool with one way, the sections it attached */
  plan: string | null;
  /** the better plans, each with why it was not used */
  notUsed: { plan: string; reason: string }[];
  /** what the plan used misses, against the better ones */
  limits?: string;
  /** set when the tool could not attach at all */
  error?: string;
}

function tryFeature(feature: string, attempt: () => string): Feature {
  try {
    return { feature, works: true, detail: attempt() };
  } catch (err) {
    if (err instanceof RuntimeError || err instanceof UsageError) return { feature, works: false, detail: err.message };
    throw err;
  }
}

/** Loads bpf/check.bpf.o with `program` only (none: just its ring buffer), attaches, and closes it. */
function loadCheckProgram(program: string | null): void {
  const obj = BpfObject.open('check');
  try {
    for (const p of obj.programs()) obj.setAutoload(p.name, p.name === program);
    obj.setMaxEntries('events', 1 << 16);
    obj.load();
    obj.attach();
  } finally {
    obj.close();
  }
}

const tracefs = (): string | undefined =>
  ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'].find((d) => existsSync(`${d}/events`));

export function features(): Feature[] {
  const list: Feature[] = [{ feature: 'kernel', works: true, detail: release() }];
  const privileges = tryFeature('privileges', () => (checkPrivileges(), 'CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN'));
  list.push(privileges);
  const btf = tryFeature('BTF', () => (checkKernelBtf(), `${VMLINUX_BTF} (${Math.round(statSync(VMLINUX_BTF).size / 1024)} KiB)`));
  list.push(btf);
  list.push(tryFeature('libbpf', () => {
    BpfObject.openUnchecked('check').close();
    return libbpfVersion;
  }));
  const loads = privileges.works && btf.works;
  const needsLoad = (feature: string, attempt: () => string): Feature =>
    (loads ? tryFeature(feature, attempt) : { feature, works: false, detail: 'not tried: needs root and kernel BTF' });
  list.push(needsLoad('ring buffer', () => (loadCheckProgram(null), 'a ring buffer map was created (BPF_MAP_TYPE_RINGBUF)')));
  list.push(needsLoad('fentry', () => (loadCheckProgram('check_fentry'), 'fentry/vfs_read loaded and attached')));
  list.push(kprobesAvailable()
    ? needsLoad('kprobes', () => (loadCheckProgram('check_kprobe'), 'kprobe/vfs_read loaded and attached'))
    : { feature: 'kprobes', works: false, detail: 'no kprobe PMU (kernel built without CONFIG_KPROBES)' });
  const mounted = tracefs();
  list.push({ feature: 'tracefs', works: mounted !== undefined, detail: mounted ?? 'not mounted (the tools that need it mount it)' });
  const stats = readFileSync('/proc/sys/kernel/bpf_stats_enabled', { encoding: 'utf8', flag: 'r' }).trim();
  list.push({
    feature: 'bpf_stats', works: stats === '1',
    detail: stats === '1' ? 'on: run time of each program counted' : 'off (sysctl kernel.bpf_stats_enabled=1 counts run time per program)',
  });
  return list;
}

/** What each command is run with to see how it attaches: fsslower through its names, one file system each. */
export const PROBED_COMMANDS = COMMANDS.map((c) => c.name).filter((name) => name !== 'fsslower' && name !== 'ebpf-tools');

const BIN = (command: string): string => fileURLToPath(new URL(`../../bin/${command}.js`, import.meta.url));
const PLAN_LINE = /^(\S+): (?:plan (.+?) (skipped|failed): (.*)|using plan (.+)|plan .+? sees less: (.*))$/;
const ATTACHED_LINE = /^attached \S+ \((.+)\)$/;

/** The -v lines of one run of `command` that say how it attached (the rest of its log dropped). */
export function planFromLog(command: string, stderr: string): ToolPlan {
  const result: ToolPlan = { command, plan: null, notUsed: [] };
  const sections = new Set<string>();
  for (const line of stderr.split('\n')) {
    const m = PLAN_LINE.exec(line);
    if (m && m[1] === command) {
      if (m[5] !== undefined) result.plan = m[5];
      else if (m[6] !== undefined) result.limits = m[6];
      else result.notUsed.push({ plan: m[2], reason: m[4] });
      continue;
    }
    const attached = ATTACHED_LINE.exec(line);
    if (attached) sections.add(attached[1]);
  }
  // a tool with one way to attach (execsnoop) names no plan: what it attached says it
  if (result.plan === null && sections.size) result.plan = [...sections].join(', ');
  return result;
}

/** Runs `command -v` until it has attached (or exited), then ends it by SIGINT. */
function probeCommand(command: string): Promise<{ plan: ToolPlan; stderr: string }> {
  return new Promise((resolve) => {
    // every plan tried again: check says what the kernel answers now, not what it answered earlier this boot
    // and only its own lines and libbpf's warnings: check reads the plan lines (libbpf's debug log runs to thousands of lines)
    const env = { ...process.env, [RETRY_PLANS_VARIABLE]: '1', [LIBBPF_LOG_LEVEL]: 'info' };
    const child = spawn(process.execPath, [BIN(command), '-v'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let attached = false;
    const stop = (): void => {
      if (!attached) {
        attached = true;
        child.kill('SIGINT');
      }
    };
    // a tool attaches in well under a second; a TCG guest or a loaded machine can take minutes
    const timer = setTimeout(stop, 300_000);
    // "all N programs attached" ends attaching, whatever the plan (a tool with plans names the one used just before it returns to its loop)
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (ALL_ATTACHED.test(stderr)) stop();
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const plan = planFromLog(command, stderr);
      if (plan.plan === null) {
        const last = stderr.trim().split('\n').filter((l) => l.startsWith(`${command}: `)).at(-1);
        plan.error = last?.slice(command.length + 2) ?? `exited with status ${code} before attaching`;
      }
      resolve({ plan, stderr });
    });
  });
}

const printable = (text: string): string => text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);

async function table(head: string[], rows: string[][], colWidths: number[]): Promise<string> {
  const Table = createRequire(import.meta.url)('cli-table3') as typeof import('cli-table3');
  const t = new Table({ head, style: { head: [], border: [] }, wordWrap: true, colWidths });
  t.push(...rows.map((r) => r.map((cell) => cell.split('\n').map(printable).join('\n'))));
  return t.toString();
}

export async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  if (!options.check) {
    // a line each, not a table: `name: summary`, for grep and cut -d:
    const lines = COMMANDS.filter((c) => c.name !== 'ebpf-tools').map((c) => `${c.name}: ${c.summary}`);
    if (options.json) process.stdout.write(`${terminalSafeJson(COMMANDS.filter((c) => c.name !== 'ebpf-tools').map(({ name, summary }) => ({ name, summary })))}\n`);
    else process.stdout.write(`${lines.join('\n')}\n`);
    return;
  }
  libbpfLog.setVerbose(false);
  const found = features();
  const plans: ToolPlan[] = [];
  const logs: string[] = [];
  for (const command of PROBED_COMMANDS) {
    const { plan, stderr } = await probeCommand(command);
    plans.push(plan);
    if (options.verbose) logs.push(...stderr.split('\n').filter((l) => PLAN_LINE.test(l)).map(printable));
  }
  if (options.json) {
    process.stdout.write(`${terminalSafeJson({
      features: found,
      tools: plans.map((p) => ({
        command: p.command, plan: p.plan, limits: p.limits ?? null, not_used: p.notUsed, ...(p.error ? { error: p.error } : {}),
      })),
    })}\n`);
    return;
  }
  const out = [
    await table(['feature', 'works', 'detail'], found.map((f) => [f.feature, f.works ? 'yes' : 'no', f.detail]), [13, 7, 72]),
    await table(['tool', 'attaches by', 'why not a better plan'], plans.map((p) => [
      p.command,
      p.plan === null ? `does not attach: ${p.error}` : `${p.plan}${p.limits ? `\n(sees less: ${p.limits})` : ''}`,
      p.notUsed.length ? p.notUsed.map((n) => `${n.plan}: ${n.reason}`).join('\n') : (p.plan ? 'its best plan works here' : ''),
    ]), [13, 26, 53]),
    ...logs,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}
