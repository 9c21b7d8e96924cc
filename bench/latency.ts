// Pipe latency: `execsnoop | reader`, where the reader is this process.
// A marker command is exec'd and the time until its line arrives on the
// pipe is measured (from just before the spawn of the marker, so a few ms
// of fork+exec are included). The C tool's stdout to a pipe is fully
// buffered: its line may not come until the buffer fills or it exits.
import { spawn } from 'node:child_process';
import { cTool, inEventWait, nowMs, ours, oursAvailable, start, stop, waitUntil, type Command } from './measure.js';
import { spread, table } from './stats.js';

const READY_TIMEOUT_MS = 30000;
const MARKER_GAP_MS = 100;

export interface LatencyResult {
  latencies: number[];
  /** why sampling stopped early, if it did */
  missed?: string;
  failed?: string;
}

async function measure(command: Command, isOurs: boolean, markers: number, timeoutMs: number): Promise<LatencyResult> {
  const child = start(command, ['ignore', 'pipe', 'pipe']);
  let stdout = '';
  let stderr = '';
  let waiting: { marker: string; resolve: () => void } | undefined;
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    if (waiting && stdout.includes(waiting.marker)) waiting.resolve();
  });
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const ready = (): boolean => (isOurs ? stdout.includes('\n') : inEventWait(child.pid!));
  if (!(await waitUntil(() => gone() || ready(), READY_TIMEOUT_MS)) || gone()) {
    await stop(child);
    return { latencies: [], failed: stderr.trim().split('\n').at(-1) || 'did not attach' };
  }
  const result: LatencyResult = { latencies: [] };
  for (let i = 0; i < markers; i++) {
    const marker = `bench-marker-${process.pid}-${i}-${Date.now()}`;
    const startedAt = nowMs();
    const seen = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      waiting = { marker, resolve: () => { clearTimeout(timer); resolve(true); } };
    });
    spawn('/bin/echo', [marker], { stdio: 'ignore' });
    if (!(await seen)) {
      waiting = undefined;
      await stop(child);
      result.missed = `not within ${timeoutMs / 1000} s${stdout.includes(marker) ? '; printed when stopped (Ctrl-C flushes its buffer)' : ''}`;
      return result;
    }
    result.latencies.push(nowMs() - startedAt);
    waiting = undefined;
    await new Promise((resolve) => setTimeout(resolve, MARKER_GAP_MS));
  }
  await stop(child);
  return result;
}

export async function measureLatency(markers: number, timeoutMs: number): Promise<{ ours?: LatencyResult; c: LatencyResult }> {
  return {
    ours: oursAvailable('execsnoop') ? await measure(ours('execsnoop'), true, markers, timeoutMs) : undefined,
    c: await measure(cTool('execsnoop'), false, markers, timeoutMs),
  };
}

export function latencyReport(result: { ours?: LatencyResult; c: LatencyResult }, markers: number): string {
  const row = (label: string, r: LatencyResult | undefined): string[] => {
    if (!r) return [label, 'not in the tree yet', '', '', ''];
    if (r.failed) return [label, `fails: ${r.failed}`, '', '', ''];
    const seen = spread(r.latencies, 1);
    const goal = label === 'ours' ? (r.latencies.length === markers && Math.max(...r.latencies) < 50 ? 'met' : 'not met') : '';
    return [label, seen, `${r.latencies.length} of ${markers}`, r.missed ?? '', goal];
  };
  return [
    '## 6. Pipe latency',
    '',
    `\`execsnoop | reader\` (the reader is the benchmark, reading the pipe as data comes): ms from just before spawning \`/bin/echo <marker>\` to the marker's line arriving, median (min–max) of up to ${markers} markers ${MARKER_GAP_MS} ms apart. Goal for ours: every marker under 50 ms.`,
    '',
    table(['tool', 'latency ms', 'markers seen', 'missed', 'goal'], [row('ours', result.ours), row('C tool', result.c)]),
  ].join('\n');
}
