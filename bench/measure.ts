// What the benchmark reads about a running tool: when it is ready, how much
// CPU and memory it has used, and what its BPF programs cost in the kernel.
// Everything comes from /proc, so our tools and the C tools are measured
// the same way, from outside.
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { LAUNCHER_NODE_OPTIONS, toolOf } from '../common/commands.js';

// Not from test/helpers.ts: importing it starts a tap test (its afterEach
// check), which would time the benchmark out after 30 s.
/** The repository's root, with a trailing slash. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const CLOCK_TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** A command line: the program and its arguments. */
export type Command = [string, ...string[]];

/** Whether our tool can run: its front end and its BPF object are in the tree, and npm run build has bundled it. */
export function oursAvailable(command: string): boolean {
  const tool = toolOf(command);
  return existsSync(`${ROOT}tools/${tool}.ts`) && existsSync(`${ROOT}bpf/${tool}.bpf.o`)
    && existsSync(`${ROOT}dist/bundle/${tool}.cjs`);
}

/** Our tool, started as its bin/ launcher starts it: node with the Node options of its shebang line (without env's exec). */
export function ours(tool: string, args: string[] = [], node = process.execPath): Command {
  return [node, ...LAUNCHER_NODE_OPTIONS, `${ROOT}bin/${tool}.js`, ...args];
}

/** Debian's C tool (libbpf-tools), as installed in /usr/sbin. */
export function cTool(tool: string): Command {
  return [`/usr/sbin/${tool}`];
}

/** The C tool with a line-buffered stdout (stdbuf), so its header is seen when it is printed. */
export function cToolLineBuffered(tool: string): Command {
  return ['stdbuf', '-oL', ...cTool(tool)];
}

/** Every process the benchmark started and has not seen exit: stopped if the benchmark itself is interrupted. */
export const running = new Set<ChildProcess>();

export function start(command: Command, stdio: StdioOptions): ChildProcess {
  const child = spawn(command[0], command.slice(1), { stdio });
  running.add(child);
  child.on('exit', () => running.delete(child));
  return child;
}

/** Resolves when the process has exited, with its status or signal. */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/**
 * Stops a tool as Ctrl-C does (the C tools flush stdout only then), again
 * every second (the C biolatency can miss a SIGINT that lands between its
 * exit check and its sleep), and kills it if it has not exited after `ms`.
 */
export async function stop(child: ChildProcess, ms = 30000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  if (alive()) child.kill('SIGINT');
  const again = setInterval(() => alive() && child.kill('SIGINT'), 1000);
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const status = await exited(child);
  clearInterval(again);
  clearTimeout(timer);
  return status;
}

/** Polls `condition` every `intervalMs` until it holds (true) or `ms` pass (false). */
export async function waitUntil(condition: () => boolean, ms: number, intervalMs = 5): Promise<boolean> {
  const deadline = nowMs() + ms;
  for (;;) {
    if (condition()) return true;
    if (nowMs() > deadline) return false;
    await sleep(intervalMs);
  }
}

function readProc(pid: number, file: string): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Whether a C tool is waiting for events: libbpf's ring_buffer__poll and
 * perf_buffer__poll block in epoll_wait, which they reach only once every
 * program is attached. (Its header is still in its stdio buffer then.)
 */
export function inEventWait(pid: number): boolean {
  return readProc(pid, 'wchan') === 'do_epoll_wait';
}

/** User + system CPU seconds of the whole process (every thread, live or gone) so far. */
export function cpuSeconds(pid: number): number {
  const stat = readProc(pid, 'stat');
  if (!stat) return NaN;
  // Fields after the command name (which may hold spaces), from field 3 on: utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

function statusKiB(pid: number, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readProc(pid, 'status') ?? '');
  return match ? Number(match[1]) : NaN;
}

/** Peak resident set size (VmHWM) in KiB. */
export const peakRssKiB = (pid: number): number => statusKiB(pid, 'VmHWM');

/** Resident set size now (VmRSS) in KiB. */
export const residentKiB = (pid: number): number => statusKiB(pid, 'VmRSS');

export interface ProgramStats {
  id: number;
  name: string;
  runCount: number;
  runTimeNs: number;
}

/** Full names of loaded programs by id (bpftool; the kernel keeps only 15 characters). */
export function programNames(): Map<number, string> {
  const r = spawnSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' });
  const names = new Map<number, string>();
  if (r.status !== 0) return names;
  for (const p of JSON.parse(r.stdout) as { id: number; name?: string }[]) names.set(p.id, p.name ?? '');
  return names;
}

/**
 * The BPF programs a process holds, with the kernel's run statistics
 * (counted while kernel.bpf_stats_enabled is 1). Read from the fdinfo of its
 * program fds: Debian's bpftool is built without the `pids` field.
 */
export function bpfProgramStats(pid: number): ProgramStats[] {
  const byId = new Map<number, ProgramStats>();
  let fds: string[] = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
    } catch {
      continue;
    }
    const info = readProc(pid, `fdinfo/${fd}`) ?? '';
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)$`, 'm').exec(info)?.[1] ?? NaN);
    const id = field('prog_id');
    if (!Number.isNaN(id)) byId.set(id, { id, name: '', runCount: field('run_cnt'), runTimeNs: field('run_time_ns') });
  }
  const names = programNames();
  for (const p of byId.values()) p.name = names.get(p.id) || `id ${p.id}`;
  return [...byId.values()].sort((a, b) => a.name.localeCompare(b.name));
}

const BPF_STATS_SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';

/** Turns on the kernel's per-program run statistics; returns the function that restores the previous setting. */
export function enableBpfStats(): () => void {
  const before = readFileSync(BPF_STATS_SYSCTL, 'utf8').trim();
  const write = (value: string): void => {
    const r = spawnSync('sysctl', ['-q', '-w', `kernel.bpf_stats_enabled=${value}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`sysctl kernel.bpf_stats_enabled=${value} failed: ${r.stderr.trim()}`);
  };
  write('1');
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    write(before);
  };
}
