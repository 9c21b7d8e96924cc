// Power-of-two histograms, as the kernel side of a tool counts them (slot n
// holds values v with 2^n <= v < 2^(n+1), slot 0 also v = 0) and as
// libbpf-tools' print_log2_hist prints them, character for character.
//
// bcc's Python print_log2_hist draws the same rows (its slots are shifted by
// one: its bpf_log2l(v) is floor(log2 v) + 1, and its slot 0, v = 0, is never
// shown) but puts five spaces, not four, between "count" and "distribution";
// the tools follow libbpf-tools, whose binaries are the reference.

/** The width of the star bar, as upstream's stars_max. */
const STARS = 40;
/** Up to this slot the labels fit in 10 columns; beyond, the rows widen (upstream's idx_max <= 32). */
const NARROW_MAX_SLOT = 32;

/** The [low, high] label of a slot: 0 -> 1, 2 -> 3, 4 -> 7, ... (exact up to slot 63). */
export function slotRange(slot: number): [bigint, bigint] {
  const low = 1n << BigInt(slot);
  const high = (low << 1n) - 1n;
  return [slot === 0 ? 0n : low, high];
}

/** The bar of a row: stars in proportion to the largest count, padded to `width`. */
function bar(count: number, max: number, width: number): string {
  const stars = Math.floor((Math.min(count, max) * width) / max);
  return '*'.repeat(stars) + ' '.repeat(width - stars);
}

/**
 * The lines libbpf-tools prints for a histogram: a header naming the unit
 * (`label`, e.g. "usecs"), then one row per slot from 0 to the last slot
 * with a count; nothing at all when every slot is empty.
 */
export function log2HistogramLines(slots: readonly number[], label: string): string[] {
  let last = -1;
  let max = 0;
  slots.forEach((count, slot) => {
    if (count > 0) last = slot;
    if (count > max) max = count;
  });
  if (last < 0) return [];
  const narrow = last <= NARROW_MAX_SLOT;
  const labelWidth = narrow ? 10 : 20;
  const stars = narrow ? STARS : STARS / 2;
  const lines = [`${' '.repeat(narrow ? 5 : 15)}${label.padEnd(narrow ? 19 : 29)} : count    distribution`];
  for (let slot = 0; slot <= last; slot++) {
    const [low, high] = slotRange(slot);
    const count = slots[slot];
    lines.push(
      `${String(low).padStart(labelWidth)} -> ${String(high).padEnd(labelWidth)} : ${String(count).padEnd(8)} |${bar(count, max, stars)}|`,
    );
  }
  return lines;
}

/** One bucket of bcc's JSON histogram (print_json_hist). */
export interface JsonBucket {
  'interval-start': number;
  'interval-end': number;
  count: number;
}

/** The buckets of bcc's JSON histogram: slots 0 to the last with a count, labelled as the text rows. */
export function jsonBuckets(slots: readonly number[]): JsonBucket[] {
  const last = slots.reduce((found, count, slot) => (count > 0 ? slot : found), -1);
  return slots.slice(0, last + 1).map((count, slot) => {
    const [low, high] = slotRange(slot);
    return { 'interval-start': Number(low), 'interval-end': Number(high), count };
  });
}

export interface HistogramSummary {
  count: number;
  /** exact when the caller knows the total, else estimated from the slot midpoints */
  average: number;
  /** estimated: linear interpolation inside the slot where the rank falls */
  p50: number;
  p90: number;
  p99: number;
}

/** The value below which `fraction` of the counted values lie, estimated from the slots. */
export function log2Percentile(slots: readonly number[], fraction: number): number {
  const count = slots.reduce((sum, n) => sum + n, 0);
  if (count === 0) return 0;
  const rank = fraction * count;
  let below = 0;
  for (let slot = 0; slot < slots.length; slot++) {
    const n = slots[slot];
    if (n > 0 && below + n >= rank) {
      const low = slot === 0 ? 0 : 2 ** slot;
      const high = 2 ** (slot + 1);
      return low + ((high - low) * (rank - below)) / n;
    }
    below += n;
  }
  return 2 ** slots.length;
}

/** Count, average and p50/p90/p99 of a histogram; `total` (in the same unit) makes the average exact. */
export function summarize(slots: readonly number[], total?: number): HistogramSummary {
  const count = slots.reduce((sum, n) => sum + n, 0);
  const estimatedTotal = slots.reduce((sum, n, slot) => sum + n * (slot === 0 ? 1 : 1.5 * 2 ** slot), 0);
  return {
    count,
    average: count === 0 ? 0 : (total ?? estimatedTotal) / count,
    p50: log2Percentile(slots, 0.5),
    p90: log2Percentile(slots, 0.9),
    p99: log2Percentile(slots, 0.99),
  };
}

/** The summary as one line: "count 50, avg 105.3 usecs, p50 ~96.0, p90 ~121.6, p99 ~127.4 usecs". */
export function summaryLine(summary: HistogramSummary, label: string): string {
  const { count, average, p50, p90, p99 } = summary;
  return `count ${count}, avg ${average.toFixed(1)} ${label}, ` +
    `p50 ~${p50.toFixed(1)}, p90 ~${p90.toFixed(1)}, p99 ~${p99.toFixed(1)} ${label}`;
}
