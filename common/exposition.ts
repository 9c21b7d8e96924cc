// The Prometheus text exposition format (version 0.0.4), written by us:
// every value the tools export is already aggregated (by the kernel, or by
// a counter per label set), so a client library's registry, metric objects
// and per-observation API would only be copied into; writing the families
// takes these few functions. Also what every tool's metrics share: label
// values from kernel bytes, the bounded comm label, errno names, and
// histograms made of the kernel's log2 slots.
import { escapeText } from './escape.js';

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  labels: Labels;
  value: number;
}

export interface HistogramSeries {
  labels: Labels;
  /** cumulative counts by upper bound (seconds), increasing, +Inf left out */
  buckets: { le: number; count: number }[];
  /** every observation: the +Inf bucket */
  count: number;
  sum: number;
}

export type Family =
  | { name: string; help: string; type: 'counter' | 'gauge'; samples: Sample[] }
  | { name: string; help: string; type: 'histogram'; series: HistogramSeries[] };

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A sample value as Prometheus parses it (Go's ParseFloat). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

const escapeHelp = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabelValue = (text: string): string => text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

function labelText(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.entries(labels);
  if (extra) pairs.push(extra);
  if (pairs.length === 0) return '';
  return `{${pairs.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',')}}`;
}

/** The exposition text of `families`, in that order. */
export function exposition(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    if (family.type === 'histogram') {
      for (const s of family.series) {
        for (const b of s.buckets) lines.push(`${family.name}_bucket${labelText(s.labels, ['le', formatValue(b.le)])} ${b.count}`);
        lines.push(`${family.name}_bucket${labelText(s.labels, ['le', '+Inf'])} ${s.count}`);
        lines.push(`${family.name}_sum${labelText(s.labels)} ${formatValue(s.sum)}`);
        lines.push(`${family.name}_count${labelText(s.labels)} ${s.count}`);
      }
    } else {
      for (const s of family.samples) lines.push(`${family.name}${labelText(s.labels)} ${formatValue(s.value)}`);
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * The buckets of a log2 histogram whose slot n holds values v (in units of
 * 1/unitsPerSecond s) with 2^n <= v < 2^(n+1), slot 0 also v < 1: slot n is
 * the bucket le = 2^(n+1) units exactly; the last slot also holds every
 * larger value (the kernel clamps), so it has no bound but +Inf.
 */
export function log2Buckets(slots: readonly number[], unitsPerSecond: number): Pick<HistogramSeries, 'buckets' | 'count'> {
  const buckets: { le: number; count: number }[] = [];
  let cumulative = 0;
  for (let slot = 0; slot < slots.length - 1; slot++) {
    cumulative += slots[slot];
    buckets.push({ le: 2 ** (slot + 1) / unitsPerSecond, count: cumulative });
  }
  return { buckets, count: cumulative + (slots.at(-1) ?? 0) };
}

/** floor(log2(v)), 0 for v < 2: the slot the kernel side counts v in (log2_slot in the .bpf.c). */
export function log2Slot(value: number): number {
  if (value < 2) return 0;
  if (value >= 2 ** 32) return 32 + log2Slot(Math.floor(value / 2 ** 32));
  return 31 - Math.clz32(value);
}

/** Slots of biolatency.bpf.c's struct hist (MAX_SLOTS), the size of histograms made in user space. */
export const LOG2_SLOTS = 27;

/** A log2 histogram of latencies in microseconds, counted in user space from events (the kernel's slot rule). */
export class Log2Histogram {
  readonly slots = new Array<number>(LOG2_SLOTS).fill(0);
  sumNs = 0;

  observe(latencyNs: number): void {
    this.slots[Math.min(log2Slot(Math.floor(latencyNs / 1000)), LOG2_SLOTS - 1)]++;
    this.sumNs += latencyNs;
  }
}

/** A histogram series of microsecond slots and a total in nanoseconds, as the kernel keeps them. */
export function microsecondHistogram(labels: Labels, slots: readonly number[], totalNs: number): HistogramSeries {
  return { labels, ...log2Buckets(slots, 1e6), sum: totalNs / 1e9 };
}

/**
 * A label value for bytes from the kernel (a comm): valid UTF-8 whatever the
 * bytes (one invalid label value makes Prometheus drop the whole scrape),
 * and never the same for two different byte strings: printable text as it
 * is, a backslash as \\, anything else as \xHH, \t, \u{HHHH} (as the human
 * output shows them).
 */
export function labelValueOf(bytes: Uint8Array): string {
  return escapeText(bytes);
}

/**
 * The comm label value of every comm beyond the limit. No comm has it: a
 * comm is at most 15 bytes, and one written without a backslash is its
 * own bytes, so no label value of a comm is 17 plain characters.
 */
export const OTHER_COMMS = '(all other comms)';

/**
 * The comm label, bounded: the first `limit` distinct comms seen keep their
 * own value for the whole run (so that every series only ever grows, as a
 * counter must), any later one is counted under OTHER_COMMS; limit 0
 * drops the label.
 */
export class CommLabels {
  private readonly known = new Map<string, Labels>();
  private static readonly none: Labels = Object.freeze({});
  private readonly other: Labels = Object.freeze({ comm: OTHER_COMMS });

  constructor(readonly limit: number) {}

  /** The labels for `comm` ({} without the comm label). */
  of(comm: Uint8Array): Labels {
    if (this.limit === 0) return CommLabels.none;
    const key = Buffer.from(comm.buffer, comm.byteOffset, comm.length).toString('latin1');
    const found = this.known.get(key);
    if (found) return found;
    if (this.known.size >= this.limit) return this.other;
    const labels = Object.freeze({ comm: labelValueOf(comm) });
    this.known.set(key, labels);
    return labels;
  }
}

/** The cgroup label value of every cgroup beyond the limit: a path starts with "/" (or "..."), so no cgroup has it. */
export const OTHER_CGROUPS = '(all other cgroups)';

/** The cgroup label value of a cgroup the kernel could not name (not a path either). */
export const UNNAMED_CGROUP = '(unnamed cgroup)';

/** Cgroup ids remembered before the memory starts over (each is then looked up again once). */
const CGROUP_IDS_KEPT = 65536;

/**
 * The cgroup label (--prometheus-cgroups), bounded as comm is: the first
 * `limit` distinct paths keep their own value for the whole run, any later
 * one is counted under OTHER_CGROUPS; limit 0 drops the label. `pathOf`
 * names a cgroup id (undefined: not known, asked again next time).
 */
export class CgroupLabels {
  private readonly byId = new Map<number, Labels>();
  private readonly byPath = new Map<string, Labels>();
  private static readonly none: Labels = Object.freeze({});
  private readonly other: Labels = Object.freeze({ cgroup: OTHER_CGROUPS });
  private readonly unnamed: Labels = Object.freeze({ cgroup: UNNAMED_CGROUP });

  constructor(readonly limit: number, private readonly pathOf: (id: number) => Uint8Array | undefined) {}

  of(id: number): Labels {
    if (this.limit === 0) return CgroupLabels.none;
    const found = this.byId.get(id);
    if (found) return found;
    const path = this.pathOf(id);
    if (path === undefined) return this.unnamed;
    const value = labelValueOf(path);
    let labels = this.byPath.get(value);
    if (!labels) {
      labels = this.byPath.size < this.limit ? Object.freeze({ cgroup: value }) : this.other;
      if (labels !== this.other) this.byPath.set(value, labels);
    }
    if (this.byId.size >= CGROUP_IDS_KEPT) this.byId.clear();
    this.byId.set(id, labels);
    return labels;
  }
}

/** Counters by label set, created at their first increment. */
export class Counters {
  private readonly byKey = new Map<string, { labels: Labels; value: number }>();

  add(labels: Labels, by = 1): void {
    // label values hold no NUL (labelValueOf escapes it): an unambiguous key
    const key = Object.entries(labels).map(([n, v]) => `${n}\0${v}`).join('\0');
    const found = this.byKey.get(key);
    if (found) found.value += by;
    else this.byKey.set(key, { labels, value: by });
  }

  samples(): Sample[] {
    return [...this.byKey.values()].map(({ labels, value }) => ({ labels, value }));
  }
}

/** Histograms by label set, counted in user space. */
export class Histograms {
  private readonly byKey = new Map<string, { labels: Labels; histogram: Log2Histogram }>();

  observe(labels: Labels, latencyNs: number): void {
    const key = Object.entries(labels).map(([n, v]) => `${n}\0${v}`).join('\0');
    let found = this.byKey.get(key);
    if (!found) this.byKey.set(key, (found = { labels, histogram: new Log2Histogram() }));
    found.histogram.observe(latencyNs);
  }

  series(): HistogramSeries[] {
    return [...this.byKey.values()].map(({ labels, histogram }) => microsecondHistogram(labels, histogram.slots, histogram.sumNs));
  }
}
