// biosnoop: one line per block I/O with the process that issued it, its
// disk, place, size and latency, as libbpf-tools' and bcc's biosnoop, on
// kernels with or without BTF tracepoints, fentry or kprobes.
import type { StructLayout } from '../common/btf.js';
import { BIO_LATENCY_METRIC, bioLatencyHelp, blockAttachPlans, configureBlockPlan, RequestFlags, UntrackedRequests } from '../common/bio.js';
import type { BpfObject } from '../common/bpfobject.js';
import { commandLine, integerOption, Lifetime, parseCommandLine } from '../common/cli.js';
import { hhmmss, wallClock } from '../common/clock.js';
import { DiskNames, resolveDisk, type BlockDevice } from '../common/disks.js';
import { invalidValue } from '../common/errors.js';
import { escapeText, losslessString, terminalSafeJson } from '../common/escape.js';
import { EventStream } from '../common/events.js';
import { type Cgroup, cgroupHeader, cgroupIdJson, cgroupModeFromArgs, CgroupNames, type CgroupMode, configureCgroupNames, printCgroupOption } from '../common/cgroups.js';
import type { Exporter } from '../common/exporter.js';
import { Counters, Histograms } from '../common/exposition.js';
import { applySelection, selectionFromArgs, selectionOptions, type SelectionOptions } from '../common/filters.js';
import { fixedLeft, fixedRight, left, right } from '../common/format.js';
import { structDecoder } from '../common/layout.js';
import { libbpfLog } from '../common/log.js';
import { Output } from '../common/output.js';
import { loadWithPlans } from '../common/plan.js';
import {
  cgroupNaming, eventToolOptions, openExporter, prometheusFromArgs, type PrometheusOptions,
} from '../common/prometheus.js';

const USAGE = `Trace block I/O

USAGE: biosnoop [-h] [-Q] [-d DISK] [-c CG] [--cgroupmap PATH] [--mntnsmap PATH] [-m MIN] [-t] [-P]
                [--print-cgroup[=container]] [--prometheus [ADDR:]PORT]
                 [--prometheus-comms N] [--prometheus-cgroups N] [-v] [--json] [duration]`;

const EXAMPLES = `    biosnoop              # trace all block I/O
    biosnoop -Q           # include OS queued time
    biosnoop -t           # use timestamps instead
    biosnoop 10           # trace for 10 seconds only
    biosnoop -d sdc       # trace sdc only
    biosnoop -c CG        # trace I/O issued by processes in cgroup v2 directory CG
    biosnoop -m 1         # trace I/O slower than 1 ms
    biosnoop -P           # display block I/O pattern (sequential or random)
    biosnoop --print-cgroup  # include the issuing process's cgroup v2 path (CGROUP)
    biosnoop --json       # one JSON object per I/O
    biosnoop --prometheus 9560  # serve latency, request and byte counts at :9560/metrics`;

/** setTimeout's limit (2^31 - 1 ms), so that the duration never ends early. */
export const MAX_DURATION_S = Math.floor(0x7fffffff / 1000);
/** -m above this would not be exact in nanoseconds as a JS number. */
export const MAX_MIN_MS = Math.floor(Number.MAX_SAFE_INTEGER / 1e6);
/** Sector of a request that has none (a flush): (sector_t)-1. */
const NO_SECTOR = (1n << 64n) - 1n;
/** queued_ns at or above this means the request's creation was not seen ((__u64)-1 in the kernel). */
const QUEUED_UNKNOWN = 2 ** 63;

export interface Options extends SelectionOptions {
  duration?: number;
  queued: boolean;
  /** the -d disk, as the kernel numbers it (dev_t) */
  dev?: number;
  minMs: number;
  timestamp: boolean;
  pattern: boolean;
  printCgroup?: CgroupMode;
  verbose: boolean;
  json: boolean;
  /** --prometheus: serve metrics instead of printing */
  prometheus?: PrometheusOptions;
}

/** A non-negative number of milliseconds (fractions allowed: SSDs answer in microseconds). */
export function millisecondsOption(option: string, value: string): number {
  const text = value.trim();
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) > MAX_MIN_MS) {
    throw invalidValue(option, value, `expected milliseconds from 0 to ${MAX_MIN_MS}`);
  }
  return Number(text);
}

/** The options; `devices` (the system's, by default) are where -d is looked up. */
export function parseOptions(argv: string[], devices?: BlockDevice[]): Options {
  const args = parseCommandLine(commandLine('biosnoop', USAGE, EXAMPLES)
    .command('$0 [duration]', false, (y) =>
      y.positional('duration', { type: 'string', description: 'total duration of trace, in seconds' }))
    .options({
      queued: { alias: ['Q', 'queue'], type: 'boolean', default: false, description: 'include OS queued time (QUE column)' },
      disk: { alias: 'd', type: 'string', requiresArg: true, description: 'trace this disk only' },
      ...selectionOptions,
      ...printCgroupOption,
      min: { alias: 'm', type: 'string', requiresArg: true, description: 'minimum latency to trace, in ms (fractions allowed)' },
      timestamp: { alias: 't', type: 'boolean', default: false, description: 'include wall-clock timestamp (TIMESTAMP column) instead of TIME(s)' },
      pattern: { alias: 'P', type: 'boolean', default: false, description: 'display block I/O pattern (sequential or random)' },
      ...eventToolOptions('I/O'),
    }), argv);
  const duration = args.duration as string | undefined;
  return {
    duration: duration === undefined ? undefined : integerOption('duration', duration, 1, MAX_DURATION_S),
    queued: args.queued,
    dev: args.disk === undefined ? undefined : resolveDisk('--disk', args.disk, devices),
    minMs: args.min === undefined ? 0 : millisecondsOption('--min', args.min),
    timestamp: args.timestamp,
    pattern: args.pattern,
    ...selectionFromArgs(args),
    printCgroup: cgroupModeFromArgs(args.printCgroup),
    verbose: args.verbose,
    json: args.json,
    prometheus: prometheusFromArgs(args, { '-t': args.timestamp, '-P': args.pattern, '--json': args.json, duration }),
  };
}

/** The kernel-side configuration. */
export function kernelConfig(options: Options): Record<string, number | bigint | boolean> {
  return { min_ns: BigInt(Math.round(options.minMs * 1e6)), filter_dev: options.dev !== undefined, targ_dev: options.dev ?? 0 };
}

export function eventDecoder(layout: StructLayout) {
  return structDecoder(layout, {
    ts_ns: 'u64', cgroup_id: 'u64', latency_ns: 'u64', queued_ns: 'u64', sector: 'u64', bytes: 'u32', pid: 'u32',
    cmd_flags: 'u32', dev: 'u32', pattern: 'u32', comm: 'chars',
  });
}

export type Pattern = 'unknown' | 'sequential' | 'random';
const PATTERNS: Pattern[] = ['unknown', 'sequential', 'random'];
const PATTERN_LETTERS: Record<Pattern, string> = { unknown: '?', sequential: 'S', random: 'R' };

export interface BioEvent {
  tsNs: number;
  /** of the issuing process; 0 when the request's creation was not seen */
  cgroupId: number;
  latencyNs: number;
  /** undefined when the request's creation was not seen */
  queuedNs?: number;
  sector: bigint;
  bytes: number;
  pid: number;
  comm: Uint8Array;
  disk: string;
  rwbs: string;
  flags: string;
  pattern: Pattern;
}

/** What the events are decoded with: disk names and the kernel's request flags. */
export interface Context {
  disks: { name(dev: number): string };
  flags: RequestFlags;
}

export function decodeEvent(
  decoder: ReturnType<typeof eventDecoder>, view: DataView, offset: number, context: Context,
): BioEvent {
  const e = decoder.decode(view, offset);
  return {
    tsNs: e.ts_ns,
    cgroupId: e.cgroup_id,
    latencyNs: e.latency_ns,
    queuedNs: e.queued_ns >= QUEUED_UNKNOWN ? undefined : e.queued_ns,
    // exact: a flush's (sector_t)-1 is beyond a double's integers
    sector: view.getBigUint64(offset + decoder.offsets.sector, true),
    bytes: e.bytes,
    pid: e.pid,
    comm: e.comm,
    disk: context.disks.name(e.dev),
    rwbs: context.flags.rwbs(e.cmd_flags),
    flags: context.flags.describe(e.cmd_flags),
    pattern: PATTERNS[e.pattern] ?? 'unknown',
  };
}

export function header(options: Options): string {
  let text = options.timestamp ? `${left('TIMESTAMP', 12)} ` : `${left('TIME(s)', 11)} `;
  text += `${left('COMM', 14)} ${left('PID', 7)} ${left('DISK', 7)} ${left('T', 4)} ${left('SECTOR', 10)} ${left('BYTES', 7)} `;
  if (options.pattern) text += `${left('P', 1)} `;
  if (options.queued) text += `${right('QUE(ms)', 7)} `;
  text += right('LAT(ms)', 7);
  // no free-text column to keep last: the cgroup goes at the end
  return options.printCgroup ? `${text} ${cgroupHeader(options.printCgroup).trimEnd()}` : text;
}

/** HH:MM:SS.mmm of a monotonic stamp, libbpf-tools' -t. */
export function timestampText(tsNs: number): string {
  const date = wallClock(tsNs);
  return `${hhmmss(date)}.${String(date.getMilliseconds()).padStart(3, '0')}`;
}

/** The SECTOR column: a request with no sector shows -1, as libbpf-tools prints (sector_t)-1 with %lld. */
export function sectorText(sector: bigint): string {
  return sector === NO_SECTOR ? '-1' : String(sector);
}

/** libbpf-tools' COMM column shows 14 bytes of the name (%-14.14s). */
const COMM_WIDTH = 14;

/** One line; `firstTsNs` is the stamp of the first event printed, TIME(s) zero; `cgroup` for --print-cgroup. */
export function renderLine(event: BioEvent, options: Options, firstTsNs: number, cgroup?: Cgroup): string {
  let text = options.timestamp
    ? `${left(timestampText(event.tsNs), 12)} `
    : `${fixedLeft((event.tsNs - firstTsNs) / 1e9, 11, 6)} `;
  text += `${left(escapeText(event.comm.subarray(0, COMM_WIDTH)), COMM_WIDTH)} ${left(event.pid, 7)} `;
  text += `${left(event.disk, 7)} ${left(event.rwbs, 4)} ${left(sectorText(event.sector), 10)} ${left(event.bytes, 7)} `;
  if (options.pattern) text += `${left(PATTERN_LETTERS[event.pattern], 1)} `;
  if (options.queued) text += `${fixedRight(event.queuedNs === undefined ? -1 : event.queuedNs / 1e6, 7, 3)} `;
  text += fixedRight(event.latencyNs / 1e6, 7, 3);
  return cgroup ? `${text} ${cgroup.column.trimEnd()}` : text;
}

/** One --json line; "cgroup" is there with --print-cgroup (its cgroup given). */
export function renderJson(event: BioEvent, firstTsNs: number, cgroup?: Cgroup): string {
  const object = terminalSafeJson({
    time: wallClock(event.tsNs).toISOString(),
    ts: Number(((event.tsNs - firstTsNs) / 1e9).toFixed(6)),
    comm: losslessString(event.comm),
    pid: event.pid,
    disk: event.disk,
    rwbs: event.rwbs,
    flags: event.flags,
    sector: event.sector === NO_SECTOR ? null : Number(event.sector),
    bytes: event.bytes,
    pattern: event.pattern,
    que_ms: event.queuedNs === undefined ? null : event.queuedNs / 1e6,
    lat_ms: event.latencyNs / 1e6,
  });
  return `${object.slice(0, -1)}${cgroup?.json ?? cgroupIdJson(event.cgroupId)}}`;
}

/**
 * The --prometheus metrics, counted from the events: the latency histogram
 * (the kernel's log2 slots, with -Q from creation), requests and bytes by
 * disk, operation and comm.
 */
function serveMetrics(exporter: Exporter, obj: BpfObject, stream: EventStream, plan: string, options: Options): void {
  const decoder = eventDecoder(obj.struct('event'));
  const disks = new DiskNames();
  const flags = RequestFlags.fromKernel();
  const latency = new Histograms();
  const requests = new Counters();
  const bytes = new Counters();
  const labelsOf = exporter.processLabels(obj);
  stream.start((view, offset) => {
    const e = decoder.decode(view, offset);
    const where = { disk: disks.name(e.dev), op: flags.operation(e.cmd_flags) };
    const queued = options.queued && e.queued_ns < QUEUED_UNKNOWN ? e.queued_ns : 0;
    latency.observe(where, e.latency_ns + queued);
    const labels = { ...where, ...labelsOf(e.comm, e.cgroup_id) };
    requests.add(labels);
    bytes.add(labels, e.bytes);
  }, () => {});
  exporter.serve(obj, plan, () => [
    { name: BIO_LATENCY_METRIC, type: 'histogram', help: bioLatencyHelp(options.queued), series: latency.series() },
    { name: 'ebpf_tools_bio_requests_total', type: 'counter', help: 'Block I/O requests completed, by disk, operation and the command name that issued them', samples: requests.samples() },
    { name: 'ebpf_tools_bio_bytes_total', type: 'counter', help: 'Bytes of the block I/O requests completed, by disk, operation and command name', samples: bytes.samples() },
  ]);
}

export async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  libbpfLog.setVerbose(options.verbose);
  const exporter = await openExporter('biosnoop', options.prometheus);

  const lifetime = new Lifetime();
  let stream: EventStream | undefined;
  const { obj, plan } = loadWithPlans('biosnoop', blockAttachPlans(true), (o, plan) => {
    o.setConfig(kernelConfig(options));
    configureBlockPlan(o, plan);
    stream = new EventStream(o);
    configureCgroupNames(o, cgroupNaming(options.printCgroup, options.prometheus));
    return applySelection(o, options);
  });
  lifetime.onEnd(() => obj.close());
  const events = stream!;
  const untracked = new UntrackedRequests(obj);
  setInterval(() => untracked.report(), 1000);
  // after the last events, before the object goes
  lifetime.onEnd(() => untracked.finalReport());
  if (exporter) {
    serveMetrics(exporter, obj, events, plan.name, options);
    lifetime.onEnd(() => events.stop(() => {}));
    lifetime.onEnd(() => untracked.settle());
    return;
  }

  const out = new Output();
  const decoder = eventDecoder(obj.struct('event'));
  if (!options.json) out.line(header(options));
  out.flush();
  // Looked up once tracing has begun (the header says so): the disks and the
  // kernel's request flags take milliseconds to read, and the events made
  // meanwhile wait in the ring buffer for the names.
  const context: Context = { disks: new DiskNames(), flags: RequestFlags.fromKernel() };
  const cgroups = options.printCgroup && new CgroupNames(obj, options.printCgroup);
  let firstTsNs: number | undefined;
  const onEvent = (view: DataView, offset: number): void => {
    const event = decodeEvent(decoder, view, offset, context);
    firstTsNs ??= event.tsNs;
    const cgroup = cgroups ? cgroups.of(event.cgroupId) : undefined;
    out.line(options.json ? renderJson(event, firstTsNs, cgroup) : renderLine(event, options, firstTsNs, cgroup));
  };
  events.start(onEvent, () => out.flush());
  lifetime.onEnd(() => {
    events.stop(onEvent);
    out.flush();
  });
  // first at the end: the requests in flight complete, and their events are read above
  lifetime.onEnd(() => untracked.settle());
  lifetime.endOn(options.duration);
}
