// Event storms: bench/storm.c makes opens (or execs) as fast as it can,
// untraced, under our tool and under the C tool, each writing to a file as
// a user redirecting output would. For each traced run: what the storm made,
// what the tool printed for it, what the tool said it lost, the storm's rate,
// the tool's CPU time and peak RSS, and what its BPF programs cost in the
// kernel (kernel.bpf_stats_enabled is on for the whole section).
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { cgroup2Mount } from '../common/cgroups.js';
import {
  bpfProgramStats, cpuSeconds, cTool, inEventWait, ours, peakRssKiB, residentKiB, start, stop, waitUntil,
  type Command, type ProgramStats,
} from './measure.js';
import { count, fixed, median, pairedRatio, ratio, spread, table } from './stats.js';

const READY_TIMEOUT_MS = 30000;
/** The tool has caught up when it uses less than QUIET_CPU_S of CPU in QUIET_MS (a few clock ticks). */
const QUIET_MS = 300;
const QUIET_CPU_S = 0.03;
const CATCH_UP_TIMEOUT_MS = 120000;

export interface StormKind {
  /** what one event is, for headings ("open", "exec") */
  event: string;
  tool: string;
  /** storm.c's arguments after the mode */
  stormArgs: string[];
  /** whether a line of the tool's output is one of the storm's events */
  isStormLine(line: string, stormPid: number): boolean;
  /** for a storm line: whether it shows everything it should (the C execsnoop may print no arguments) */
  isComplete?(line: string): boolean;
  /** our tool's arguments for a ring buffer too small for the storm, selecting only the storm's events */
  overflowArgs?: string[];
}

/** Ours is also run with this, once per round: what naming every event's cgroup costs (goal: at most 10% more CPU per event). */
const PRINT_CGROUP = ['--print-cgroup'];
/**
 * Every storm runs in this cgroup, three levels below the cgroup2 mount,
 * so that --print-cgroup has a real path to name (the same for every run).
 */
const STORM_CGROUP = '/ebpf-tools-bench/storms/storm';

/** One opensnoop line of the storm: `PID COMM FD ERR PATH`, the storm's pid and its file. */
export function openStorm(opens: number, target: string): StormKind {
  return {
    event: 'open',
    tool: 'opensnoop',
    stormArgs: ['open', String(opens), target],
    isStormLine: (line, pid) => line.startsWith(`${pid} `) && line.endsWith(` ${target}`),
    overflowArgs: ['-b', '1', '-n', 'storm'],
  };
}

/** One execsnoop line of the storm: `PCOMM PID PPID RET ARGS`, true with the storm as parent; complete when ARGS is /bin/true. */
export function execStorm(execs: number): StormKind {
  return {
    event: 'exec',
    tool: 'execsnoop',
    stormArgs: ['exec', String(execs)],
    isStormLine: (line, pid) => {
      const fields = line.split(/\s+/);
      return fields[0] === 'true' && fields[2] === String(pid);
    },
    isComplete: (line) => / 0 \/bin\/true\s*$/.test(line),
  };
}

interface StormRun {
  pid: number;
  made: number;
  rate: number;
}

export interface TracedRun extends StormRun {
  captured: number;
  /** captured lines that show everything (isComplete), when the storm checks that */
  complete: number;
  lost: number;
  /** user+sys seconds from ready to caught up */
  cpu: number;
  /** VmRSS once attached, before the storm */
  rssAtReadyKiB: number;
  /** VmHWM after the storm */
  rssKiB: number;
  programs: ProgramStats[];
  /** stderr lines other than loss reports */
  notes: string[];
}

type Traced = TracedRun | { failed: string };

/** The storm's cgroup directory, made if need be. */
function stormCgroup(): string {
  const mount = cgroup2Mount();
  if (mount === undefined) throw new Error('no cgroup2 file system mounted: the storms run in a cgroup of their own');
  const dir = mount + STORM_CGROUP;
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function runStorm(stormBin: string, kind: StormKind): Promise<StormRun> {
  // the shell moves itself into the storm's cgroup, then becomes the storm (same pid)
  const child = start(['/bin/sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', stormCgroup(), stormBin, ...kind.stormArgs],
    ['ignore', 'pipe', 'inherit']);
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const match = /made=(\d+) seconds=[\d.]+ rate=(\d+)/.exec(stdout);
  if (status !== 0 || !match) throw new Error(`storm ${kind.stormArgs.join(' ')} failed (${status}): ${stdout}`);
  return { pid: child.pid!, made: Number(match[1]), rate: Number(match[2]) };
}

/**
 * Waits until the tool has caught up with the storm: its CPU time grows by
 * less than QUIET_CPU_S over QUIET_MS. (Its output alone cannot tell: other
 * processes' events keep coming, and the C tools hold their last lines.)
 */
async function waitCaughtUp(pid: number): Promise<void> {
  let cpu = cpuSeconds(pid);
  let at = Date.now();
  await waitUntil(() => {
    if (Date.now() - at < QUIET_MS) return false;
    const now = cpuSeconds(pid);
    const quiet = now - cpu < QUIET_CPU_S || Number.isNaN(now);
    cpu = now;
    at = Date.now();
    return quiet;
  }, CATCH_UP_TIMEOUT_MS, 20);
}

/** Reported losses: ours say "N events lost" (biolatency and biosnoop also "N requests not traced"), the C tools "Lost N events". */
export const LOSS_LINE = /(\d+) events lost|Lost (\d+) events|(\d+) requests? not traced/;

export async function runTraced(command: Command, isOurs: boolean, stormBin: string, kind: StormKind, outPath: string): Promise<Traced> {
  const outFd = openSync(outPath, 'w');
  const child = start(command, ['ignore', outFd, 'pipe']);
  closeSync(outFd);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const stderrRead = new Promise((resolve) => child.on('close', resolve));
  const pid = child.pid!;
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  // Ours print the header once attached; the C tools keep it in their stdio buffer, but wait in epoll only once attached.
  const ready = (): boolean => (isOurs ? readFileSync(outPath, 'latin1').includes('\n') : inEventWait(pid));
  try {
    if (!(await waitUntil(() => gone() || ready(), READY_TIMEOUT_MS)) || gone()) {
      await stop(child);
      return { failed: stderr.trim().split('\n').at(-1) || 'did not attach' };
    }
    // CPU from here on: what the events cost, not starting up.
    const cpuAtReady = cpuSeconds(pid);
    const rssAtReadyKiB = residentKiB(pid);
    const storm = await runStorm(stormBin, kind);
    await waitCaughtUp(pid);
    const cpu = cpuSeconds(pid) - cpuAtReady;
    const rssKiB = peakRssKiB(pid);
    const programs = bpfProgramStats(pid);
    await stop(child);
    await stderrRead;
    let captured = 0;
    let complete = 0;
    for (const line of readFileSync(outPath, 'latin1').split('\n')) {
      if (!kind.isStormLine(line, storm.pid)) continue;
      captured++;
      if (kind.isComplete?.(line) ?? true) complete++;
    }
    let lost = 0;
    const notes: string[] = [];
    for (const line of stderr.split('\n')) {
      const loss = LOSS_LINE.exec(line);
      if (loss) lost += Number(loss[1] ?? loss[2] ?? loss[3]);
      else if (line.trim()) notes.push(line.trim());
    }
    return { ...storm, captured, complete, lost, cpu, rssAtReadyKiB, rssKiB, programs, notes };
  } finally {
    unlinkSync(outPath);
  }
}

export interface StormResult {
  kind: StormKind;
  untraced: StormRun[];
  ours: Traced[];
  c: Traced[];
  /** ours with kind.overflowArgs */
  overflow: Traced[];
  /** ours with --print-cgroup */
  printCgroup: Traced[];
}

/** `rounds` rounds of untraced, ours, C (rotating order). */
export async function measureStorm(
  kind: StormKind, stormBin: string, workDir: string, rounds: number, progress: (text: string) => void,
): Promise<StormResult> {
  const result: StormResult = { kind, untraced: [], ours: [], c: [], overflow: [], printCgroup: [] };
  for (let round = 0; round < rounds; round++) {
    const steps = [
      async () => {
        progress(`${kind.event} storm: round ${round + 1}/${rounds}: untraced`);
        result.untraced.push(await runStorm(stormBin, kind));
      },
      async () => {
        progress(`${kind.event} storm: round ${round + 1}/${rounds}: ours`);
        result.ours.push(await runTraced(ours(kind.tool), true, stormBin, kind, `${workDir}/ours.out`));
      },
      async () => {
        progress(`${kind.event} storm: round ${round + 1}/${rounds}: ours ${PRINT_CGROUP.join(' ')}`);
        result.printCgroup.push(await runTraced(ours(kind.tool, PRINT_CGROUP), true, stormBin, kind, `${workDir}/cgroup.out`));
      },
      async () => {
        progress(`${kind.event} storm: round ${round + 1}/${rounds}: C`);
        result.c.push(await runTraced(cTool(kind.tool), false, stormBin, kind, `${workDir}/c.out`));
      },
    ];
    for (let i = 0; i < steps.length; i++) await steps[(i + round) % steps.length]();
    const overflowArgs = kind.overflowArgs;
    if (overflowArgs) {
      progress(`${kind.event} storm: round ${round + 1}/${rounds}: ours ${overflowArgs.join(' ')}`);
      result.overflow.push(await runTraced(ours(kind.tool, overflowArgs), true, stormBin, kind, `${workDir}/overflow.out`));
    }
  }
  return result;
}

const completed = (runs: Traced[]): TracedRun[] => runs.filter((r): r is TracedRun => !('failed' in r));
const missing = (r: TracedRun): number => r.made - r.captured;
/** Storm events neither printed nor covered by a loss report. (Loss reports count every process's events, so they may cover more.) */
export const silentLoss = (r: TracedRun): number => Math.max(0, r.made - r.captured - r.lost);
const perMillion = (r: TracedRun): number => (r.cpu / r.made) * 1e6;
const kernelNsPerEvent = (r: TracedRun): number => r.programs.reduce((sum, p) => sum + p.runTimeNs, 0) / r.made;

function programTable(label: string, runs: TracedRun[]): string[][] {
  const names = [...new Set(runs.flatMap((r) => r.programs.map((p) => p.name)))];
  return names.map((name) => {
    const of = runs.map((r) => r.programs.find((p) => p.name === name)).filter((p) => p !== undefined);
    return [
      label,
      `\`${name}\``,
      count(median(of.map((p) => p.runCount))),
      count(median(of.map((p) => p.runTimeNs / p.runCount))),
    ];
  });
}

export function stormReport(result: StormResult, section: string, workload: string): string {
  const { kind } = result;
  const title = `## ${section}. Event storm: ${workload}, ${kind.tool}`;
  const failure = (runs: Traced[]): string | undefined => runs.map((r) => ('failed' in r ? r.failed : undefined)).find(Boolean);
  const oursFailed = failure(result.ours);
  const cFailed = failure(result.c);
  const o = completed(result.ours);
  const c = completed(result.c);
  // Paired ratios use only rounds where both sides completed.
  const pairs = result.ours.map((r, i) => [r, result.c[i]] as const)
    .filter((p): p is readonly [TracedRun, TracedRun] => !('failed' in p[0]) && !('failed' in p[1]));
  const paired = (f: (r: TracedRun) => number): string => ratio(pairedRatio(pairs.map((p) => f(p[0])), pairs.map((p) => f(p[1]))));
  const untracedRates = result.untraced.map((r) => r.rate);
  const slowdown = (runs: Traced[]): number[] =>
    runs.map((r, i) => ('failed' in r ? NaN : untracedRates[i] / r.rate));
  const side = (failed: string | undefined, runs: TracedRun[], f: (r: TracedRun) => number, digits = 0): string =>
    failed && runs.length === 0 ? `fails: ${failed}` : spread(runs.map(f), digits);
  const each = (runs: TracedRun[], f: (r: TracedRun) => number): string => runs.map((r) => count(f(r))).join(', ') || '–';

  const summary = table(['', 'untraced', 'ours', 'C tool', 'ours / C'], [
    [`${kind.event}s made`, count(median(result.untraced.map((r) => r.made))), side(oursFailed, o, (r) => r.made), side(cFailed, c, (r) => r.made), ''],
    ['lines captured (storm\'s own)', '', side(oursFailed, o, (r) => r.captured), side(cFailed, c, (r) => r.captured), ''],
    ...(kind.isComplete ? [[`of which with ARGS \`/bin/true\``, '', side(oursFailed, o, (r) => r.complete), side(cFailed, c, (r) => r.complete), '']] : []),
    ['missing: made − captured, each run', '', each(o, missing), each(c, missing), ''],
    ['events reported lost (any process), each run', '', each(o, (r) => r.lost), each(c, (r) => r.lost), ''],
    ['missing and not reported (silent loss), each run', '', each(o, silentLoss), each(c, silentLoss), ''],
    [`storm rate (${kind.event}s/s)`, spread(untracedRates), side(oursFailed, o, (r) => r.rate), side(cFailed, c, (r) => r.rate), paired((r) => r.rate)],
    ['storm slowdown vs untraced (per-round ratio)', '1.00×', ratio(median(slowdown(result.ours))), ratio(median(slowdown(result.c))), ''],
    ['tool RSS once attached, VmRSS (MiB)', '', side(oursFailed, o, (r) => r.rssAtReadyKiB / 1024, 1), side(cFailed, c, (r) => r.rssAtReadyKiB / 1024, 1), paired((r) => r.rssAtReadyKiB)],
    ['tool CPU over the storm, user+sys (s)', '', side(oursFailed, o, (r) => r.cpu, 2), side(cFailed, c, (r) => r.cpu, 2), paired((r) => r.cpu)],
    [`tool CPU per 1M ${kind.event}s made (s)`, '', side(oursFailed, o, perMillion, 2), side(cFailed, c, perMillion, 2), paired(perMillion)],
    ['tool peak RSS, VmHWM (MiB)', '', side(oursFailed, o, (r) => r.rssKiB / 1024, 1), side(cFailed, c, (r) => r.rssKiB / 1024, 1), paired((r) => r.rssKiB)],
    [`tool CPU per 1M ${kind.event}s made, ours with ${PRINT_CGROUP.join(' ')} (s)`, '', side(failure(result.printCgroup), completed(result.printCgroup), perMillion, 2), '', ''],
    [`in-kernel BPF ns per ${kind.event} (all its programs)`, '', side(oursFailed, o, kernelNsPerEvent), side(cFailed, c, kernelNsPerEvent), paired(kernelNsPerEvent)],
  ]);

  const programs = table(['tool', 'program', 'run_cnt', 'ns per run'], [...programTable('ours', o), ...programTable('C', c)]);

  const runRows: string[][] = [];
  result.untraced.forEach((u, i) => {
    runRows.push([String(i + 1), 'untraced', count(u.made), '', '', '', count(u.rate), '', '']);
    for (const [label, r] of [['ours', result.ours[i]], ['C', result.c[i]]] as const) {
      if (!r) continue;
      if ('failed' in r) runRows.push([String(i + 1), label, `fails: ${r.failed}`, '', '', '', '', '', '']);
      else runRows.push([String(i + 1), label, count(r.made), count(r.captured), count(r.lost), count(silentLoss(r)), count(r.rate), fixed(r.cpu, 2), fixed(r.rssKiB / 1024, 1)]);
    }
  });
  const runs = table(['round', 'run', 'made', 'captured', 'reported lost', 'silent loss', 'rate/s', 'CPU s', 'peak RSS MiB'], runRows);

  const verdict = (met: boolean): string => (met ? 'met' : 'not met');
  const overflowRuns = result.overflow.map((r, i) => ('failed' in r
    ? [String(i + 1), `fails: ${r.failed}`, '', '', '', '']
    : [String(i + 1), count(r.made), count(r.captured), count(r.lost), count(r.captured + r.lost - r.made), verdict(r.captured + r.lost === r.made)]));
  const overflow = kind.overflowArgs ? [
    '',
    `Loss accounting when the ring buffer overflows: ours with \`${kind.overflowArgs.join(' ')}\` (a one-page ring buffer, only the storm's events), once per round. Goal: captured + reported lost = made, exactly.`,
    '',
    table(['round', 'made', 'captured', 'reported lost', 'captured + lost − made', 'goal'], overflowRuns),
  ] : [];
  const notes = [...new Set([...o, ...c, ...completed(result.overflow)].flatMap((r) => r.notes))];
  const oursSlowdown = median(slowdown(result.ours));
  // rounds where both of ours completed: with --print-cgroup over without
  const cgroupPairs = result.ours.map((r, i) => [r, result.printCgroup[i]] as const)
    .filter((p): p is readonly [TracedRun, TracedRun] => p[1] !== undefined && !('failed' in p[0]) && !('failed' in p[1]));
  const cgroupCost = pairedRatio(cgroupPairs.map((p) => perMillion(p[1])), cgroupPairs.map((p) => perMillion(p[0])));
  const cgroupGoal = cgroupPairs.length
    ? `${PRINT_CGROUP.join(' ')} (storm in \`${STORM_CGROUP}\`): tool CPU per ${kind.event} ${ratio(cgroupCost)} of ours without it, `
      + `each round ${cgroupPairs.map((p) => ratio(perMillion(p[1]) / perMillion(p[0]))).join(', ')}; at most 1.10×: ${verdict(cgroupCost <= 1.1)}; `
      + `captured + reported lost = made: ${verdict(cgroupPairs.every((p) => p[1].captured + p[1].lost === p[1].made))}.`
    : `${PRINT_CGROUP.join(' ')}: not measured (${failure(result.printCgroup) ?? 'no run'}).`;
  const goals = o.length === result.ours.length && o.length > 0
    ? `Goals for ours: captured + reported lost = made in every run: ${verdict(o.every((r) => r.captured + r.lost === r.made))}; `
      + `nothing lost: ${verdict(o.every((r) => r.lost === 0))}; `
      + `storm slowdown no worse than under the C tool: ${verdict(c.length > 0 && oursSlowdown <= median(slowdown(result.c)))}.`
    : `Goals for ours: not measured (${oursFailed ?? 'no run'}).`;
  return [
    title,
    '',
    `Median (min–max) of ${result.untraced.length} rounds; "ours / C" is the median of per-round ratios. CPU is utime+stime from /proc/<pid>/stat (10 ms ticks) from attached to caught up (just before Ctrl-C); RSS is VmHWM at the same moment; in-kernel cost is run_time_ns / run_cnt from the fdinfo of the tool's program fds, and per ${kind.event} it is the sum of its programs' run_time_ns over the ${kind.event}s made (other processes' events run the same programs, a small excess for both).`,
    '',
    summary,
    '',
    goals,
    '',
    cgroupGoal,
    '',
    'In-kernel cost per program (medians over rounds; run_cnt counts every process\'s events, from load to the end of the storm):',
    '',
    programs,
    '',
    'Each run:',
    '',
    runs,
    ...overflow,
    ...(notes.length ? ['', 'Other stderr lines from the tools:', '', ...notes.map((n) => `- \`${n}\``)] : []),
  ].join('\n');
}
