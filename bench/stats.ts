// Summaries and Markdown for the benchmark. The machine is shared and
// noisy, so every figure is a median of several runs, and every comparison
// is the median of the ratios of runs made side by side (one pair per
// round), not a ratio of medians taken at different moments.

export function median(values: number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Median of the per-pair ratios a[i] / b[i]. */
export function pairedRatio(a: number[], b: number[]): number {
  return median(a.map((x, i) => x / b[i]));
}

/** A number with `digits` decimals, or "–" when there is none. */
export function fixed(value: number, digits = 0): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '–';
}

/** An integer with thousands separators. */
export function count(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '–';
}

export function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '–';
}

/** "median (min–max)": integers with separators, others with `digits` decimals. */
export function spread(values: number[], digits = 0): string {
  const show = (v: number): string => (digits === 0 ? count(v) : fixed(v, digits));
  const real = values.filter((v) => Number.isFinite(v));
  if (real.length === 0) return '–';
  return `${show(median(real))} (${show(Math.min(...real))}–${show(Math.max(...real))})`;
}

/** A Markdown table; cells are escaped for pipes. */
export function table(head: string[], rows: string[][]): string {
  const cell = (text: string): string => text.replace(/\|/g, '\\|');
  return [
    `| ${head.map(cell).join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}
