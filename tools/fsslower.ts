// fsslower: reads, writes, opens and fsyncs slower than a threshold on one
// file system (btrfs, ext4, fuse, nfs, xfs), as libbpf-tools' fsslower, chosen by
// -t or by the name it runs under (ext4slower, xfsslower, btrfsslower,
// nfsslower: bcc's scripts of those names), on kernels with fentry, with
// kprobes, or with neither (syscall tracepoints filtered on the file system).
import { existsSync, readFileSync } from 'node:fs';
import type { BpfObject } from '../common/bpfobject.js';
import type { StructLayout } from '../common/btf.js';
import { type Cgroup, cgroupColumnName, cgroupHeader, cgroupIdJson, cgroupModeFromArgs, CgroupNames, type CgroupMode, configureCgroupNames, printCgroupOption } from '../common/cgroups.js';
import { commandLine, integerOption, Lifetime, parseCommandLine } from '../common/cli.js';
import { hhmmss, secondsSinceStart, wallClock } from '../common/clock.js';
import { quoted, RuntimeError, UsageError } from '../common/errors.js';
import { escapeText, losslessString, terminalSafeJson } from '../common/escape.js';
import { EventStream } from '../common/events.js';
import type { Exporter } from '../common/exporter.js';
import { Counters, microsecondHistogram } from '../common/exposition.js';
import { applySelection, cgroupOption, selectionFromArgs } from '../common/filters.js';
import { fixedRight, left, right } from '../common/format.js';
import { structDecoder } from '../common/layout.js';
import { libbpfLog } from '../common/log.js';
import { readArrayElement } from '../common/maps.js';
import { Output } from '../common/output.js';
import { kernelBtfHasName } from '../common/kernelbtf.js';
import { kernelHasFunction, kprobesAvailable, loadWithPlans, syscallTracepointsExist, type AttachPlan } from '../common/plan.js';
import { ensureTracefs } from '../common/preflight.js';
import {
  cgroupNaming, eventToolOptions, openExporter, prometheusFromArgs, type PrometheusOptions,
} from '../common/prometheus.js';

/** What each file system is traced by: its file operations (those libbpf-tools' fsslower traces) and superblock. */
export interface FileSystem {
  /** -t's value, the s_type name and the name of its module's BTF (/sys/kernel/btf/<name>) */
  name: string;
  /** read_iter, write_iter, open and fsync, in the order of FILE_OPS */
  functions: [string, string, string, string];
  /** the superblock magic (include/uapi/linux/magic.h), for the syscall programs' filter */
  magic: number;
  /** the s_type name a superblock must also have, where the magic is shared (ext2 and ext3 have ext4's) */
  typeName?: string;
}

export const FILE_SYSTEMS: Record<string, FileSystem> = {
  btrfs: { name: 'btrfs', functions: ['btrfs_file_read_iter', 'btrfs_file_write_iter', 'btrfs_file_open', 'btrfs_sync_file'], magic: 0x9123683e },
  ext4: { name: 'ext4', functions: ['ext4_file_read_iter', 'ext4_file_write_iter', 'ext4_file_open', 'ext4_sync_file'], magic: 0xef53, typeName: 'ext4' },
  // fuse and fuseblk (a FUSE daemon on a block device) superblocks share FUSE_SUPER_MAGIC and the file operations
  fuse: { name: 'fuse', functions: ['fuse_file_read_iter', 'fuse_file_write_iter', 'fuse_open', 'fuse_fsync'], magic: 0x65735546 },
  // nfs and nfs4 superblocks share NFS_SUPER_MAGIC and the same file operations
  nfs: { name: 'nfs', functions: ['nfs_file_read', 'nfs_file_write', 'nfs_file_open', 'nfs_file_fsync'], magic: 0x6969 },
  xfs: { name: 'xfs', functions: ['xfs_file_read_iter', 'xfs_file_write_iter', 'xfs_file_open', 'xfs_file_fsync'], magic: 0x58465342 },
};
const FS_NAMES = Object.keys(FILE_SYSTEMS);

/**
 * The file systems libbpf-tools' fsslower takes that this one refuses, and
 * why: each would be a line of FILE_SYSTEMS and an object of its own
 * (bpf/fsslower-<fs>.bpf.c), but none can be mounted on this project's
 * test machine, and a file system traced without a test of it is not
 * offered.
 */
export const REFUSED_FILE_SYSTEMS: Record<string, string> = {
  f2fs: "the kernel of this project's test machine has no f2fs (not built in, no module)",
  bcachefs: 'bcachefs left the mainline kernel in 6.18 (an out-of-tree module since)',
  zfs: 'OpenZFS is an out-of-tree module, in none of the kernels the tools are tested on',
};

/** The file system a command traces without -t (fsslower itself has none). */
export function commandFileSystem(command: string): string | undefined {
  const m = /^(.+)slower$/.exec(command);
  return m && m[1] in FILE_SYSTEMS ? m[1] : undefined;
}

function usage(command: string): string {
  const fs = commandFileSystem(command);
  return `${fs ? `Trace common ${fs} file operations slower than a threshold` : 'Trace file system operations slower than a threshold'}

USAGE: ${command} [-h] [-j] [-c] ${fs ? '[-t FS] ' : '-t FS '}[-p PID] [-m MIN] [-d DURATION] [--cgroup CG]
       [--print-cgroup[=container]] [--prometheus [ADDR:]PORT] [--prometheus-comms N]
       [--prometheus-cgroups N] [-v] [--json] [min_ms]`;
}

function examples(command: string): string {
  const lines: [string, string][] = commandFileSystem(command)
    ? [
      ['', 'trace operations slower than 10 ms (default)'],
      ['1', 'trace operations slower than 1 ms'],
      ['-j 1', '... 1 ms, parsable output (csv, as bcc)'],
      ['-c -d 1 0', 'all operations for 1 s, csv output as libbpf-tools'],
      ['0', 'trace all operations (warning: verbose)'],
      ['-p 185', 'trace PID 185 only'],
      ['--cgroup CG', 'trace processes in cgroup v2 directory CG only'],
      ['--print-cgroup', 'include the cgroup v2 path (CGROUP)'],
      ['--print-cgroup=container', 'include the container id (CONTAINER)'],
      ['--json 1', 'one JSON object per operation slower than 1 ms'],
      ['--prometheus 9560', 'serve latency histograms and slow counts at :9560/metrics'],
    ]
    : [
      ['-t ext4', 'trace ext4 operations slower than 10 ms (default)'],
      ['-t nfs -p 1216', 'trace nfs operations of PID 1216 only'],
      ['-t ext4 --print-cgroup', 'include the cgroup v2 path (CGROUP)'],
      ['-t xfs -c -d 1', 'trace xfs operations for 1 s, csv output'],
      ['-t btrfs 0', 'trace all btrfs operations (warning: verbose)'],
      ['-t ext4 --json 1', 'one JSON object per ext4 operation slower than 1 ms'],
      ['-t xfs --prometheus 9560', 'serve xfs latency histograms and slow counts at :9560/metrics'],
    ];
  const typed = lines.map(([args]) => `${command} ${args}`.trim());
  const width = Math.max(...typed.map((l) => l.length)) + 2;
  return typed.map((l, i) => `    ${l.padEnd(width)}# ${lines[i][1]}`).join('\n');
}

export const DEFAULT_MIN_MS = 10;
/** Thresholds above this would not be exact in nanoseconds as a JS number. */
export const MAX_MIN_MS = Math.floor(Number.MAX_SAFE_INTEGER / 1e6);
/** setTimeout's limit (2^31 - 1 ms), so that -d never fires early. */
export const MAX_DURATION_S = Math.floor(0x7fffffff / 1000);
/** Entries of the kernel's table of calls in flight (MAX_CALLS in fsslower.bpf.h). */
const MAX_CALLS = 16384;

/** table: columns as the C tools; csv: libbpf-tools' -c; bcc-csv: bcc's -j; json: NDJSON. */
export type OutputFormat = 'table' | 'csv' | 'bcc-csv' | 'json';

export interface Options {
  /** the command run (ext4slower...), which names its messages */
  command: string;
  fs: FileSystem;
  minMs: number;
  pid?: number;
  /** --cgroup: the cgroup v2 directory (checked by selectionFromArgs) */
  cgroup?: string;
  duration?: number;
  format: OutputFormat;
  printCgroup?: CgroupMode;
  /** --prometheus: serve metrics instead of printing */
  prometheus?: PrometheusOptions;
  verbose: boolean;
}

export function parseOptions(argv: string[], command = 'fsslower'): Options {
  const args = parseCommandLine(commandLine(command, usage(command), examples(command))
    .command('$0 [min_ms]', false, (y) =>
      y.positional('min_ms', { type: 'string', description: `minimum I/O duration to trace, in ms (default ${DEFAULT_MIN_MS}; 0 traces all)` }))
    .options({
      j: { type: 'boolean', default: false, description: 'just print fields: comma-separated values, as bcc (ENDTIME_us)' },
      csv: { alias: 'c', type: 'boolean', default: false, description: 'print comma-separated values, as libbpf-tools (ENDTIME_ns)' },
      type: { alias: 't', type: 'string', requiresArg: true, description: `which file system to trace: ${FS_NAMES.join(', ')}${commandFileSystem(command) ? ` (default ${commandFileSystem(command)})` : ''}` },
      pid: { alias: 'p', type: 'string', requiresArg: true, description: 'trace this PID only' },
      min: { alias: 'm', type: 'string', requiresArg: true, description: 'minimum I/O duration to trace, in ms (as libbpf-tools; same as min_ms)' },
      duration: { alias: 'd', type: 'string', requiresArg: true, description: 'total duration of trace, in seconds' },
      ...cgroupOption,
      ...printCgroupOption,
      ...eventToolOptions('operation'),
    }), argv);
  const positional = args.min_ms as string | undefined;
  if (positional !== undefined && args.min !== undefined) {
    throw new UsageError(`give the threshold once: min_ms ${quoted(positional)} or --min ${quoted(args.min)}`);
  }
  const formats = [args.j && '-j', args.csv && '--csv', args.json && '--json'].filter(Boolean);
  if (formats.length > 1) throw new UsageError(`${formats.join(' and ')} cannot be used together`);
  const threshold = positional ?? args.min;
  const fsName = args.type ?? commandFileSystem(command);
  if (fsName === undefined) throw new UsageError(`give the file system to trace: -t ${FS_NAMES.join(', -t ')}`);
  if (fsName in REFUSED_FILE_SYSTEMS) throw new UsageError(`-t ${fsName}: refused as untested (libbpf-tools' fsslower takes it): ${REFUSED_FILE_SYSTEMS[fsName]}`);
  if (!(fsName in FILE_SYSTEMS)) throw new UsageError(`-t ${quoted(fsName)}: not a file system fsslower traces (${FS_NAMES.join(', ')})`);
  return {
    command,
    fs: FILE_SYSTEMS[fsName],
    minMs: threshold === undefined ? DEFAULT_MIN_MS
      : integerOption(positional !== undefined ? 'min_ms' : '--min', threshold, 0, MAX_MIN_MS),
    pid: args.pid === undefined ? undefined : integerOption('--pid', args.pid, 1, 0x7fffffff),
    duration: args.duration === undefined ? undefined : integerOption('--duration', args.duration, 1, MAX_DURATION_S),
    format: args.json ? 'json' : args.csv ? 'csv' : args.j ? 'bcc-csv' : 'table',
    printCgroup: cgroupModeFromArgs(args.printCgroup),
    prometheus: prometheusFromArgs(args, { '-j': args.j, '-c': args.csv, '-d': args.duration, '--json': args.json }),
    verbose: args.verbose,
    // last: a directory looked up on this machine, after every other mistake is found
    cgroup: selectionFromArgs({ cgroup: args.cgroup }).cgroup,
  };
}

/** The kernel-side configuration an Options asks for; the tool's own operations are never reported. */
export function kernelConfig(options: Options, selfPid = process.pid): Record<string, bigint | number | boolean | Uint8Array> {
  return {
    min_lat_ns: BigInt(options.minMs) * 1_000_000n,
    targ_tgid: options.pid ?? 0,
    self_tgid: selfPid,
    targ_histograms: options.prometheus !== undefined,
    fs_magic: options.fs.magic,
    fs_type_name: new TextEncoder().encode(options.fs.typeName ?? ''),
  };
}

const FILE_OPS = ['read', 'write', 'open', 'fsync'];
/**
 * The object of a file system's fentry and kprobe programs
 * (bpf/fsslower-<fs>.bpf.c); the syscall programs are fsslower's own.
 */
export function fileOperationsObject(fs: FileSystem): string {
  return `fsslower-${fs.name}`;
}

/** The fentry/fexit programs of a file system (fsslower.bpf.h's FILE_OPERATIONS). */
export const fentryPrograms = (fs: FileSystem): string[] => FILE_OPS.flatMap((op) => [`${fs.name}_fentry_${op}`, `${fs.name}_fexit_${op}`]);
export const kprobePrograms = (fs: FileSystem): string[] => FILE_OPS.flatMap((op) => [`${fs.name}_kprobe_${op}`, `${fs.name}_kretprobe_${op}`]);
/** raw_syscalls' sys_enter and sys_exit (raw_tp): the syscalls below by their x86-64 numbers. */
export const RAW_SYSCALL_PROGRAMS = ['fs_sys_enter', 'fs_sys_exit'];
/** The syscalls that reach a file system's read, write, open and fsync operations. */
export const SYSCALLS = [
  'read', 'readv', 'pread64', 'preadv', 'preadv2',
  'write', 'writev', 'pwrite64', 'pwritev', 'pwritev2',
  'open', 'creat', 'openat', 'openat2', 'open_by_handle_at',
  'fsync', 'fdatasync',
];

/** What the two syscall plans miss, against fentry and kprobes. */
const SYSCALL_PLAN_LIMITS = 'times whole system calls, and misses file I/O that goes around them: io_uring, io_submit, sendfile, splice';

/**
 * The syscall tracepoint plan. Which syscalls have tracepoints depends on the
 * architecture (arm64 has no open or creat), so its programs are those of the
 * syscalls found in tracefs when the plan is tried; the others are not loaded.
 */
function syscallPlan(options: Options): AttachPlan {
  let programs: string[] = [];
  return {
    name: 'syscall tracepoints',
    limits: SYSCALL_PLAN_LIMITS,
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
      if (absent.length) libbpfLog.note(`${options.command}: no tracepoints for ${absent.join(', ')} here: not traced`);
      if (present.length === 0) return 'no syscall tracepoints (kernel built without CONFIG_FTRACE_SYSCALLS)';
      programs = present.flatMap((s) => [`fs_enter_${s}`, `fs_exit_${s}`]);
      return null;
    },
  };
}

/**
 * fentry, then kprobes, then the syscalls: the first the kernel accepts. The
 * syscalls are seen by two raw tracepoints (raw_tp) on x86-64, elsewhere
 * by two syscall tracepoints per syscall, whose detaching costs an RCU grace
 * period each (about 2 s at exit on 6.x for the 34 of them, against
 * milliseconds).
 */
export function attachPlans(options: Options): AttachPlan[] {
  const { fs } = options;
  // a file system built as a module has its functions in the module's BTF, once loaded
  const inModule = existsSync(`/sys/kernel/btf/${fs.name}`);
  return [
    {
      name: 'fentry',
      programs: fentryPrograms(fs),
      object: fileOperationsObject(fs),
      btfModule: inModule ? fs.name : undefined,
      unavailable: () => {
        if (inModule) return null;
        const missing = fs.functions.filter((f) => !kernelBtfHasName(f));
        return missing.length ? `kernel BTF has no ${missing.join(', ')}${notInKernel(fs)}` : null;
      },
    },
    {
      name: 'kprobe',
      programs: kprobePrograms(fs),
      object: fileOperationsObject(fs),
      unavailable: () => {
        if (!kprobesAvailable()) return 'kprobes are not available (kernel built without CONFIG_KPROBES)';
        const missing = fs.functions.filter((f) => !kernelHasFunction(f));
        return missing.length ? `the kernel has no function ${missing.join(', ')}${notInKernel(fs)}` : null;
      },
    },
    {
      name: 'raw syscall tracepoints',
      programs: RAW_SYSCALL_PROGRAMS,
      limits: SYSCALL_PLAN_LIMITS,
      unavailable: () => (process.arch === 'x64' ? null : `syscall numbers and registers of ${process.arch} not known (x86-64 only)`),
    },
    syscallPlan(options),
  ];
}

/** Whether the kernel has the file system now (built in, or its module loaded): /proc/filesystems. */
export function fileSystemRegistered(fs: FileSystem): boolean {
  return readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.split('\t')[1] === fs.name);
}

const notInKernel = (fs: FileSystem): string =>
  (fileSystemRegistered(fs) ? '' : ` (${fs.name} is not in this kernel: not built in, and no module loaded)`);

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
  /** cgroup v2 id of the process */
  cgroupId: number;
  pid: number;
  /** R, W, O or S */
  type: string;
  comm: Uint8Array;
  file: Uint8Array;
}

export function eventDecoder(layout: StructLayout) {
  return structDecoder(layout, {
    end_ns: 'u64', delta_ns: 'u64', offset: 's64', size: 's64', cgroup_id: 'u64', pid: 'u32', op: 'u32', comm: 'chars', file: 'chars',
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
    cgroupId: e.cgroup_id,
    pid: e.pid,
    type: OP_LETTERS[e.op] ?? '?',
    comm: e.comm,
    file: e.file,
  };
}

/** The CSV fields after ENDTIME; --print-cgroup's goes before FILE, as its column before FILENAME. */
const csvFields = (options: Options): string =>
  `TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,${options.printCgroup ? `${cgroupColumnName(options.printCgroup)},` : ''}FILE`;

/** The lines printed once attached. */
export function header(options: Options): string[] {
  const fs = options.fs.name;
  if (options.format === 'json') return [];
  if (options.format === 'csv') return [`ENDTIME_ns,${csvFields(options)}`];
  if (options.format === 'bcc-csv') return [`ENDTIME_us,${csvFields(options)}`];
  const what = options.minMs ? `Tracing ${fs} operations slower than ${options.minMs} ms` : `Tracing ${fs} operations`;
  const how = options.duration ? ` for ${options.duration} secs.` : '... Hit Ctrl-C to end.';
  return [
    `${what}${how}`,
    `${left('TIME', 8)} ${left('COMM', 16)} ${left('PID', 7)} ${right('T', 1)} ${left('BYTES', 7)} ${left('OFF_KB', 8)} ${right('LAT(ms)', 7)} ` +
    `${options.printCgroup ? cgroupHeader(options.printCgroup) : ''}FILENAME`,
  ];
}

const bytesText = (op: SlowOperation): string => (op.wholeFile ? 'LL_MAX' : String(op.bytes));
/** Whole microseconds, as upstream's delta_us. */
const latencyUs = (op: SlowOperation): number => Math.floor(op.latencyNs / 1000);

/** One line; `cgroup` (the operation's) for --print-cgroup. */
export function renderLine(op: SlowOperation, cgroup?: Cgroup): string {
  const when = hhmmss(wallClock(Number(op.endNs)));
  return `${left(when, 8)} ${left(escapeText(op.comm), 16)} ${left(op.pid, 7)} ${op.type} ${left(bytesText(op), 7)} ` +
    `${left(Math.trunc(op.offset / 1024), 8)} ${fixedRight(latencyUs(op) / 1000, 7, 2)} ${cgroup?.column ?? ''}${escapeText(op.file)}`;
}

/** Text already escaped for the terminal as a CSV field: quoted (RFC 4180) when it holds a comma or a quote. */
const csvQuoted = (text: string): string => (/[",]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);

/** A CSV field: escaped for the terminal, and quoted (RFC 4180) when it holds a comma or a quote. */
export function csvField(bytes: Uint8Array): string {
  return csvQuoted(escapeText(bytes));
}

/** One CSV line; `cgroup` (the operation's) for --print-cgroup, its field before FILE. */
export function renderCsv(op: SlowOperation, format: 'csv' | 'bcc-csv', cgroup?: Cgroup): string {
  const end = format === 'csv' ? op.endNs : op.endNs / 1000n;
  return `${end},${csvField(op.comm)},${op.pid},${op.type},${bytesText(op)},${op.offset},${latencyUs(op)},` +
    `${cgroup ? `${csvQuoted(cgroup.text)},` : ''}${csvField(op.file)}`;
}

/** One --json line: cgroup_id always, "cgroup" with --print-cgroup (its cgroup given). */
export function renderJson(op: SlowOperation, cgroup?: Cgroup): string {
  const object = terminalSafeJson({
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
  return `${object.slice(0, -1)}${cgroup?.json ?? cgroupIdJson(op.cgroupId)}}`;
}

export function render(op: SlowOperation, format: OutputFormat, cgroup?: Cgroup): string {
  switch (format) {
    case 'table': return renderLine(op, cgroup);
    case 'json': return renderJson(op, cgroup);
    default: return renderCsv(op, format, cgroup);
  }
}

/**
 * Reports on stderr the calls the kernel side could not time because its
 * table of calls in flight was full; returns the check to run periodically.
 */
function untimedCallsReporter(obj: BpfObject, command: string): () => void {
  const counter = obj.btf.datasec('.bss').get('untimed_calls');
  if (!counter) throw new Error(`${obj.tool}.bpf.o has no untimed_calls counter`);
  const bss = obj.sectionView('.bss');
  let reported = 0;
  return () => {
    const count = Number(bss.getBigUint64(counter.offset, true));
    if (count === reported) return;
    process.stderr.write(
      `${command}: ${count - reported} operations not timed: more than ${MAX_CALLS} in flight (${count} in all)\n`,
    );
    reported = count;
  };
}

/** Operation label values, by enum file_op. */
const OP_LABELS = ['read', 'write', 'open', 'fsync'];

/**
 * The --prometheus metrics: every operation's latency from the kernel's
 * histograms (read at each scrape), and the operations over the threshold
 * by comm, counted from their events.
 */
function serveMetrics(exporter: Exporter, obj: BpfObject, stream: EventStream, plan: string, options: Options): void {
  const layout = obj.struct('op_hist');
  const slotsField = layout.fields.get('slots');
  const totalField = layout.fields.get('total_ns');
  if (slotsField?.type.kind !== 'array' || slotsField.type.element.size !== 8 || !totalField) {
    throw new Error('struct op_hist is not slots of 64-bit counters and total_ns');
  }
  const slotCount = slotsField.type.length;
  const fd = obj.mapFd('op_hists');
  const decoder = eventDecoder(obj.struct('event'));
  const slow = new Counters();
  const labelsOf = exporter.processLabels(obj);
  stream.start((view, offset) => {
    const op = decodeEvent(decoder, view, offset);
    slow.add({ op: OP_LABELS[OP_LETTERS.indexOf(op.type)] ?? 'unknown', ...labelsOf(op.comm, op.cgroupId) });
  }, () => {});
  exporter.serve(obj, plan, () => [
    {
      name: `ebpf_tools_${options.fs.name}_operation_latency_seconds`, type: 'histogram',
      help: `Latency of every ${options.fs.name} read, write, open and fsync, counted in the kernel`,
      series: OP_LABELS.map((op, index) => {
        const value = readArrayElement(fd, index, layout.size);
        const slots = Array.from({ length: slotCount }, (_, i) => Number(value.readBigUInt64LE(slotsField.offset + 8 * i)));
        return microsecondHistogram({ op }, slots, Number(value.readBigUInt64LE(totalField.offset)));
      }),
    },
    {
      name: `ebpf_tools_${options.fs.name}_slow_operations_total`, type: 'counter',
      help: `${options.fs.name} operations slower than the threshold (${options.minMs} ms), by operation and command name`,
      samples: slow.samples(),
    },
  ]);
}

export async function main(argv: string[], command = 'fsslower'): Promise<void> {
  const options = parseOptions(argv, command);
  libbpfLog.setVerbose(options.verbose);
  const exporter = await openExporter(command, options.prometheus);
  const lifetime = new Lifetime();
  let stream: EventStream | undefined;
  const { obj, plan } = loadWithPlans(command, attachPlans(options), (candidate) => {
    candidate.setConfig(kernelConfig(options));
    configureCgroupNames(candidate, cgroupNaming(options.printCgroup, options.prometheus));
    stream = new EventStream(candidate, undefined, command);
    return applySelection(candidate, { cgroup: options.cgroup });
  }, 'fsslower');
  const events = stream!;
  lifetime.onEnd(() => obj.close());
  if (exporter) {
    serveMetrics(exporter, obj, events, plan.name, options);
    setInterval(untimedCallsReporter(obj, command), 1000);
    lifetime.onEnd(() => events.stop(() => {}));
    return;
  }

  const out = new Output();
  const decoder = eventDecoder(obj.struct('event'));
  const cgroups = options.printCgroup && new CgroupNames(obj, options.printCgroup);
  const onEvent = (view: DataView, offset: number): void => {
    const op = decodeEvent(decoder, view, offset);
    out.line(render(op, options.format, cgroups ? cgroups.of(op.cgroupId) : undefined));
  };
  for (const line of header(options)) out.line(line);
  out.flush();
  events.start(onEvent, () => out.flush());
  const reportUntimed = untimedCallsReporter(obj, command);
  const timer = setInterval(reportUntimed, 1000);
  lifetime.onEnd(() => {
    clearInterval(timer);
    events.stop(onEvent);
    out.flush();
    reportUntimed();
  });
  lifetime.endOn(options.duration);
}
