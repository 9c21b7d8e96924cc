// biolatency: block I/O latency as power-of-two histograms, as bcc's and
// libbpf-tools' biolatency, on kernels with or without BTF tracepoints,
// fentry or kprobes.
import type { BpfObject } from '../common/bpfobject.js';
import type { Exporter } from '../common/exporter.js';
import { microsecondHistogram, type Family, type HistogramSeries } from '../common/exposition.js';
import { BIO_LATENCY_METRIC, bioLatencyHelp, blockAttachPlans, configureBlockPlan, RequestFlags, UntrackedRequests } from '../common/bio.js';
import { CgroupNames, configureCgroupNames } from '../common/cgroups.js';
import { commandLine, integerOption, Lifetime, parseCommandLine } from '../common/cli.js';
import { UsageError } from '../common/errors.js';
import { hhmmss } from '../common/clock.js';
import { DiskNames, resolveDisk, type BlockDevice } from '../common/disks.js';
import { terminalSafeJson } from '../common/escape.js';
import { applySelection, selectionFromArgs, selectionOptions, type SelectionOptions } from '../common/filters.js';
import { jsonBuckets, log2HistogramLines, summarize, summaryLine } from '../common/histogram.js';
import { structDecoder } from '../common/layout.js';
import { libbpfLog } from '../common/log.js';
import { readMap } from '../common/maps.js';
import { Output } from '../common/output.js';
import { loadWithPlans } from '../common/plan.js';
import { openExporter, prometheusFromArgs, prometheusOption, type PrometheusOptions } from '../common/prometheus.js';
import { PAGE_SIZE } from '../common/ringbuf.js';

const USAGE = `Summarize block device I/O latency as a histogram

USAGE: biolatency [-h] [-T] [-Q] [-m] [-D] [-F] [-e] [-j] [-d DISK] [-c CG] [--cgroupmap PATH]
                  [--mntnsmap PATH] [--cgroups] [--cgroups-max N] [--percentiles]
                  [--prometheus [ADDR:]PORT] [-v] [interval [count]]`;

const EXAMPLES = `    biolatency                    # summarize block I/O latency as a histogram
    biolatency 1 10               # print 1 second summaries, 10 times
    biolatency -mT 1              # 1s summaries, milliseconds, and timestamps
    biolatency -Q                 # include OS queued time in I/O time
    biolatency -D                 # show each disk device separately
    biolatency -F                 # show I/O flags separately
    biolatency -j                 # print one JSON object per histogram
    biolatency -e                 # show extension summary (total, average)
    biolatency -d sdc             # trace sdc only
    biolatency -c CG              # trace I/O issued by processes in cgroup v2 directory CG
    biolatency --cgroups 5        # 5s summaries, a histogram per cgroup of the issuing process
    biolatency --cgroups --cgroups-max 3  # the 3 busiest cgroups, the others in one histogram
    biolatency --percentiles 5    # 5s summaries with count, average, p50, p90 and p99
    biolatency --prometheus 9560  # serve histograms per disk and operation at :9560/metrics`;

/** setTimeout's limit (2^31 - 1 ms), so that an interval never fires early. */
export const MAX_INTERVAL_S = Math.floor(0x7fffffff / 1000);
const MAX_COUNT = 0x7fffffff;
/** --cgroups: the busiest cgroups shown by default, each with its histograms; the others are summed in one. */
export const DEFAULT_CGROUPS_MAX = 10;
const MAX_CGROUPS_MAX = 1000;

export interface Options extends SelectionOptions {
  /** seconds between histograms; undefined: one histogram, at the end */
  interval?: number;
  /** histograms to print before ending; undefined: until interrupted */
  count?: number;
  timestamp: boolean;
  queued: boolean;
  milliseconds: boolean;
  perDisk: boolean;
  perFlag: boolean;
  /** --cgroups: the histograms of this many busiest cgroups (of the issuing processes), the others summed; undefined without */
  perCgroup?: number;
  /** the -d disk, as the kernel numbers it (dev_t) */
  dev?: number;
  extension: boolean;
  json: boolean;
  percentiles: boolean;
  /** --prometheus: serve metrics instead of printing */
  prometheus?: PrometheusOptions;
  verbose: boolean;
}

/**
 * --disk is two options upstream: bcc's --disk DISK (our -d) and, first in
 * libbpf-tools' table so the one getopt finds, its --disk flag (our -D).
 * Followed by a word that can only be a disk name (not a number, not an
 * option), or given one with '=' (which libbpf-tools refuses), it is bcc's;
 * otherwise libbpf-tools'.
 */
export function resolveDiskSpelling(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (word === '--disk' && (i + 1 === argv.length || /^-|^\d+$/.test(argv[i + 1]))) out.push('-D');
    else out.push(word);
  }
  return out;
}

/** The options; `devices` (the system's, by default) are where -d is looked up. */
export function parseOptions(argv: string[], devices?: BlockDevice[]): Options {
  const args = parseCommandLine(commandLine('biolatency', USAGE, EXAMPLES)
    .command('$0 [interval] [count]', false, (y) =>
      y.positional('interval', { type: 'string', description: 'output interval, in seconds' })
        .positional('count', { type: 'string', description: 'number of outputs' }))
    .options({
      timestamp: { alias: 'T', type: 'boolean', default: false, description: 'include timestamp on output' },
      queued: { alias: 'Q', type: 'boolean', default: false, description: 'include OS queued time in I/O time' },
      milliseconds: { alias: 'm', type: 'boolean', default: false, description: 'millisecond histogram' },
      disks: { alias: 'D', type: 'boolean', default: false, description: 'print a histogram per disk device (also --disk without a disk name, as libbpf-tools)' },
      flags: { alias: ['F', 'flag'], type: 'boolean', default: false, description: 'print a histogram per set of I/O flags' },
      extension: { alias: 'e', type: 'boolean', default: false, description: 'summarize average/total value (and the --percentiles line)' },
      json: { alias: 'j', type: 'boolean', default: false, description: 'print one JSON object per histogram (bcc\'s shape, NDJSON)' },
      disk: { alias: 'd', type: 'string', requiresArg: true, description: 'trace this disk only (--disk DISK as bcc, where DISK is not a number)' },
      ...selectionOptions,
      cgroups: { type: 'boolean', default: false, description: 'print a histogram per cgroup v2 cgroup of the issuing process (the busiest --cgroups-max, the others summed)' },
      'cgroups-max': { type: 'string', requiresArg: true, description: `with --cgroups: how many of the busiest cgroups get their own histograms (default ${DEFAULT_CGROUPS_MAX})` },
      percentiles: { type: 'boolean', default: false, description: 'print count, average, p50, p90 and p99 (estimated from the buckets) under each histogram' },
      ...prometheusOption,
      verbose: { alias: 'v', type: 'boolean', default: false, description: 'verbose debug output (libbpf log, attach decisions)' },
    }), resolveDiskSpelling(argv));
  const interval = args.interval as string | undefined;
  const count = args.count as string | undefined;
  if (args.cgroupsMax !== undefined && !args.cgroups) throw new UsageError('option --cgroups-max needs --cgroups');
  return {
    interval: interval === undefined ? undefined : integerOption('interval', interval, 1, MAX_INTERVAL_S),
    count: count === undefined ? undefined : integerOption('count', count, 1, MAX_COUNT),
    timestamp: args.timestamp,
    queued: args.queued,
    milliseconds: args.milliseconds,
    perDisk: args.disks,
    perFlag: args.flags,
    perCgroup: !args.cgroups ? undefined
      : args.cgroupsMax === undefined ? DEFAULT_CGROUPS_MAX : integerOption('--cgroups-max', args.cgroupsMax, 1, MAX_CGROUPS_MAX),
    dev: args.disk === undefined ? undefined : resolveDisk('--disk', args.disk, devices),
    extension: args.extension,
    json: args.json,
    percentiles: args.percentiles,
    prometheus: prometheusFromArgs(args, {
      '-T': args.timestamp, '-m': args.milliseconds, '-D': args.disks, '-F': args.flags, '-e': args.extension,
      '-j': args.json, '--percentiles': args.percentiles, '--cgroups': args.cgroups, interval, count,
    }),
    ...selectionFromArgs(args),
    verbose: args.verbose,
  };
}

/** Whether requests must be seen when created: for queued time, and to know whose they are. */
export function needsRequestStart(options: Options): boolean {
  return options.queued || options.perCgroup !== undefined ||
    options.cgroup !== undefined || options.cgroupmap !== undefined || options.mntnsmap !== undefined;
}

/** The kernel-side configuration. */
export function kernelConfig(options: Options): Record<string, number | boolean> {
  return {
    targ_queued: options.queued,
    targ_ms: options.milliseconds,
    // the exporter labels every histogram with its disk and operation
    targ_per_disk: options.perDisk || options.prometheus !== undefined,
    targ_per_flag: options.perFlag || options.prometheus !== undefined,
    targ_per_cgroup: options.perCgroup !== undefined,
    filter_dev: options.dev !== undefined,
    targ_dev: options.dev ?? 0,
  };
}

/** One histogram: what it is for and its counts over the period printed. */
export interface Histogram {
  dev: number;
  cmdFlags: number;
  /** --cgroups: the cgroup of the issuing process (0: not seen); undefined for the sum of the other cgroups' */
  cgroupId?: number;
  /** the sum of the histograms of this many cgroups, past the --cgroups-max busiest */
  otherCgroups?: number;
  slots: number[];
  totalNs: number;
  count: number;
}

/** The histograms counted since `previous` (the kernel's are cumulative); empty ones are left out. */
export function histogramsSince(current: Histogram[], previous: Histogram[]): Histogram[] {
  const keyOf = (h: Histogram): string => `${h.dev}/${h.cmdFlags}/${h.cgroupId ?? 0}`;
  const before = new Map(previous.map((h) => [keyOf(h), h]));
  const result: Histogram[] = [];
  for (const h of current) {
    const old = before.get(keyOf(h));
    const count = h.count - (old?.count ?? 0);
    if (count <= 0) continue;
    result.push({
      dev: h.dev,
      cmdFlags: h.cmdFlags,
      cgroupId: h.cgroupId,
      slots: h.slots.map((n, slot) => n - (old?.slots[slot] ?? 0)),
      totalNs: h.totalNs - (old?.totalNs ?? 0),
      count,
    });
  }
  return result;
}

/** How a histogram is named: its cgroup (--cgroups), disk (-D) and flags (-F). */
export interface Naming {
  /** the cgroup's path as printed (escaped) and as JSON has it (exact; null if not known) */
  cgroup?: (id: number) => { text: string; path: string | null };
  disk?: (dev: number) => string;
  flags?: (cmdFlags: number) => string;
}

/**
 * --cgroups: the histograms of the `max` busiest cgroups over the period
 * (most I/O first, each cgroup's together), then those of every other
 * cgroup summed, per disk and flags, marked with how many cgroups they sum.
 */
export function busiestCgroups(histograms: Histogram[], max: number, naming: Naming): Histogram[] {
  const byCgroup = new Map<number, Histogram[]>();
  for (const h of histograms) {
    const id = h.cgroupId ?? 0;
    byCgroup.set(id, [...(byCgroup.get(id) ?? []), h]);
  }
  const total = (list: Histogram[]): number => list.reduce((sum, h) => sum + h.count, 0);
  const ranked = [...byCgroup.entries()].sort(([a, x], [b, y]) => total(y) - total(x) || a - b);
  const shown = ranked.slice(0, max).flatMap(([, list]) => sortHistograms(list, naming));
  const rest = ranked.slice(max);
  const merged = new Map<string, Histogram>();
  for (const [, list] of rest) {
    for (const h of list) {
      const key = `${h.dev}/${h.cmdFlags}`;
      const sum = merged.get(key);
      if (!sum) {
        merged.set(key, { ...h, cgroupId: undefined, otherCgroups: rest.length, slots: [...h.slots] });
        continue;
      }
      h.slots.forEach((n, slot) => (sum.slots[slot] += n));
      sum.totalNs += h.totalNs;
      sum.count += h.count;
    }
  }
  return [...shown, ...sortHistograms([...merged.values()], naming)];
}

export function unitLabel(options: Options): string {
  return options.milliseconds ? 'msecs' : 'usecs';
}

function unitNs(options: Options): number {
  return options.milliseconds ? 1e6 : 1e3;
}

/** The other cgroups' sum as a cgroup label: a name no cgroup path can have (every path starts with /). */
const otherCgroupsLabel = (n: number): string => `(${n} other cgroup${n === 1 ? '' : 's'})`;

/** "disk = vda", "flags = Sync-Write", or both separated by a tab, as libbpf-tools names a histogram; "cgroup = /a/b" first with --cgroups. */
export function sectionLabel(h: Histogram, naming: Naming): string | undefined {
  const parts: string[] = [];
  if (naming.cgroup) parts.push(`cgroup = ${h.otherCgroups !== undefined ? otherCgroupsLabel(h.otherCgroups) : naming.cgroup(h.cgroupId ?? 0).text}`);
  if (naming.disk) parts.push(`disk = ${naming.disk(h.dev)}`);
  if (naming.flags) parts.push(`flags = ${naming.flags(h.cmdFlags)}`);
  return parts.length ? parts.join('\t') : undefined;
}

/** Sorts histograms by their section label, so that each interval lists them in the same order. */
export function sortHistograms(histograms: Histogram[], naming: Naming): Histogram[] {
  const label = (h: Histogram): string => sectionLabel(h, naming) ?? '';
  return [...histograms].sort((a, b) => label(a).localeCompare(label(b), 'en', { numeric: true }));
}

/** The text of one histogram: a blank line, its name (-D, -F), the rows, and the -e/--percentiles lines. */
export function renderHistogram(h: Histogram, options: Options, naming: Naming): string[] {
  const label = unitLabel(options);
  const lines = [''];
  const section = sectionLabel(h, naming);
  if (section !== undefined) lines.push(section);
  lines.push(...log2HistogramLines(h.slots, label));
  const total = Math.floor(h.totalNs / unitNs(options));
  if (options.extension) {
    lines.push('', `avg = ${Math.floor(total / h.count)} ${label}, total: ${total} ${label}, count: ${h.count}`, '');
  }
  if (options.extension || options.percentiles) {
    lines.push(summaryLine(summarize(h.slots, h.totalNs / unitNs(options)), label));
  }
  return lines;
}

const two = (n: number): string => String(n).padStart(2, '0');

/** strftime("%Y-%m-%d %H:%M:%S") in local time, bcc's JSON "ts". */
export function jsonTime(date: Date): string {
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${hhmmss(date)}`;
}

/** bcc's JSON histogram (ts, val_type, data, and disk or flags), plus the summary with -e/--percentiles. */
export function renderJson(h: Histogram, options: Options, naming: Naming, now: Date): string {
  const label = unitLabel(options);
  const object: Record<string, unknown> = { ts: jsonTime(now), val_type: label, data: jsonBuckets(h.slots) };
  if (naming.cgroup && h.otherCgroups !== undefined) Object.assign(object, { cgroup: null, cgroup_id: null, other_cgroups: h.otherCgroups });
  else if (naming.cgroup) Object.assign(object, { cgroup: naming.cgroup(h.cgroupId ?? 0).path, cgroup_id: h.cgroupId ?? 0 });
  if (naming.disk) object.disk = naming.disk(h.dev);
  if (naming.flags) object.flags = naming.flags(h.cmdFlags);
  if (options.extension || options.percentiles) {
    const total = h.totalNs / unitNs(options);
    const summary = summarize(h.slots, total);
    Object.assign(object, {
      total: Math.floor(total), count: summary.count, avg: summary.average,
      p50: summary.p50, p90: summary.p90, p99: summary.p99,
    });
  }
  return terminalSafeJson(object);
}

/** Reads the kernel's cumulative histograms. */
function histogramReader(obj: BpfObject): () => Histogram[] {
  const keyLayout = obj.struct('hist_key');
  const valueLayout = obj.struct('hist');
  const keys = structDecoder(keyLayout, { cmd_flags: 'u32', dev: 'u32', cgroup_id: 'u64' });
  const values = structDecoder(valueLayout, { total_ns: 'u64', count: 'u64' });
  const slotsField = valueLayout.fields.get('slots');
  if (slotsField?.type.kind !== 'array' || slotsField.type.element.size !== 8) {
    throw new Error('struct hist.slots is not an array of 64-bit counters');
  }
  const { offset, type } = slotsField;
  const fd = obj.mapFd('hists');
  return () => readMap(fd, keyLayout.size, valueLayout.size).map(({ key, value }) => {
    const k = keys.decode(new DataView(key.buffer, key.byteOffset, key.length), 0);
    const view = new DataView(value.buffer, value.byteOffset, value.length);
    const v = values.decode(view, 0);
    const slots = Array.from({ length: type.length }, (_, i) => Number(view.getBigUint64(offset + 8 * i, true)));
    return { dev: k.dev, cmdFlags: k.cmd_flags, cgroupId: k.cgroup_id, slots, totalNs: v.total_ns, count: v.count };
  });
}

/**
 * The --prometheus histograms, read from the kernel's map at each scrape:
 * those of the flag sets of one operation on one disk summed (sums of
 * counters only grow).
 */
export function bioLatencyFamily(
  histograms: Histogram[], diskName: (dev: number) => string, operation: (cmdFlags: number) => string, queued: boolean,
): Family {
  const merged = new Map<string, { disk: string; op: string; slots: number[]; totalNs: number }>();
  for (const h of histograms) {
    const disk = diskName(h.dev);
    const op = operation(h.cmdFlags);
    const key = `${disk}\0${op}`;
    const found = merged.get(key);
    if (!found) merged.set(key, { disk, op, slots: [...h.slots], totalNs: h.totalNs });
    else {
      h.slots.forEach((n, slot) => (found.slots[slot] += n));
      found.totalNs += h.totalNs;
    }
  }
  const series: HistogramSeries[] = [...merged.values()]
    .sort((a, b) => a.disk.localeCompare(b.disk) || a.op.localeCompare(b.op))
    .map((m) => microsecondHistogram({ disk: m.disk, op: m.op }, m.slots, m.totalNs));
  return { name: BIO_LATENCY_METRIC, help: bioLatencyHelp(queued), type: 'histogram', series };
}

function serveMetrics(exporter: Exporter, obj: BpfObject, plan: string, options: Options): void {
  const disks = new DiskNames();
  const flags = RequestFlags.fromKernel();
  const read = histogramReader(obj);
  exporter.serve(obj, plan, () => [bioLatencyFamily(read(), (d) => disks.name(d), (f) => flags.operation(f), options.queued)]);
}

export async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  libbpfLog.setVerbose(options.verbose);
  const exporter = await openExporter('biolatency', options.prometheus);

  const lifetime = new Lifetime();
  const { obj, plan } = loadWithPlans('biolatency', blockAttachPlans(needsRequestStart(options)), (o, plan) => {
    o.setConfig(kernelConfig(options));
    configureBlockPlan(o, plan);
    configureCgroupNames(o, options.perCgroup === undefined ? undefined : 'path');
    // histograms stay in the kernel: the shared event ring buffer goes unused
    o.setMaxEntries('events', PAGE_SIZE);
    return applySelection(o, options);
  });
  lifetime.onEnd(() => obj.close());
  const untracked = new UntrackedRequests(obj);
  // after the last histogram, before the object goes
  lifetime.onEnd(() => untracked.finalReport());
  if (exporter) {
    serveMetrics(exporter, obj, plan.name, options);
    setInterval(() => untracked.report(), 1000);
    lifetime.onEnd(() => untracked.settle());
    return;
  }
  // after loading, which checked that the kernel's BTF is there
  const naming: Naming = {};
  if (options.perCgroup !== undefined) {
    const cgroups = new CgroupNames(obj, 'path');
    naming.cgroup = (id) => {
      const cgroup = cgroups.of(id);
      return { text: cgroup.text, path: cgroup.path ?? null };
    };
  }
  if (options.perDisk) {
    const disks = new DiskNames();
    naming.disk = (d) => disks.name(d);
  }
  if (options.perFlag) {
    const flags = RequestFlags.fromKernel();
    naming.flags = (f) => flags.describe(f);
  }

  const out = new Output();
  const read = histogramReader(obj);
  let previous: Histogram[] = [];
  let printed = 0;
  const report = (): void => {
    const now = new Date();
    const current = read();
    const since = histogramsSince(current, previous);
    const histograms = options.perCgroup === undefined ? sortHistograms(since, naming) : busiestCgroups(since, options.perCgroup, naming);
    previous = current;
    printed++;
    if (options.json) {
      for (const h of histograms) out.line(renderJson(h, options, naming, now));
    } else {
      out.line('');
      if (options.timestamp) out.line(hhmmss(now));
      for (const h of histograms) for (const line of renderHistogram(h, options, naming)) out.line(line);
    }
    out.flush();
    untracked.report();
  };

  if (!options.json) out.line('Tracing block device I/O... Hit Ctrl-C to end.');
  out.flush();
  let done = false;
  lifetime.onEnd(() => {
    if (!done) report();
  });
  // first at the end: the requests in flight complete, and the histogram above counts them
  lifetime.onEnd(() => untracked.settle());
  // also keeps the process alive when the only histogram is printed at the end
  setInterval(() => untracked.report(), 1000);
  if (options.interval !== undefined) {
    // deadlines a whole interval apart, so that the intervals do not drift;
    // but after a machine stood still past the next one too (a paused VM), the
    // next interval is a whole one from now rather than an empty one at once
    const intervalMs = options.interval * 1000;
    let due = performance.now();
    const next = (): void => {
      due += intervalMs;
      setTimeout(() => {
        report();
        if (options.count !== undefined && printed >= options.count) {
          done = true;
          lifetime.end(0);
        }
        if (performance.now() - due >= intervalMs) due = performance.now();
        next();
      }, due - performance.now());
    };
    next();
  }
  lifetime.endOn();
}
