// Shared by the end-to-end tests: start a real tool as the user would, wait
// until it is attached (its header line), make the kernel do something, and
// read exactly what the tool printed.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ALL_ATTACHED, BPF_DIR, BpfObject } from '../common/bpfobject.js';
import { LAUNCHER_NODE_OPTIONS, toolOf } from '../common/commands.js';
import { UsageError } from '../common/errors.js';
import { LIBBPF_LOG_LEVEL } from '../common/log.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * How much slower than this machine things may take: 10 in a TCG guest of
 * scripts/vm-run (which sets VM_RUN_KERNEL there), where a Node program
 * starts 10 to 100 times slower (a tool took 40 s to attach with four guests
 * on two CPUs). Waits and time bounds are multiplied by it.
 */
export const SLOWDOWN = process.env.VM_RUN_KERNEL ? 10 : 1;

function toolPath(tool: string): string {
  return `${ROOT}bin/${tool}.js`;
}

/** node's arguments that start one of our tools as its bin launcher does: the Node options of its shebang line, the launcher, `args`. */
export function toolArgv(tool: string, args: string[]): string[] {
  return [...LAUNCHER_NODE_OPTIONS, toolPath(tool), ...args];
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * How to start a program without the NODE_OPTIONS that tap's wrapped
 * child_process adds to every child (its process-info hooks would run inside
 * the tool, and fail as an unprivileged user): through env -u, which execs
 * in place, so the pid is the program's.
 */
export function withoutTapHooks(file: string, args: string[]): [string, string[]] {
  return ['/usr/bin/env', ['-u', 'NODE_OPTIONS', file, ...args]];
}

/** What was in the kernel before the first tool of this file started, and the tools started since the last check. */
let beforeTools: KernelSnapshot | undefined;
const started = new Set<RunningTool>();

/**
 * After each top-level test that started a tool: every tool it started has
 * exited, and nothing of ours is left in the kernel.
 */
t.afterEach(async (test) => {
  if (test.parent !== t || started.size === 0 || !beforeTools) return;
  for (const tool of started) {
    if (tool.proc.exitCode === null && tool.proc.signalCode === null) {
      t.fail(`${test.name}: left ${tool.proc.spawnargs.slice(3).join(' ')} running`);
      await tool.stop('SIGKILL');
    }
  }
  started.clear();
  t.same(await leftovers(beforeTools), [], `${test.name}: nothing left behind in the kernel`);
});

/**
 * A tool's stderr without its reports of the runs of its programs the
 * kernel skipped (common/misses.ts): a 7.2 guest's kernel skips a few under
 * load, a loss the tool reports rather than a fault of the run. Every other
 * line stays.
 */
export function withoutSkippedRuns(stderr: string): string {
  const skipped = new RegExp(`^\\S+: \\d+ (?:events|requests) not traced: ${SKIPPED_RUNS} \\(\\d+ in all\\)\\n`, 'gm');
  return stderr.replace(skipped, '');
}

/** Why the tools report runs the kernel skipped (common/misses.ts), as a pattern. */
export const SKIPPED_RUNS = 'the kernel skipped a program of ours already running on that CPU';

export class RunningTool {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  private readonly exited: Promise<Finished>;
  /** stdout's complete non-empty lines so far, and the line being written */
  private readonly completeLines: string[] = [];
  private partialLine = '';
  /** all its output read: the process exited and its pipes are closed */
  private closed = false;
  /** Called after each chunk of output and at exit: the waits, which test only what is new. */
  private readonly onOutput = new Set<() => void>();

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    beforeTools ??= kernelSnapshot();
    started.add(this);
    this.proc = spawn(...withoutTapHooks(command, args), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      const lines = (this.partialLine + chunk).split('\n');
      this.partialLine = lines.pop()!;
      for (const line of lines) if (line !== '') this.completeLines.push(line);
      this.notify();
    });
    this.proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.notify();
    });
    this.exited = new Promise((resolve) =>
      this.proc.on('close', (code, signal) => {
        if (this.partialLine !== '') this.completeLines.push(this.partialLine);
        this.partialLine = '';
        this.closed = true;
        this.notify();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr });
      }),
    );
  }

  /** stdout's complete non-empty lines so far. */
  get completedLines(): readonly string[] {
    return this.completeLines;
  }

  /** stdout's non-empty lines (the last one possibly still being written). */
  get lines(): string[] {
    return this.partialLine === '' ? [...this.completeLines] : [...this.completeLines, this.partialLine];
  }

  private notify(): void {
    for (const check of [...this.onOutput]) check();
  }

  /**
   * Resolves when `found` (called after each chunk of output, and once more
   * when the tool has exited) returns a value; rejects after `ms`, or once
   * the tool has exited (all its output read) without it. Waiting costs
   * nothing between chunks: a TCG guest's CPU is the scarcest thing in the
   * kernel matrix.
   */
  private waitFor<T>(found: () => T | undefined, ms: number, what: () => string): Promise<T> {
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.onOutput.delete(check);
      };
      const fail = (): void => {
        finish();
        reject(new Error(`${what()} after ${ms} ms; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`));
      };
      const check = (): void => {
        const value = found();
        if (value !== undefined) {
          finish();
          resolve(value);
        } else if (this.closed) {
          fail();
        }
      };
      const timer = setTimeout(fail, ms);
      this.onOutput.add(check);
      check();
    });
  }

  /** Resolves with the first complete stdout line matching, or rejects after `ms` (with what was printed). */
  waitForLine(match: RegExp | ((line: string) => boolean), ms = 15000 * SLOWDOWN): Promise<string> {
    const test = typeof match === 'function' ? match : (l: string) => match.test(l);
    let next = 0;
    return this.waitFor(() => {
      for (; next < this.completeLines.length; next++) {
        if (test(this.completeLines[next])) return this.completeLines[next];
      }
      return undefined;
    }, ms, () => `no line matching ${String(match)}`);
  }

  /** Resolves once stderr has a match (tested from the line the last chunk ended in), or rejects after `ms` (with what was printed). */
  waitForStderr(match: RegExp, ms = 15000 * SLOWDOWN): Promise<void> {
    let from = 0;
    return this.waitFor(() => {
      if (match.test(this.stderr.slice(from))) return true;
      from = this.stderr.lastIndexOf('\n') + 1;
      return undefined;
    }, ms, () => `no stderr matching ${String(match)}`).then(() => undefined);
  }

  /** Sends `signal` (default SIGINT, as Ctrl-C) and waits for exit. */
  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<Finished> {
    if (this.proc.exitCode === null) this.proc.kill(signal);
    return this.exited;
  }

  /**
   * Waits for exit (and every pipe closed: a process it started may hold
   * them). A run that does not end in `ms` is killed, and the test fails
   * with what it printed and what it and its children were waiting in.
   */
  finished(ms = 60000 * SLOWDOWN): Promise<Finished> {
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const state = processStates(this.proc.pid!);
        this.proc.kill('SIGKILL');
        reject(new Error(`${this.proc.spawnargs.join(' ')} had not ended after ${ms} ms:\n${state}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`));
      }, ms);
    });
    return Promise.race([this.exited, stuck]).finally(() => clearTimeout(timer));
  }
}

/** A process and its children (ps), with what each of its threads waits in (/proc's wchan): for a run that did not end. */
function processStates(pid: number): string {
  const threads = (p: number): string => {
    try {
      return readdirSync(`/proc/${p}/task`).map((tid) => {
        const read = (f: string): string => readFileSync(`/proc/${p}/task/${tid}/${f}`, 'utf8').trim();
        return `  ${tid} ${read('comm')} ${/\) (\S)/.exec(read('stat'))?.[1]} ${read('wchan')}`;
      }).join('\n');
    } catch {
      return '  (gone)';
    }
  };
  const ps = spawnSync('ps', ['-o', 'pid,ppid,stat,wchan:24,args', '--ppid', String(pid), '-p', String(pid)], { encoding: 'utf8' }).stdout;
  return `${ps}threads of ${pid}:\n${threads(pid)}`;
}

/** Starts one of our tools with node, as its bin launcher does. */
export function startTool(tool: string, args: string[], env: NodeJS.ProcessEnv = {}): RunningTool {
  return new RunningTool(process.execPath, toolArgv(tool, args), env);
}

/** Starts a tool and waits for its first stdout line (the header, printed once attached). */
export async function startAttached(tool: string, args: string[], header: RegExp | ((line: string) => boolean)): Promise<RunningTool> {
  const running = startTool(tool, args);
  await running.waitForLine(header);
  return running;
}

/**
 * -v without libbpf's debug messages (thousands of lines for a large
 * object, which a TCG guest takes many seconds to format and pass on): the
 * tests read only the tool's own lines about attaching.
 */
export const QUIET_LIBBPF: NodeJS.ProcessEnv = { [LIBBPF_LOG_LEVEL]: 'info' };

/**
 * Starts a tool with -v in a mode that prints no header (--json) and waits
 * until it says every program is attached: a sleep long enough on this
 * machine is too short in a TCG guest, and the first "attached" line comes
 * before the others are.
 */
export async function startVerboseAttached(tool: string, args: string[]): Promise<RunningTool> {
  const running = startTool(tool, ['-v', ...args], QUIET_LIBBPF);
  await running.waitForStderr(ALL_ATTACHED);
  return running;
}

/**
 * Debian's C tools (libbpf-tools 0.26) print their header before they open
 * their perf buffer (strace: the header's write, then one perf_event_open per
 * CPU), and the events in between are lost to them: once a C tool's header is
 * in, waits until it has mapped a buffer for each CPU.
 */
export async function perfBufferOpen(tool: RunningTool): Promise<void> {
  const maps = `/proc/${tool.proc.pid}/maps`;
  const deadline = Date.now() + 15000 * SLOWDOWN;
  while ((readFileSync(maps, 'utf8').match(/ anon_inode:\[perf_event\]$/gm)?.length ?? 0) < availableParallelism()) {
    if (Date.now() > deadline) throw new Error(`${tool.proc.spawnargs.join(' ')}: no perf buffer for each of the ${availableParallelism()} CPUs after ${15 * SLOWDOWN} s`);
    await sleep(20);
  }
}

/** Runs a tool to completion synchronously (for usage errors and --help). */
export function runTool(tool: string, args: string[], env: NodeJS.ProcessEnv = {}): Finished {
  const r = spawnSync(...withoutTapHooks(process.execPath, toolArgv(tool, args)), {
    env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60000 * SLOWDOWN,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface StallWatch {
  /** how long this process's timers were held up, in all, between two times of Date.now() */
  stalledBetween(from: number, to: number): number;
  stop(): void;
}

/**
 * Watches for the machine stopping this process: a TCG guest's one CPU is
 * the host's to give, and with four guests on two CPUs a guest stood still
 * for three seconds at a time (a 1 s interval of biolatency came 4.4 s after
 * the one before). A tool's timer is then held up as long as the test's;
 * on this machine the stalls are milliseconds, and a late tool still fails.
 */
export function watchStalls(): StallWatch {
  const TICK_MS = 50;
  const stalls: { end: number; ms: number }[] = [];
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - last > 2 * TICK_MS) stalls.push({ end: now, ms: now - last - TICK_MS });
    last = now;
  }, TICK_MS);
  return {
    stalledBetween: (from, to) => stalls.filter((s) => s.end > from && s.end - s.ms < to).reduce((sum, s) => sum + s.ms, 0),
    stop: () => clearInterval(timer),
  };
}

interface KernelObject {
  kind: 'program' | 'map' | 'link';
  id: number;
  /** a link is named by its program */
  name: string;
}

function bpftoolList(what: 'prog' | 'map' | 'link'): { id: number; name?: string; prog_id?: number }[] {
  const r = spawnSync('bpftool', ['-j', what, 'show'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bpftool ${what} show failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { id: number; name?: string; prog_id?: number }[];
}

/** Every BPF program, map and link in the kernel now (bpftool). */
function kernelObjects(): KernelObject[] {
  const programs = bpftoolList('prog').map((p) => ({ kind: 'program' as const, id: p.id, name: p.name ?? '' }));
  const programName = new Map(programs.map((p) => [p.id, p.name]));
  return [
    ...programs,
    ...bpftoolList('map').map((m) => ({ kind: 'map' as const, id: m.id, name: m.name ?? '' })),
    ...bpftoolList('link').map((l) => ({ kind: 'link' as const, id: l.id, name: programName.get(l.prog_id ?? -1) ?? '' })),
  ];
}

const objectKey = (o: KernelObject): string => `${o.kind} ${o.id}`;

/** What is in the kernel now, to tell later what a run left behind (leftovers). */
export type KernelSnapshot = Set<string>;

export function kernelSnapshot(): KernelSnapshot {
  return new Set(kernelObjects().map(objectKey));
}

/** Ids of the BPF programs loaded in the kernel now (bpftool). */
export function loadedProgramIds(): Set<number> {
  return new Set(bpftoolList('prog').map((p) => p.id));
}

/** Every command the package installs, as package.json names their launchers. */
export const COMMAND_NAMES = Object.keys((JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { bin: Record<string, string> }).bin);

/**
 * The commands whose options and failures the matrices go through: each
 * tool once, and fsslower also as ext4slower; xfsslower, btrfsslower,
 * nfsslower and fuseslower are ext4slower with another default -t (their own tests, and
 * the docs and package tests, cover them); ebpf-tools traces nothing
 * itself (test/check-e2e.test.ts).
 */
export const TOOLS = COMMAND_NAMES.filter((c) => !['xfsslower', 'btrfsslower', 'nfsslower', 'fuseslower', 'ebpf-tools'].includes(c));

/** What a command needs on its command line to run at all: fsslower, the file system. */
export function baseArgs(command: string): string[] {
  return command === 'fsslower' ? ['-t', 'ext4'] : [];
}

/**
 * Whether a kernel object's name is one of `tool`'s: the programs and maps
 * of its objects (bpf/<tool>.bpf.o, and bpf/<tool>-*.bpf.o: fsslower's per
 * file system; the kernel keeps 15 characters), or the maps libbpf makes of
 * their global sections, named with a prefix of the object's name
 * (execsnoo.rodata).
 */
function namesOf(command: string): (name: string) => boolean {
  const tool = toolOf(command);
  const names = new Set<string>();
  for (const file of readdirSync(BPF_DIR).filter((f) => f === `${tool}.bpf.o` || (f.startsWith(`${tool}-`) && f.endsWith('.bpf.o')))) {
    const obj = BpfObject.openUnchecked(file.slice(0, -'.bpf.o'.length));
    for (const n of [...obj.programs().map((p) => p.name), ...obj.btf.datasec('.maps').keys()]) names.add(n.slice(0, 15));
    obj.close();
  }
  return (name) => {
    if (names.has(name)) return true;
    const internal = /^(.+)\.(bss|data|rodata|kconfig)$/.exec(name);
    return internal !== null && tool.startsWith(internal[1]);
  };
}

const ownNames = new Map<string, (name: string) => boolean>();

/**
 * Programs, maps and links of `tool`'s object (of any of our tools if none
 * is given) in the kernel now that were not in `before`: what finished runs
 * left behind. The kernel frees a closed object a moment after its process
 * has gone (its maps only once the programs that hold them are freed, after
 * an RCU grace period and a work item: more than two seconds, once, on a
 * loaded machine), so this waits up to ten seconds for them to go; what a
 * run truly leaked stays.
 */
export async function leftovers(before: KernelSnapshot, tool?: string): Promise<string[]> {
  const tools = tool ? [tool] : TOOLS;
  const ours = tools.map((name) => ownNames.get(name) ?? ownNames.set(name, namesOf(name)).get(name)!);
  let left: KernelObject[] = [];
  for (let i = 0; i < 100; i++) {
    left = kernelObjects().filter((o) => !before.has(objectKey(o)) && ours.some((isOurs) => isOurs(o.name)));
    if (left.length === 0) break;
    await sleep(100);
  }
  return left.map((o) => `${o.kind} ${o.name} (id ${o.id})`);
}

/** Runs a command and returns its pid (for matching the PID column). */
export function runCommand(file: string, args: string[], options: { cwd?: string } = {}): { pid: number; status: number | null } {
  const child = spawnSync(file, args, { stdio: 'ignore', ...options });
  return { pid: child.pid ?? -1, status: child.status };
}

/** Whether a C reference tool from Debian's libbpf-tools is installed. */
export function referenceTool(tool: string): string {
  return `/usr/sbin/${tool}`;
}

/**
 * The message of the UsageError `fn` throws, or 'no error'; any other error
 * is rethrown, so the test fails on it.
 */
export function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof UsageError) return err.message;
    throw err;
  }
  return 'no error';
}

/** The mount point of the cgroup v2 hierarchy (the root cgroup: a valid -c). */
export function cgroup2Root(): string {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  const found = mounts.find((fields) => fields[2] === 'cgroup2');
  if (!found) throw new Error('no cgroup2 filesystem mounted');
  return found[1];
}

/** The cgroup v2 id of process `pid`: the inode of its cgroup's directory (what --json gives as cgroup_id). */
export function cgroupIdOf(pid: number): number {
  const path = /^0::(.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))![1];
  return statSync(`${cgroup2Root()}${path}`).ino;
}

/** One option or positional as --help lists it. */
export interface HelpEntry {
  /** as --help shows them: ['-p', '--pid'], ['--json'], ['-j'], ['interval'] */
  names: string[];
  kind: 'boolean' | 'string' | 'array';
  positional: boolean;
}

/** The options and positionals a --help text lists, in its order. */
export function helpEntries(help: string): HelpEntry[] {
  const entries: HelpEntry[] = [];
  let positional = false;
  for (const line of help.split('\n')) {
    if (/^\w+:$/.test(line)) positional = line === 'Positionals:';
    const m = /^ +(\S.*?) {2,}.*\[(boolean|string|array)\]/.exec(line);
    if (m) entries.push({ names: m[1].trim().split(', '), kind: m[2] as HelpEntry['kind'], positional });
  }
  return entries;
}
