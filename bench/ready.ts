// Time to ready: from spawn to the first line on stdout, which every tool
// prints once its programs are attached. The C tools' stdout is made line
// buffered (stdbuf -oL) so their header is seen when printed; bare
// `node -e ''` (spawn to exit) is the floor any Node program pays.
import { existsSync } from 'node:fs';
import {
  cTool, cToolLineBuffered, exited, nowMs, ours, oursAvailable, peakRssKiB, residentKiB, start, stop, type Command,
} from './measure.js';
import { pairedRatio, ratio, spread, table } from './stats.js';

const READY_TIMEOUT_MS = 30000;
const NODE_FLOOR: Command = [process.execPath, '-e', ''];

/** Spawn to the first line, and the memory at that moment (KiB): resident, and its peak so far. */
type Ready = { ms: number; rssKiB: number; hwmKiB: number };

/** When a command was ready, then SIGINT to its exit; or why it never was. */
export type Timing = (Ready & { exitMs: number }) | { failed: string };

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)?.trim() ?? '';
}

/** Spawns `command`, waits for its first stdout line, stops it with SIGINT; the times are spawn to that line, and SIGINT to exit. */
export async function timeToFirstLine(command: Command): Promise<Timing> {
  const startedAt = nowMs();
  const child = start(command, ['ignore', 'pipe', 'pipe']);
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timing = await new Promise<Ready | { failed: string }>((resolve) => {
    const timer = setTimeout(() => resolve({ failed: `no line within ${READY_TIMEOUT_MS} ms` }), READY_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('\n')) {
        clearTimeout(timer);
        const ms = nowMs() - startedAt;
        resolve({ ms, rssKiB: residentKiB(child.pid!), hwmKiB: peakRssKiB(child.pid!) });
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ failed: lastLine(stderr) || `exited (${code ?? signal}) before printing a line` });
    });
  });
  const stopped = nowMs();
  await stop(child);
  return 'failed' in timing ? timing : { ...timing, exitMs: nowMs() - stopped };
}

export async function timeToExit(command: Command): Promise<number> {
  const startedAt = nowMs();
  const child = start(command, 'ignore');
  await exited(child);
  return nowMs() - startedAt;
}

export interface ReadyResult {
  tool: string;
  floor: number[];
  ours: number[];
  c: number[];
  /** SIGINT to exit, once ready */
  oursExit: number[];
  cExit: number[];
  oursFailure?: string;
  cFailure?: string;
}

/** One side of a tool's comparison: measured, or why not. */
class Side {
  readonly times: number[] = [];
  readonly exitTimes: number[] = [];
  failure?: string;

  constructor(readonly command: Command | undefined, missing: string) {
    if (!command) this.failure = missing;
  }

  async measure(keep: boolean): Promise<void> {
    if (this.failure || !this.command) return;
    const timing = await timeToFirstLine(this.command);
    if ('failed' in timing) this.failure = `fails: ${timing.failed}`;
    else if (keep) {
      this.times.push(timing.ms);
      this.exitTimes.push(timing.exitMs);
    }
  }
}

/**
 * `rounds` rounds; in each, for each tool, the Node floor, ours and the C
 * tool run one after the other (in an order that rotates, so none is always
 * first after the previous tool's exit). One unrecorded warm-up round first.
 */
export async function measureReady(tools: string[], rounds: number, progress: (text: string) => void): Promise<ReadyResult[]> {
  const sides = tools.map((tool) => ({
    tool,
    floor: [] as number[],
    ours: new Side(oursAvailable(tool) ? ours(tool) : undefined, `not in the tree yet (tools/${tool}.ts, bpf/${tool}.bpf.o)`),
    c: new Side(existsSync(cTool(tool)[0]) ? cToolLineBuffered(tool) : undefined, `${cTool(tool)[0]} not installed`),
  }));
  for (let round = 0; round <= rounds; round++) {
    const keep = round > 0;
    progress(keep ? `time to ready: round ${round}/${rounds}` : 'time to ready: warm-up');
    for (const s of sides) {
      const steps = [
        async () => {
          const ms = await timeToExit(NODE_FLOOR);
          if (keep) s.floor.push(ms);
        },
        () => s.ours.measure(keep),
        () => s.c.measure(keep),
      ];
      for (let i = 0; i < steps.length; i++) await steps[(i + round) % steps.length]();
    }
  }
  return sides.map((s) => ({
    tool: s.tool, floor: s.floor, ours: s.ours.times, c: s.c.times, oursExit: s.ours.exitTimes, cExit: s.c.exitTimes,
    oursFailure: s.ours.failure, cFailure: s.c.failure,
  }));
}

/**
 * The C tool a tool is held to where its own fails on this machine (the
 * C biosnoop and ext4slower fail here, and biosnoop in every guest of the
 * matrix): C biolatency, which loads and attaches block tracing as well.
 */
export const STAND_IN_C_TOOL: Readonly<Record<string, string>> = { biosnoop: 'biolatency', ext4slower: 'biolatency' };

/**
 * The C times a tool's are compared with: its own C tool's, or where that
 * failed, its stand-in's in the same rounds (`cTimes` of another tool), named.
 */
export function cReference(
  tool: string, own: number[], failed: boolean, cTimes: (tool: string) => number[] | undefined,
): { times: number[]; standIn?: string } {
  const standIn = STAND_IN_C_TOOL[tool];
  if (!failed || !standIn) return { times: own };
  const times = cTimes(standIn);
  return times?.length ? { times, standIn } : { times: own };
}

/** The C cell and the goal's note for a comparison with a stand-in. */
export function standInNote(standIn: string | undefined, times: number[]): { cell: string; goal: string } {
  return standIn ? { cell: `; against C ${standIn}: ${spread(times)}`, goal: ` (against C ${standIn})` } : { cell: '', goal: '' };
}

/** The goal of time to ready, from the ratio (ours − floor) / C: met at ≤ 1, and said when ≤ 0.5. */
export function readyGoal(paired: number): string {
  if (!Number.isFinite(paired)) return '–';
  return paired <= 0.5 ? 'met, ≤ 0.5×' : paired <= 1 ? 'met' : 'not met';
}

export function readyReport(results: ReadyResult[], rounds: number): string {
  const ms = (values: number[]): string => spread(values);
  const rows = results.map((r) => {
    const aboveFloor = r.ours.map((v, i) => v - r.floor[i]);
    const c = cReference(r.tool, r.c, r.cFailure !== undefined, (tool) => results.find((o) => o.tool === tool && !o.cFailure)?.c);
    const note = standInNote(c.standIn, c.times);
    const paired = r.ours.length && c.times.length === aboveFloor.length ? pairedRatio(aboveFloor, c.times) : NaN;
    const goal = readyGoal(paired);
    return [
      r.tool,
      ms(r.floor),
      r.oursFailure ?? ms(r.ours),
      r.oursFailure ? '–' : ms(aboveFloor),
      (r.cFailure ?? ms(r.c)) + note.cell,
      ratio(paired),
      Number.isFinite(paired) ? goal + note.goal : goal,
      r.oursFailure ? '–' : ms(r.oursExit),
      r.cFailure ? '–' : ms(r.cExit),
    ];
  });
  return [
    '## 1. Time to ready',
    '',
    `Spawn to the first stdout line (the header, printed once every program is attached), in ms: median (min–max) of ${rounds} rounds.`,
    'Ours run as the bin/ launcher does (`node bin/<tool>.js`); the C tools under `stdbuf -oL` so the header leaves their stdio buffer when printed (the stdbuf exec is counted in their time).',
    'The floor is bare `node -e \'\'` from spawn to exit, run in the same round. Goal: ours above the floor ≤ the C tool\'s whole time, i.e. the last ratio ≤ 1 (median of per-round ratios); a tool whose C tool fails here is held to C biolatency of the same rounds.',
    'The last two columns: from the Ctrl-C (SIGINT) sent once the header arrived to the exit, in ms, for ours and the C tool (detaching is most of it: a syscall\'s tracepoint waits out the kernel\'s RCU grace periods; the C opensnoop traces openat alone, ours open, openat and openat2).',
    '',
    table(['tool', 'node floor', 'ours', 'ours − floor', 'C tool', '(ours − floor) / C', 'goal', 'ours: Ctrl-C to exit', 'C: Ctrl-C to exit'], rows),
  ].join('\n');
}
