// Reading exposition text back in the tests: promtool's checks, its samples,
// and our own checks of its histograms (what promtool does not check).
import { spawnSync } from 'node:child_process';
import type { Test } from 'tap';

/** promtool check metrics on `text`: its status and complaints. */
export function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool not found (Debian package prometheus; scripts/install-test-deps.sh): ${r.error.message}`);
  return { status: r.status, output: r.stdout + r.stderr };
}

/** Parsed samples: name, labels, value. */
export function parseExposition(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1], labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return samples;
}

/** Our own checks of every histogram in `text`: le increasing, counts cumulative, +Inf = _count. */
export function checkHistograms(tt: Test, text: string): void {
  const samples = parseExposition(text);
  const series = new Map<string, { le: number; value: number }[]>();
  for (const s of samples.filter((x) => x.name.endsWith('_bucket'))) {
    const { le, ...rest } = s.labels;
    const key = `${s.name.replace(/_bucket$/, '')}${JSON.stringify(rest)}`;
    series.set(key, [...(series.get(key) ?? []), { le: le === '+Inf' ? Infinity : Number(le), value: s.value }]);
  }
  for (const [key, buckets] of series) {
    for (let i = 1; i < buckets.length; i++) {
      tt.ok(buckets[i].le > buckets[i - 1].le, `${key}: le increasing`);
      tt.ok(buckets[i].value >= buckets[i - 1].value, `${key}: cumulative`);
    }
    tt.equal(buckets.at(-1)!.le, Infinity, `${key}: ends with +Inf`);
    const name = key.slice(0, key.indexOf('{'));
    const labels = JSON.parse(key.slice(key.indexOf('{'))) as Record<string, string>;
    const count = samples.find((s) => s.name === `${name}_count` && JSON.stringify(s.labels) === JSON.stringify(labels));
    tt.equal(count?.value, buckets.at(-1)!.value, `${key}: +Inf = _count`);
  }
}
