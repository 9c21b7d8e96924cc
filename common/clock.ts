// Event times. BPF stamps events with bpf_ktime_get_ns() (CLOCK_MONOTONIC),
// the clock process.hrtime reads, so an event's wall-clock time and its
// time since the tool started are derived from its own stamp rather than
// from when user space happened to print it.

const startMonotonicNs = process.hrtime.bigint();
const realtimeMinusMonotonicMs = Date.now() - Number(startMonotonicNs) / 1e6;

/** Monotonic nanoseconds when the tool started. */
export const START_NS = Number(startMonotonicNs);

/** Seconds from the tool's start to a monotonic stamp. */
export function secondsSinceStart(monotonicNs: number): number {
  return (monotonicNs - START_NS) / 1e9;
}

/** The wall-clock Date of a monotonic stamp. */
export function wallClock(monotonicNs: number): Date {
  return new Date(realtimeMinusMonotonicMs + monotonicNs / 1e6);
}

const two = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

/** HH:MM:SS in local time, as strftime("%H:%M:%S"). */
export function hhmmss(date: Date): string {
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}
