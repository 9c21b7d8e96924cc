// ext4slower: ext4 reads, writes, opens and fsyncs slower than a threshold,
// as bcc's ext4slower and libbpf-tools' ext4slower (fsslower -t ext4), on
// kernels with fentry, with kprobes, or with neither (syscall tracepoints).
import { existsSync } from 'node:fs';
import type { BpfObject } from '../common/bpfobject.js';
import type { StructLayout } from '../common/btf.js';
import { commandLine, integerOption, Lifetime, parseCommandLine } from '../common/cli.js';
import { hhmmss, secondsSinceStart, wallClock } from '../common/clock.js';
import { quoted, RuntimeError, UsageError } from '../common/errors.js';
import { escapeText, losslessString, terminalSafeJson } from '../common/escape.js';
import { EventStream } from '../common/events.js';
import { fixedRight, left, right } from '../common/format.js';
import { structDecoder } from '../common/layout.js';
import { libbpfLog } from '../common/log.js';
import { Output } from '../common/output.js';
import { kernelBtfHasName, kprobesAvailable, loadWithPlans, syscallTracepointsExist, type AttachPlan } from '../common/plan.js';
import { ensureTracefs } from '../common/preflight.js';

const USAGE = `Trace common ext4 file operations slower than a threshold

USAGE: ext4slower [-h] [-j] [-c] [-p PID] [-m MIN] [-d DURATION] [-v] [--json] [min_ms]`;

const EXAMPLES = `    ext4slower             # trace operations slower than 10 ms (default)
    ext4slower 1           # trace operations slower than 1 ms
    ext4slower -j 1        # ... 1 ms, parsable output (csv, as bcc)
    ext4slower -c -d 1 0   # all operations for 1 s, csv output as libbpf-tools
    ext4slower 0           # trace all operations (warning: verbose)
    ext4slower -p 185      # trace PID 185 only
    ext4slower --json 1    # one JSON object per operation slower than 1 ms`;

export const DEFAULT_MIN_MS = 10;
/** Thresholds above this would not be exact in nanoseconds as a JS number. */
export const MAX_MIN_MS = Math.floor(Number.MAX_SAFE_INTEGER / 1e6);
/** setTimeout's limit (2^31 - 1 ms), so that -d never fires early. */
export const MAX_DURATION_S = Math.floor(0x7fffffff / 1000);
/** Entries of the kernel's table of calls in flight (MAX_CALLS in ext4slower.bpf.c). */
const MAX_CALLS = 16384;

/** table: columns as the C tools; csv: libbpf-tools' -c; bcc-csv: bcc's -j; json: NDJSON. */
export type OutputFormat = 'table' | 'csv' | 'bcc-csv' | 'json';

export interface Options {
  minMs: number;
  pid?: number;
  duration?: number;
  format: OutputFormat;
  verbose: boolean;
}

export function parseOptions(argv: string[]): Options {
  const args = parseCommandLine(commandLine('ext4slower', USAGE, EXAMPLES)
    .command('$0 [min_ms]', false, (y) =>
      y.positional('min_ms', { type: 'string', description: `minimum I/O duration to trace, in ms (default ${DEFAULT_MIN_MS}; 0 traces all)` }))
    .options({
      j: { type: 'boolean', default: false, description: 'just print fields: comma-separated values, as bcc (ENDTIME_us)' },
      csv: { alias: 'c', type: 'boolean', default: false, description: 'print comma-separated values, as libbpf-tools (ENDTIME_ns)' },
      pid: { alias: 'p', type: 'string', requiresArg: true, description: 'trace this PID only' },
      min: { alias: 'm', type: 'string', requiresArg: true, description: 'minimum I/O duration to trace, in ms (as libbpf-tools; same as min_ms)' },
      duration: { alias: 'd', type: 'string', requiresArg: true, description: 'total duration of trace, in seconds' },
      verbose: { alias: 'v', type: 'boolean', default: false, description: 'verbose debug output (libbpf log, attach mode chosen)' },
      json: { type: 'boolean', default: false, description: 'print one JSON object per operation (NDJSON)' },
    }), argv);
  const positional = args.min_ms as string | undefined;
  if (positional !== undefined && args.min !== undefined) {
    throw new UsageError(`give the threshold once: min_ms ${quoted(positional)} or --min ${quoted(args.min)}`);
  }
  const formats = [args.j && '-j', args.csv && '--csv', args.json && '--json'].filter(Boolean);
  if (formats.length > 1) throw new UsageError(`${formats.join(' and ')} cannot be used together`);
  const threshold = positional ?? args.min;
  return {
    minMs: threshold === undefined ? DEFAULT_MIN_MS
      : integerOption(positional !== undefined ? 'min_ms' : '--min', threshold, 0, MAX_MIN_MS),
    pid: args.pid === undefined ? undefined : integerOption('--pid', args.pid, 1, 0x7fffffff),
    duration: args.duration === undefined ? undefined : integerOption('--duration', args.duration, 1, MAX_DURATION_S),
    format: args.json ? 'json' : args.csv ? 'csv' : args.j ? 'bcc-csv' : 'table',
    verbose: args.verbose,
  };
}

/** The kernel-side configuration an Options asks for; the tool's own operations are never reported. */
export function kernelConfig(options: Options, selfPid = process.pid): Record<string, bigint | number> {
  return { min_lat_ns: BigInt(options.minMs) * 1_000_000n, targ_tgid: options.pid ?? 0, self_tgid: selfPid };
}

export const EXT4_FUNCTIONS = ['ext4_file_read_iter', 'ext4_file_write_iter', 'ext4_file_open', 'ext4_sync_file'];
const FUNCTION_OPS = ['read', 'write', 'open', 'fsync'];
export const FENTRY_PROGRAMS = FUNCTION_OPS.flatMap((op) => [`ext4_fentry_${op}`, `ext4_fexit_${op}`]);
export const KPROBE_PROGRAMS = FUNCTION_OPS.flatMap((op) => [`ext4_kprobe_${op}`, `ext4_kretprobe_${op}`]);
/** raw_syscalls' sys_enter and sys_exit (tp_btf): the syscalls below by their x86-64 numbers. */
export const RAW_SYSCALL_PROGRAMS = ['ext4_sys_enter', 'ext4_sys_exit'];
/** The syscalls that reach ext4's read, write, open and fsync operations. */
export const SYSCALLS = [
  'read', 'readv', 'pread64', 'preadv', 'preadv2',
  'write', 'writev', 'pwrite64', 'pwritev', 'pwritev2',
  'open', 'creat', 'openat', 'openat2', 'open_by_handle_at',
  'fsync', 'fdatasync',
];

/**
 * The syscall tracepoint plan. Which syscalls have tracepoints depends on the
 * architecture (arm64 has no open or creat), so its programs are those of the
 * syscalls found in tracefs when the plan is tried; the others are not loaded.
 */
function syscallPlan(): AttachPlan {
  let programs: string[] = [];
  return {
    name: 'syscall tracepoints',
    get programs() {
      return programs;
    },
    unavailable: () => {
      try {
        libbpfLog.note(ensureTracefs());
      } catch (err) {
        if (err instanceof RuntimeError) return err.message;
        throw err;
      }
      const present = SYSCALLS.filter(syscallTracepointsExist);
      const absent = SYSCALLS.filter((s) => !present.includes(s));
      if (absent.length) libbpfLog.note(`ext4slower: no tracepoints for ${absent.join(', ')} here: not traced`);
      if (present.length === 0) return 'no syscall tracepoints (kernel built without CONFIG_FTRACE_SYSCALLS)';
      programs = present.flatMap((s) => [`ext4_enter_${s}`, `ext4_exit_${s}`]);
      return null;
    },
  };
}

/**
 * fentry, then kprobes, then the syscalls: the first the kernel accepts. The
 * syscalls are seen by two BTF raw tracepoints (tp_btf) on x86-64, elsewhere
 * by two syscall tracepoints per syscall, whose detaching costs an RCU grace
 * period each (about 2 s at exit on 6.x for the 34 of them, against
 * milliseconds).
 */
export function attachPlans(): AttachPlan[] {
  return [
    {
      name: 'fentry',
      programs: FENTRY_PROGRAMS,
      unavailable: () => {
        // ext4 built as a module has its functions in its own BTF
        if (existsSync('/sys/kernel/btf/ext4')) return null;
        const missing = EXT4_FUNCTIONS.filter((f) => !kernelBtfHasName(f));
        return missing.length ? `kernel BTF has no ${missing.join(', ')}` : null;
      },
    },
    {
      name: 'kprobe',
      programs: KPROBE_PROGRAMS,
      unavailable: () => (kprobesAvailable() ? null : 'kprobes are not available (kernel built without CONFIG_KPROBES)'),
    },
    {
      name: 'raw syscall tracepoints',
      programs: RAW_SYSCALL_PROGRAMS,
      unavailable: () => {
        if (process.arch !== 'x64') return `syscall numbers and registers of ${process.arch} not known (x86-64 only)`;
        return kernelBtfHasName('btf_trace_sys_enter') ? null : 'no BTF-enabled syscall tracepoints (kernel before 5.5)';
      },
    },
    syscallPlan(),
  ];
}

export const OP_LETTERS = ['R', 'W', 'O', 'S'];
const LLONG_MAX = 0x7fffffffffffffffn;

export interface SlowOperation {
  /** bpf_ktime_get_ns() at the end, exact */
  endNs: bigint;
  latencyNs: number;
  /** offset in bytes at the start */
  offset: number;
  /** bytes read or written (negative: an error), the range of an fsync, 0 for an open */
  bytes: number;
  /** an fsync of the whole file (range to LLONG_MAX, printed LL_MAX as upstream) */
  wholeFile: boolean;
  pid: number;
  /** R, W, O or S */
  type: string;
  comm: Uint8Array;
  file: Uint8Array;
}

export function eventDecoder(layout: StructLayout) {
  return structDecoder(layout, {
    end_ns: 'u64', delta_ns: 'u64', offset: 's64', size: 's64', pid: 'u32', op: 'u32', comm: 'chars', file: 'chars',
  });
}

export function decodeEvent(decoder: ReturnType<typeof eventDecoder>, view: DataView, offset: number): SlowOperation {
  const e = decoder.decode(view, offset);
  // 64-bit values a JS number would round: the end stamp (printed in full in
  // CSV) and the fsync range, whose LLONG_MAX must be told exactly.
  const endNs = view.getBigUint64(offset + decoder.offsets.end_ns, true);
  const size = view.getBigInt64(offset + decoder.offsets.size, true);
  return {
    endNs,
    latencyNs: e.delta_ns,
    offset: e.offset,
    bytes: e.size,
    wholeFile: size === LLONG_MAX,
    pid: e.pid,
    type: OP_LETTERS[e.op] ?? '?',
    comm: e.comm,
    file: e.file,
  };
}

const CSV_FIELDS = 'TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE';

/** The lines printed once attached. */
export function header(options: Options): string[] {
  if (options.format === 'json') return [];
  if (options.format === 'csv') return [`ENDTIME_ns,${CSV_FIELDS}`];
  if (options.format === 'bcc-csv') return [`ENDTIME_us,${CSV_FIELDS}`];
  const what = options.minMs ? `Tracing ext4 operations slower than ${options.minMs} ms` : 'Tracing ext4 operations';
  const how = options.duration ? ` for ${options.duration} secs.` : '... Hit Ctrl-C to end.';
  return [
    `${what}${how}`,
    `${left('TIME', 8)} ${left('COMM', 16)} ${left('PID', 7)} ${right('T', 1)} ${left('BYTES', 7)} ${left('OFF_KB', 8)} ${right('LAT(ms)', 7)} FILENAME`,
  ];
}

const bytesText = (op: SlowOperation): string => (op.wholeFile ? 'LL_MAX' : String(op.bytes));
/** Whole microseconds, as upstream's delta_us. */
const latencyUs = (op: SlowOperation): number => Math.floor(op.latencyNs / 1000);

export function renderLine(op: SlowOperation): string {
  const when = hhmmss(wallClock(Number(op.endNs)));
  return `${left(when, 8)} ${left(escapeText(op.comm), 16)} ${left(op.pid, 7)} ${op.type} ${left(bytesText(op), 7)} ` +
    `${left(Math.trunc(op.offset / 1024), 8)} ${fixedRight(latencyUs(op) / 1000, 7, 2)} ${escapeText(op.file)}`;
}

/** A CSV field: escaped for the terminal, and quoted (RFC 4180) when it holds a comma or a quote. */
export function csvField(bytes: Uint8Array): string {
  const text = escapeText(bytes);
  return /[",]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function renderCsv(op: SlowOperation, format: 'csv' | 'bcc-csv'): string {
  const end = format === 'csv' ? op.endNs : op.endNs / 1000n;
  return `${end},${csvField(op.comm)},${op.pid},${op.type},${bytesText(op)},${op.offset},${latencyUs(op)},${csvField(op.file)}`;
}

export function renderJson(op: SlowOperation): string {
  return terminalSafeJson({
    time: wallClock(Number(op.endNs)).toISOString(),
    ts: Number(secondsSinceStart(Number(op.endNs)).toFixed(6)),
    comm: losslessString(op.comm),
    pid: op.pid,
    type: op.type,
    bytes: op.wholeFile ? null : op.bytes,
    offset: op.offset,
    latency_ms: op.latencyNs / 1e6,
    file: losslessString(op.file),
  });
}

export function render(op: SlowOperation, format: OutputFormat): string {
  switch (format) {
    case 'table': return renderLine(op);
    case 'json': return renderJson(op);
    default: return renderCsv(op, format);
  }
}

/**
 * Reports on stderr the calls the kernel side could not time because its
 * table of calls in flight was full; returns the check to run periodically.
 */
function untimedCallsReporter(obj: BpfObject): () => void {
  const counter = obj.btf.datasec('.bss').get('untimed_calls');
  if (!counter) throw new Error('ext4slower.bpf.o has no untimed_calls counter');
  const bss = obj.sectionView('.bss');
  let reported = 0;
  return () => {
    const count = Number(bss.getBigUint64(counter.offset, true));
    if (count === reported) return;
    process.stderr.write(
      `ext4slower: ${count - reported} operations not timed: more than ${MAX_CALLS} in flight (${count} in all)\n`,
    );
    reported = count;
  };
}

export function main(argv: string[]): void {
  const options = parseOptions(argv);
  libbpfLog.setVerbose(options.verbose);
  const lifetime = new Lifetime();
  let stream: EventStream | undefined;
  const { obj } = loadWithPlans('ext4slower', attachPlans(), (candidate) => {
    candidate.setConfig(kernelConfig(options));
    stream = new EventStream(candidate);
  });
  const events = stream!;
  lifetime.onEnd(() => obj.close());

  const out = new Output();
  const decoder = eventDecoder(obj.struct('event'));
  const onEvent = (view: DataView, offset: number): void => {
    out.line(render(decodeEvent(decoder, view, offset), options.format));
  };
  for (const line of header(options)) out.line(line);
  out.flush();
  events.start(onEvent, () => out.flush());
  const reportUntimed = untimedCallsReporter(obj);
  const timer = setInterval(reportUntimed, 1000);
  lifetime.onEnd(() => {
    clearInterval(timer);
    events.stop(onEvent);
    out.flush();
    reportUntimed();
  });
  lifetime.endOn(options.duration);
}
