// opensnoop: trace every open (open, openat, openat2), as bcc's opensnoop.
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { BpfObject } from '../common/bpfobject.js';
import type { StructLayout } from '../common/btf.js';
import { commandLine, integerOption, Lifetime, parseCommandLine, PARSER_CONFIGURATION } from '../common/cli.js';
import { hhmmss, secondsSinceStart, wallClock } from '../common/clock.js';
import { plain, stdoutPaint, type Paint } from '../common/colour.js';
import { errnoName } from '../common/errno.js';
import { invalidValue, UsageError } from '../common/errors.js';
import { escapeText, jsonText, losslessString, losslessText, type SpanText, stringEnd, terminalSafeJson, terminalText } from '../common/escape.js';
import { type Cgroup, cgroupHeader, cgroupIdJson, cgroupModeFromArgs, CgroupNames, type CgroupMode, configureCgroupNames, printCgroupOption } from '../common/cgroups.js';
import { DEFAULT_RING_BYTES, EventStream, ringBufferBytes } from '../common/events.js';
import type { Exporter } from '../common/exporter.js';
import { Counters } from '../common/exposition.js';
import { applySelection, selectionFromArgs, selectionOptionsWithoutShortCgroup, type SelectionOptions } from '../common/filters.js';
import { left, right } from '../common/format.js';
import { structDecoder } from '../common/layout.js';
import { libbpfLog } from '../common/log.js';
import { LineText, Output, type LineSink } from '../common/output.js';
import { loadWithPlans, syscallTracepointsExist, type AttachPlan } from '../common/plan.js';
import { checkPrivileges, ensureTracefs } from '../common/preflight.js';
import {
  cgroupNaming, eventToolOptions, openExporter, prometheusFromArgs, type PrometheusOptions,
} from '../common/prometheus.js';
import { PAGE_SIZE } from '../common/ringbuf.js';
import { Symbolizer } from '../common/symbols.js';
import { parseUser } from '../common/users.js';

const USAGE = `Trace open family syscalls: open(), openat(), openat2()

USAGE: opensnoop [-h] [-T] [-U] [-x] [-p PID] [-t TID] [-u UID] [-d DURATION] [-n NAME]
                 [-e] [-E] [-f FLAG] [-F] [--path PREFIX] [-c] [-b BUFFER_PAGES]
                 [--cgroup CG] [--cgroupmap PATH] [--mntnsmap PATH]
                 [--print-cgroup[=container]] [--prometheus [ADDR:]PORT]
                 [--prometheus-comms N] [--prometheus-cgroups N] [-v] [--json]
                 [--exec CMD [ARGS...]]`;

const EXAMPLES = `    opensnoop                        # trace all open() syscalls
    opensnoop -T                     # include timestamps
    opensnoop -U                     # include UID
    opensnoop -x                     # only show failed opens
    opensnoop -x -E                  # only show failed opens, errors by name (ENOENT)
    opensnoop -p 181                 # only trace PID 181
    opensnoop -t 123                 # only trace TID 123
    opensnoop -u 1000                # only trace UID 1000
    opensnoop -d 10                  # trace for 10 seconds only
    opensnoop -n main                # only print process names containing "main"
    opensnoop -e                     # show extended fields (flags and mode)
    opensnoop -f O_WRONLY -f O_RDWR  # only print calls for writing
    opensnoop -F                     # show full path for an open file with relative path
    opensnoop --path /etc/           # only opens of paths under /etc/ (repeatable)
    opensnoop --exec ls -l /tmp      # run ls -l /tmp and trace only it, until it exits
    opensnoop -b 16384               # a 64 MiB ring buffer (16384 pages of 4 KiB)
    opensnoop -c                     # show calling functions
    opensnoop --cgroup CG            # only trace processes in cgroup v2 directory CG
    opensnoop --cgroupmap mappath    # only trace cgroups in this BPF map
    opensnoop --mntnsmap mappath     # only trace mount namespaces in the map
    opensnoop --print-cgroup         # include the cgroup v2 path (CGROUP)
    opensnoop --print-cgroup=container  # include the container id (CONTAINER)
    opensnoop --json | jq .          # one JSON object per open
    opensnoop --prometheus 9560      # serve open and failure counts by comm at :9560/metrics`;

const TASK_COMM_BYTES = 16;
/** The largest ring buffer -b may ask for. */
const MAX_RING_BYTES = 1 << 30;
const MAX_DURATION_SECONDS = 2147483; // setTimeout's limit
/** --path: as many prefixes, and as long, as the BPF object has room for (MAX_PATH_PREFIXES, PATH_PREFIX_BYTES - 1). */
export const MAX_PATH_PREFIXES = 8;
export const PATH_PREFIX_BYTES = 256;

export interface Options extends SelectionOptions {
  timestamp: boolean;
  printUid: boolean;
  failed: boolean;
  pid?: number;
  tid?: number;
  uid?: number;
  duration?: number;
  name?: Uint8Array;
  extended: boolean;
  errnoNames: boolean;
  flags?: FlagFilter;
  fullPath: boolean;
  /** --path: only paths (full paths with -F) starting with one of these */
  paths?: Buffer[];
  /** -c: the calling functions of each open, as libbpf-tools' --callers */
  callers: boolean;
  /** --exec: the command to run and trace (the rest of the command line) */
  exec?: string[];
  /** -b: ring buffer pages; the runtime's default size (4 MiB) when not given */
  bufferPages?: number;
  printCgroup?: CgroupMode;
  verbose: boolean;
  json: boolean;
  /** --prometheus: serve metrics instead of printing */
  prometheus?: PrometheusOptions;
}

/** -f: an open matches if it has any of `bits`, or its access mode is one of `accessModes` (bit 1 << mode). */
export interface FlagFilter {
  bits: number;
  accessModes: number;
}

const ACCESS_MODES: Record<string, number> = { O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2 };

/** Open flag bits (asm-generic/fcntl.h), with the architectures that number some differently. */
const GENERIC_FLAGS: Record<string, number> = {
  O_CREAT: 0o100, O_EXCL: 0o200, O_NOCTTY: 0o400, O_TRUNC: 0o1000, O_APPEND: 0o2000,
  O_NONBLOCK: 0o4000, O_NDELAY: 0o4000, O_DSYNC: 0o10000, O_ASYNC: 0o20000, O_DIRECT: 0o40000,
  O_LARGEFILE: 0o100000, O_DIRECTORY: 0o200000, O_NOFOLLOW: 0o400000, O_NOATIME: 0o1000000,
  O_CLOEXEC: 0o2000000, O_PATH: 0o10000000,
  // O_SYNC is __O_SYNC|O_DSYNC and O_TMPFILE is __O_TMPFILE|O_DIRECTORY: matched by
  // the bit that only they set, so that -f O_SYNC does not match O_DSYNC alone.
  O_SYNC: 0o4000000, O_RSYNC: 0o4000000, O_TMPFILE: 0o20000000,
};
const ARCH_FLAGS: Record<string, Record<string, number>> = {
  arm: { O_DIRECTORY: 0o40000, O_NOFOLLOW: 0o100000, O_DIRECT: 0o200000, O_LARGEFILE: 0o400000 },
  arm64: { O_DIRECTORY: 0o40000, O_NOFOLLOW: 0o100000, O_DIRECT: 0o200000, O_LARGEFILE: 0o400000 },
  ppc: { O_DIRECTORY: 0o40000, O_NOFOLLOW: 0o100000, O_LARGEFILE: 0o200000, O_DIRECT: 0o400000 },
  ppc64: { O_DIRECTORY: 0o40000, O_NOFOLLOW: 0o100000, O_LARGEFILE: 0o200000, O_DIRECT: 0o400000 },
};
const GENERIC_ARCHS = new Set(['x64', 'ia32', 'riscv64', 's390x', 'loong64']);

/** The open flag bits of an architecture (process.arch), or undefined where they are not known. */
export function openFlags(arch: string): Record<string, number> | undefined {
  if (!GENERIC_ARCHS.has(arch) && !ARCH_FLAGS[arch]) return undefined;
  return { ...GENERIC_FLAGS, ...ARCH_FLAGS[arch] };
}

/** Parses -f values (repeatable, or comma-separated): O_WRONLY, o_creat... */
export function parseFlagFilter(values: string[], arch = process.arch): FlagFilter {
  const flags = openFlags(arch);
  const filter: FlagFilter = { bits: 0, accessModes: 0 };
  for (const given of values.flatMap((v) => v.split(',')).map((v) => v.trim())) {
    const name = given.toUpperCase();
    if (name in ACCESS_MODES) filter.accessModes |= 1 << ACCESS_MODES[name];
    else if (flags && name in flags) filter.bits |= flags[name];
    else if (!flags) throw invalidValue('--flag', given, `open flags of ${arch} are not known; only O_RDONLY, O_WRONLY, O_RDWR`);
    else throw invalidValue('--flag', given, `expected one of ${[...Object.keys(ACCESS_MODES), ...Object.keys(flags)].join(', ')}`);
  }
  return filter;
}

/** -f and --path gather every value given; of the other options the last one counts, as with getopt. */
function lastValues<T extends Record<string, unknown>>(args: T, repeatable: string[]): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) out[key] = !repeatable.includes(key) && key !== '_' && Array.isArray(value) ? value.at(-1) : value;
  return out as T;
}

/** --path values: 1 to PATH_PREFIX_BYTES - 1 bytes each, at most MAX_PATH_PREFIXES. */
export function parsePathPrefixes(values: string[]): Buffer[] {
  if (values.length > MAX_PATH_PREFIXES) throw invalidValue('--path', values[MAX_PATH_PREFIXES], `at most ${MAX_PATH_PREFIXES} prefixes`);
  return values.map((value) => {
    const bytes = Buffer.from(value);
    if (bytes.length === 0 || bytes.length >= PATH_PREFIX_BYTES) throw invalidValue('--path', value, `a prefix is 1 to ${PATH_PREFIX_BYTES - 1} bytes`);
    return bytes;
  });
}

/**
 * --exec takes the rest of the command line (as bcc's argparse REMAINDER):
 * the words before it are options, the words after it the command.
 */
export function splitExec(argv: string[]): { options: string[]; exec?: string[] } {
  const at = argv.findIndex((word) => word === '--exec' || word.startsWith('--exec='));
  if (at < 0) return { options: argv };
  const exec = argv[at] === '--exec' ? argv.slice(at + 1) : [argv[at].slice('--exec='.length), ...argv.slice(at + 1)];
  if (exec.length === 0 || exec[0] === '') throw new UsageError('option --exec needs a command');
  return { options: argv.slice(0, at), exec };
}

/** The file --exec runs (a name without '/' is looked up in PATH), or a UsageError. */
export function commandFile(command: string, path = process.env.PATH ?? '/usr/bin:/bin'): string {
  const candidates = command.includes('/') ? [command] : path.split(':').filter(Boolean).map((dir) => `${dir}/${command}`);
  for (const file of candidates) {
    try {
      accessSync(file, fsConstants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch { /* the next one */ }
  }
  throw invalidValue('--exec', command, command.includes('/') ? 'not an executable file' : 'command not found in PATH');
}

export function parseOptions(argv: string[]): Options {
  const { options: optionWords, exec } = splitExec(argv);
  const args = lastValues(parseCommandLine(commandLine('opensnoop', USAGE, EXAMPLES)
    .parserConfiguration({ ...PARSER_CONFIGURATION, 'duplicate-arguments-array': true })
    .options({
      timestamp: { alias: 'T', type: 'boolean', default: false, description: 'include a time column (HH:MM:SS)' },
      'print-uid': { alias: 'U', type: 'boolean', default: false, description: 'print UID column' },
      failed: { alias: 'x', type: 'boolean', default: false, description: 'only show failed opens' },
      pid: { alias: 'p', type: 'string', requiresArg: true, description: 'trace this PID only' },
      tid: { alias: 't', type: 'string', requiresArg: true, description: 'trace this TID only' },
      uid: { alias: 'u', type: 'string', requiresArg: true, description: 'trace this UID (or user name) only' },
      duration: { alias: 'd', type: 'string', requiresArg: true, description: 'total duration of trace in seconds' },
      name: { alias: 'n', type: 'string', requiresArg: true, description: 'only print process names containing this name' },
      'extended-fields': { alias: ['e', 'extended_fields'], type: 'boolean', default: false, description: 'show extended fields (FLAGS and MODE columns)' },
      'errno-names': { alias: 'E', type: 'boolean', default: false, description: 'show errors by name (ENOENT) in the ERR column' },
      flag: { alias: ['f', 'flag_filter'], type: 'string', array: true, requiresArg: true, description: 'filter on flags argument (e.g., O_WRONLY); repeatable' },
      'full-path': { alias: 'F', type: 'boolean', default: false, description: 'show full path for an open file with relative path' },
      path: { type: 'string', array: true, requiresArg: true, description: `only opens whose path (with -F the full path) starts with this prefix; repeatable (up to ${MAX_PATH_PREFIXES})` },
      callers: { alias: 'c', type: 'boolean', default: false, description: 'show calling functions (libbpf-tools\' -c; the cgroup filter is --cgroup here)' },
      'buffer-pages': { alias: 'b', type: 'string', requiresArg: true, description: `ring buffer size in pages, rounded up to a power of two (default ${DEFAULT_RING_BYTES / PAGE_SIZE}: ${DEFAULT_RING_BYTES >> 20} MiB)` },
      ...selectionOptionsWithoutShortCgroup,
      ...printCgroupOption,
      ...eventToolOptions('event'),
      exec: { type: 'string', description: 'run CMD [ARGS...] (the rest of the line) and trace only it and its threads, from its first instruction; ends when it exits' },
    }), optionWords), ['flag', 'path']);
  if (exec && (args.pid !== undefined || args.tid !== undefined)) throw new UsageError(`option --exec cannot be combined with ${args.pid !== undefined ? '-p' : '-t'}`);
  if (exec && args.prometheus !== undefined) throw new UsageError('option --exec cannot be combined with --prometheus');
  if (exec) commandFile(exec[0]);
  let name: Uint8Array | undefined;
  if (args.name !== undefined) {
    name = Uint8Array.from(Buffer.from(args.name));
    if (name.length === 0 || name.length >= TASK_COMM_BYTES) {
      throw invalidValue('--name', args.name, `a process name is 1 to ${TASK_COMM_BYTES - 1} bytes`);
    }
  }
  const flagValues = args.flag?.map(String) ?? [];
  return {
    timestamp: args.timestamp,
    printUid: args.printUid,
    failed: args.failed,
    pid: args.pid === undefined ? undefined : integerOption('--pid', args.pid, 1, 0x7fffffff),
    tid: args.tid === undefined ? undefined : integerOption('--tid', args.tid, 1, 0x7fffffff),
    uid: args.uid === undefined ? undefined : parseUser('--uid', args.uid),
    duration: args.duration === undefined ? undefined : integerOption('--duration', args.duration, 1, MAX_DURATION_SECONDS),
    name,
    extended: args.extendedFields,
    errnoNames: args.errnoNames,
    flags: flagValues.length ? parseFlagFilter(flagValues) : undefined,
    fullPath: args.fullPath,
    callers: args.callers,
    paths: args.path === undefined ? undefined : parsePathPrefixes(args.path.map(String)),
    exec,
    bufferPages: args.bufferPages === undefined
      ? undefined
      : integerOption('--buffer-pages', args.bufferPages, 1, MAX_RING_BYTES / PAGE_SIZE),
    ...selectionFromArgs(args),
    printCgroup: cgroupModeFromArgs(args.printCgroup),
    verbose: args.verbose,
    json: args.json,
    prometheus: prometheusFromArgs(args, {
      '-T': args.timestamp, '-U': args.printUid, '-d': args.duration, '-e': args.extendedFields, '-E': args.errnoNames,
      '-F': args.fullPath, '-c': args.callers, '--json': args.json,
    }),
  };
}

/** The kernel-side configuration an Options asks for. */
export function kernelConfig(options: Options): Record<string, number | boolean | Uint8Array> {
  return {
    targ_tgid: options.pid ?? 0,
    targ_tid: options.tid ?? 0,
    targ_uid: options.uid ?? 0xffffffff,
    targ_failed: options.failed,
    filter_flags: options.flags !== undefined,
    targ_flag_bits: options.flags?.bits ?? 0,
    targ_access_modes: options.flags?.accessModes ?? 0,
    targ_comm: options.name ?? new Uint8Array(0),
    targ_comm_len: options.name?.length ?? 0,
    full_path: options.fullPath,
    targ_callers: options.callers,
    targ_path_count: options.paths?.length ?? 0,
    targ_paths: pathSlots(options.paths ?? []),
  };
}

/** The --path prefixes as the BPF object holds them: each NUL-terminated in a slot of PATH_PREFIX_BYTES. */
function pathSlots(paths: Buffer[]): Uint8Array {
  const slots = new Uint8Array(paths.length * PATH_PREFIX_BYTES);
  paths.forEach((p, i) => slots.set(p, i * PATH_PREFIX_BYTES));
  return slots;
}

/**
 * --path for what the kernel could not match: a relative path with -F,
 * whose full path is only joined here. Every other open reaching user space
 * has been matched in the kernel.
 */
export class PathFilter {
  private readonly prefixes: string[];
  private readonly fullPaths = new FullPaths((bytes, start, end) => bytes.toString('latin1', start, end));

  constructor(paths: Buffer[]) {
    this.prefixes = paths.map((p) => p.toString('latin1'));
  }

  selected(e: OpenEvent): boolean {
    if (e.dirStatus === DirStatus.None) return true;
    const full = this.fullPaths.of(e);
    return this.prefixes.some((p) => full.startsWith(p));
  }
}

/** The size of the ring buffer: -b pages rounded up to a power of two, or the runtime's default. */
export function ringBytes(options: Options): number {
  return options.bufferPages === undefined ? DEFAULT_RING_BYTES : ringBufferBytes(options.bufferPages * PAGE_SIZE);
}

/** The syscalls traced, each by its entry and exit programs. */
/** The syscalls traced, each by its own entry program; one program, attached to each of their exits, takes the results. */
export const SYSCALLS = [
  { name: 'open', entry: 'enter_open' },
  { name: 'openat', entry: 'enter_openat' },
  { name: 'openat2', entry: 'enter_openat2' },
];
const EXIT_PROGRAM = 'exit_open_calls';

/**
 * The one way to attach: the syscall tracepoints of the syscalls this kernel
 * has (arm64 and riscv have no open(); openat2 came in 5.6). A syscall without
 * its tracepoints is not loaded rather than failing the whole object.
 */
export function tracepointPlan(exists: (syscall: string) => boolean = syscallTracepointsExist): AttachPlan {
  const present = SYSCALLS.filter((s) => exists(s.name));
  for (const s of SYSCALLS) if (!present.includes(s)) libbpfLog.note(`opensnoop: no tracepoints for ${s.name}(): not traced`);
  return {
    name: 'syscall tracepoints',
    programs: [...present.map((s) => s.entry), EXIT_PROGRAM],
    // its section's is sys_exit_openat, which the plan needs
    alsoAttached: { [EXIT_PROGRAM]: present.filter((s) => s.name !== 'openat').map((s) => `syscalls/sys_exit_${s.name}`) },
    unavailable: () => (present.some((s) => s.name === 'openat')
      ? null
      : 'no syscalls/sys_enter_openat tracepoint (needs a kernel with CONFIG_FTRACE_SYSCALLS=y)'),
  };
}

/** What -F found for a relative path (enum dir_status in the BPF object). */
export enum DirStatus { None = 0, Complete = 1, Truncated = 2, Unknown = 3 }

/**
 * One open. Its strings are spans [start, end) of `bytes`, which while a
 * record is handled is the ring buffer's own memory: decoding copies and
 * allocates nothing, and only the text that is printed is made from them.
 */
export interface OpenEvent {
  tsNs: number;
  cgroupId: number;
  pid: number;
  tid: number;
  uid: number;
  ret: number;
  flags: number;
  mode: number;
  dirStatus: DirStatus;
  bytes: Buffer;
  commStart: number;
  commEnd: number;
  /** the path as the caller gave it */
  pathStart: number;
  pathEnd: number;
  /** with -F: the names of the directories above a relative path, innermost first, each NUL-terminated */
  dirsStart: number;
  dirsEnd: number;
  /** -c: return addresses up the user stack (0: none) */
  callers: number[];
}

export function eventDecoder(layout: StructLayout) {
  return structDecoder(layout, {
    ts_ns: 'u64', cgroup_id: 'u64', pid: 'u32', tid: 'u32', uid: 'u32', ret: 's32', flags: 'u32', mode: 'u32',
    path_size: 'u16', dir_size: 'u16', dir_status: 'u8', comm: 'chars', callers: 'u64s',
  });
}

/** A new event to decode into. */
export function emptyEvent(): OpenEvent {
  return {
    tsNs: 0, cgroupId: 0, pid: 0, tid: 0, uid: 0, ret: 0, flags: 0, mode: 0, dirStatus: DirStatus.None,
    bytes: Buffer.alloc(0), commStart: 0, commEnd: 0, pathStart: 0, pathEnd: 0, dirsStart: 0, dirsEnd: 0, callers: [],
  };
}

/** An event whose strings are in bytes of their own (tests; anything not read from a ring buffer). */
export function eventOf(fields: Omit<OpenEvent, 'bytes' | 'commStart' | 'commEnd' | 'pathStart' | 'pathEnd' | 'dirsStart' | 'dirsEnd' | 'callers'> & {
  comm: Uint8Array; path: Uint8Array; dirs?: Uint8Array; callers?: number[];
}): OpenEvent {
  const { comm, path, dirs = new Uint8Array(0), callers = [], ...numbers } = fields;
  const bytes = Buffer.concat([comm, path, dirs]);
  return {
    ...numbers, bytes, callers,
    commStart: 0, commEnd: comm.length,
    pathStart: comm.length, pathEnd: comm.length + path.length,
    dirsStart: comm.length + path.length, dirsEnd: bytes.length,
  };
}

/**
 * Reads one record into `event`, reusing it; its spans point into the ring
 * buffer and are valid only until the record handler returns.
 */
export function decodeInto(
  event: OpenEvent, decoder: ReturnType<typeof eventDecoder>, view: DataView, offset: number, length: number,
): void {
  if (event.bytes.buffer !== view.buffer || event.bytes.byteOffset !== view.byteOffset) {
    event.bytes = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  }
  const at = decoder.offsets;
  event.tsNs = view.getUint32(offset + at.ts_ns, true) + view.getUint32(offset + at.ts_ns + 4, true) * 2 ** 32;
  event.cgroupId = view.getUint32(offset + at.cgroup_id, true) + view.getUint32(offset + at.cgroup_id + 4, true) * 2 ** 32;
  event.pid = view.getUint32(offset + at.pid, true);
  event.tid = view.getUint32(offset + at.tid, true);
  event.uid = view.getUint32(offset + at.uid, true);
  event.ret = view.getInt32(offset + at.ret, true);
  event.flags = view.getUint32(offset + at.flags, true);
  event.mode = view.getUint32(offset + at.mode, true);
  event.dirStatus = view.getUint8(offset + at.dir_status);
  event.callers.length = decoder.sizes.callers / 8;
  for (let i = 0; i < event.callers.length; i++) {
    const address = offset + at.callers + 8 * i;
    event.callers[i] = view.getUint32(address, true) + view.getUint32(address + 4, true) * 2 ** 32;
  }
  event.commStart = offset + at.comm;
  event.commEnd = stringEnd(event.bytes, event.commStart, event.commStart + decoder.sizes.comm);
  // Sizes come from the kernel; bound them by the record so a bad one cannot read past it.
  const recordEnd = offset + length;
  const pathLimit = Math.min(offset + decoder.size + view.getUint16(offset + at.path_size, true), recordEnd);
  event.pathStart = offset + decoder.size;
  event.pathEnd = stringEnd(event.bytes, event.pathStart, pathLimit);
  event.dirsStart = pathLimit;
  event.dirsEnd = Math.min(pathLimit + view.getUint16(offset + at.dir_size, true), recordEnd);
}

const TRUNCATED_PREFIX = '...';

/**
 * -F paths: the directory names outermost first, then the path as given.
 * Where the kernel could not reach the root (deeper than it walks) the path
 * starts with ".../"; where it could not read the directory at all, or the
 * path is absolute, it is the path as given. The directory part is kept
 * while it stays the same, as it mostly does from one open to the next.
 */
export class FullPaths {
  private names = Buffer.alloc(0);
  private status = -1;
  private directory = '';

  constructor(private readonly text: SpanText) {}

  of(e: OpenEvent): string {
    const path = this.text(e.bytes, e.pathStart, e.pathEnd);
    if (e.dirStatus !== DirStatus.Complete && e.dirStatus !== DirStatus.Truncated) return path;
    const length = e.dirsEnd - e.dirsStart;
    if (e.dirStatus !== this.status || length !== this.names.length ||
        e.bytes.compare(this.names, 0, length, e.dirsStart, e.dirsEnd) !== 0) {
      this.status = e.dirStatus;
      this.names = Buffer.from(e.bytes.subarray(e.dirsStart, e.dirsEnd));
      // Each name rendered alone: a '/' never occurs inside a UTF-8 sequence, so
      // this is the text of the joined bytes.
      let joined = '';
      for (let start = e.dirsStart; start < e.dirsEnd;) {
        const end = stringEnd(e.bytes, start, e.dirsEnd);
        joined = `/${this.text(e.bytes, start, end)}${joined}`;
        start = end + 1;
      }
      this.directory = e.dirStatus === DirStatus.Truncated ? TRUNCATED_PREFIX + joined : joined;
    }
    return `${this.directory}/${path}`;
  }
}

/** What names -c's return addresses (common/symbols.ts's Symbolizer; tests give their own). */
export interface CallerNames {
  names(pid: number, addresses: number[]): string[];
}

/** The ERR column width with -E: the common names fit; longer ones push the line, as %-7s would. */
const ERRNO_NAME_WIDTH = 7;

export function header(options: Options): string {
  let text = '';
  if (options.timestamp) text += `${left('TIME', 8)} `;
  if (options.printUid) text += `${left('UID', 7)} `;
  text += `${left('PID', 6)} ${left('COMM', 16)} ${right('FD', 3)} `;
  text += options.errnoNames ? `${left('ERR', ERRNO_NAME_WIDTH)} ` : `${right('ERR', 3)} `;
  if (options.extended) text += `${left('FLAGS', 8)} ${left('MODE', 5)} `;
  if (options.printCgroup) text += cgroupHeader(options.printCgroup);
  return `${text}${options.callers ? 'PATH/CALLER' : 'PATH'}`;
}

const octal = (value: number, width: number): string => value.toString(8).padStart(width, '0');

/** O_CREAT and __O_TMPFILE: the same bits on every architecture opensnoop knows. */
const MODE_FLAGS = GENERIC_FLAGS.O_CREAT | GENERIC_FLAGS.O_TMPFILE;

/** The MODE column: n/a when neither O_CREAT nor O_TMPFILE makes the mode argument count (as upstream). */
export function modeText(flags: number, mode: number): string {
  return mode === 0 && (flags & MODE_FLAGS) === 0 ? 'n/a' : octal(mode, 4);
}

/** Results (fd or -errno) whose FD and ERR text is kept once made: -4096 up to 4095. */
const RESULT_CACHE = 4096;

/**
 * Renders lines. In a storm one process opens over and over, so each
 * column's text is kept while its value stays the same (the time for its
 * millisecond, the pid and command name, the uid, the result, the flags)
 * and a line costs little more than its path.
 */
export class LineRenderer {
  private timeMs = -1;
  private timeText = '';
  private uid = -1;
  private uidText = '';
  private pid = -1;
  private readonly comm = Buffer.alloc(TASK_COMM_BYTES);
  private commLength = -1;
  private processText = '';
  private readonly results: (string | undefined)[] = new Array(2 * RESULT_CACHE);
  private readonly flagTexts = new Map<number, string>();
  private readonly fullPaths = new FullPaths(terminalText);

  /** -c: each caller on a line of its own, under the PATH column (as libbpf-tools) */
  private readonly callerIndent: string;

  /** A failed open's ERR is painted as an error; `cgroups` names them for --print-cgroup; `callers` names -c's addresses. */
  constructor(
    private readonly options: Options, private readonly paint: Paint = plain,
    private readonly cgroups?: { of(id: number): Cgroup },
    private readonly callers: CallerNames = new Symbolizer(),
  ) {
    this.callerIndent = ' '.repeat(header({ ...options, callers: false }).length - 'PATH'.length);
  }

  private time(tsNs: number): string {
    const ms = Math.floor(tsNs / 1e6);
    if (ms !== this.timeMs) {
      this.timeMs = ms;
      this.timeText = `${left(hhmmss(wallClock(tsNs)), 8)} `;
    }
    return this.timeText;
  }

  private uidColumn(uid: number): string {
    if (uid !== this.uid) {
      this.uid = uid;
      this.uidText = `${left(uid, 7)} `;
    }
    return this.uidText;
  }

  private processColumns(e: OpenEvent): string {
    const length = e.commEnd - e.commStart;
    let same = e.pid === this.pid && length === this.commLength;
    for (let i = 0; same && i < length; i++) same = e.bytes[e.commStart + i] === this.comm[i];
    if (!same) {
      this.pid = e.pid;
      this.commLength = length;
      e.bytes.copy(this.comm, 0, e.commStart, e.commEnd);
      this.processText = `${left(e.pid, 6)} ${left(terminalText(e.bytes, e.commStart, e.commEnd), 16)} `;
    }
    return this.processText;
  }

  private resultColumns(ret: number): string {
    const cacheable = ret >= -RESULT_CACHE && ret < RESULT_CACHE;
    const cached = cacheable ? this.results[ret + RESULT_CACHE] : undefined;
    if (cached !== undefined) return cached;
    const fd = ret >= 0 ? ret : -1;
    const err = ret >= 0 ? 0 : -ret;
    const errText = this.options.errnoNames ? left(err === 0 ? '0' : errnoName(err) ?? err, ERRNO_NAME_WIDTH) : right(err, 3);
    const text = `${right(fd, 3)} ${err === 0 ? errText : this.paint.error(errText)} `;
    if (cacheable) this.results[ret + RESULT_CACHE] = text;
    return text;
  }

  private flagColumns(flags: number, mode: number): string {
    if (mode !== 0) return `${octal(flags, 8)} ${left(modeText(flags, mode), 5)} `;
    let text = this.flagTexts.get(flags);
    if (text === undefined) {
      text = `${octal(flags, 8)} ${left(modeText(flags, 0), 5)} `;
      this.flagTexts.set(flags, text);
    }
    return text;
  }

  /** Renders the line of `e` into `sink`, part by part (an Output: no string of its own). */
  write(e: OpenEvent, sink: LineSink): void {
    const o = this.options;
    if (o.timestamp) sink.text(this.time(e.tsNs));
    if (o.printUid) sink.text(this.uidColumn(e.uid));
    sink.text(this.processColumns(e));
    sink.text(this.resultColumns(e.ret));
    if (o.extended) sink.text(this.flagColumns(e.flags, e.mode));
    if (this.cgroups) sink.text(this.cgroups.of(e.cgroupId).column);
    if (o.fullPath) sink.text(this.fullPaths.of(e));
    else sink.span(e.bytes, e.pathStart, e.pathEnd);
    if (o.callers) for (const name of this.callers.names(e.pid, e.callers)) sink.text(`\n${this.callerIndent}${escapeText(Buffer.from(name, 'latin1'))}`);
  }

  line(e: OpenEvent): string {
    const text = new LineText();
    this.write(e, text);
    return text.value;
  }
}

/**
 * Renders --json lines, written out field by field (JSON.stringify of an
 * object per event costs more than the rest of the tool); the time is made
 * once per millisecond.
 */
export class JsonRenderer {
  private timeMs = -1;
  private timeText = '';
  private readonly fullPaths = new FullPaths(losslessText);

  /** `cgroups` names them for --print-cgroup; `callers` names -c's addresses. */
  constructor(
    private readonly options: Options, private readonly cgroups?: { of(id: number): Cgroup },
    private readonly callers: CallerNames = new Symbolizer(),
  ) {}

  write(e: OpenEvent, sink: LineSink): void {
    sink.text(this.line(e));
  }

  line(e: OpenEvent): string {
    const ms = Math.floor(e.tsNs / 1e6);
    if (ms !== this.timeMs) {
      this.timeMs = ms;
      this.timeText = wallClock(e.tsNs).toISOString();
    }
    const err = e.ret >= 0 ? 0 : -e.ret;
    const name = err === 0 ? undefined : errnoName(err);
    const mode = modeText(e.flags, e.mode) === 'n/a' ? null : e.mode;
    const full = this.options.fullPath ? `,"full_path":${terminalSafeJson(this.fullPaths.of(e))}` : '';
    const cgroup = this.cgroups ? this.cgroups.of(e.cgroupId).json : cgroupIdJson(e.cgroupId);
    const callers = this.options.callers
      ? `,"callers":[${this.callers.names(e.pid, e.callers).map((n) => terminalSafeJson(losslessString(Buffer.from(n, 'latin1')))).join(',')}]`
      : '';
    return `{"time":"${this.timeText}","ts":${Math.round(secondsSinceStart(e.tsNs) * 1e6) / 1e6},` +
      `"pid":${e.pid},"tid":${e.tid},"uid":${e.uid},"comm":${jsonText(e.bytes, e.commStart, e.commEnd)},` +
      `"fd":${e.ret >= 0 ? e.ret : -1},"err":${err},"errno":${name === undefined ? null : `"${name}"`},` +
      `"flags":${e.flags},"mode":${mode},"path":${jsonText(e.bytes, e.pathStart, e.pathEnd)}${full}${cgroup}${callers}}`;
  }
}

/** The --prometheus counters: opens by comm, failed opens by comm and errno. */
function serveMetrics(exporter: Exporter, obj: BpfObject, stream: EventStream, plan: string): void {
  const decoder = eventDecoder(obj.struct('event'));
  const event = emptyEvent();
  const opens = new Counters();
  const failures = new Counters();
  const labelsOf = exporter.processLabels(obj);
  stream.start((view, offset, length) => {
    decodeInto(event, decoder, view, offset, length);
    const labels = labelsOf(event.bytes.subarray(event.commStart, event.commEnd), event.cgroupId);
    opens.add(labels);
    if (event.ret < 0) failures.add({ ...labels, errno: errnoName(-event.ret) ?? String(-event.ret) });
  }, () => {});
  exporter.serve(obj, plan, () => [
    { name: 'ebpf_tools_opens_total', type: 'counter', help: 'Opens (open, openat, openat2), failed ones included, by command name', samples: opens.samples() },
    { name: 'ebpf_tools_open_failures_total', type: 'counter', help: 'Failed opens, by command name and errno', samples: failures.samples() },
  ]);
}

/**
 * --exec: the command, started stopped. A shell stops itself before it execs
 * the command, so its own start-up opens are over before anything is
 * attached, and the command's are all traced from its first instruction.
 */
class TracedCommand {
  readonly child: ChildProcess;
  private continued = false;

  constructor(readonly command: string[]) {
    // loaded here, not at the top: node:child_process costs every start ~4 ms
    const { spawn } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
    this.child = spawn('/bin/sh', ['-c', 'kill -STOP $$ && exec "$@"', 'opensnoop', ...command], { stdio: 'inherit' });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Lets it run, once it has stopped. */
  async start(): Promise<void> {
    for (let waited = 0; this.state() !== 'T'; waited++) {
      if (waited > 5000 || this.child.exitCode !== null) throw new Error(`--exec: the command did not start (${this.state()})`);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    this.continued = true;
    process.kill(this.pid, 'SIGCONT');
  }

  /** A command that never ran is not left stopped. */
  abandon(): void {
    if (!this.continued && this.child.exitCode === null) this.child.kill('SIGKILL');
  }

  private state(): string {
    try {
      return /\) (\S)/.exec(readFileSync(`/proc/${this.pid}/stat`, 'latin1'))?.[1] ?? '?';
    } catch {
      return 'gone';
    }
  }

  /** The summary line: how it ended. */
  static ending(command: string[], code: number | null, signal: NodeJS.Signals | null): string {
    const text = command.map((w) => escapeText(Buffer.from(w))).join(' ');
    return `opensnoop: ${text} ${signal ? `was killed by ${signal}` : `exited with status ${code}`}\n`;
  }
}

export async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  libbpfLog.setVerbose(options.verbose);
  const exporter = await openExporter('opensnoop', options.prometheus);
  checkPrivileges();
  // The tracepoints of the syscalls this kernel has are listed in tracefs.
  libbpfLog.note(ensureTracefs());
  const command = options.exec ? new TracedCommand(options.exec) : undefined;
  // before the load, so that a Ctrl-C during it (or right after attaching) still ends with status 0
  const lifetime = new Lifetime();
  if (command) lifetime.onEnd(() => command.abandon());
  let stream!: EventStream; // set by the configure step of the plan that loaded
  let obj: BpfObject;
  let plan: AttachPlan;
  try {
    ({ obj, plan } = loadWithPlans('opensnoop', [tracepointPlan()], (candidate: BpfObject) => {
      candidate.setConfig(kernelConfig(command ? { ...options, pid: command.pid } : options));
      stream = new EventStream(candidate, ringBytes(options));
      configureCgroupNames(candidate, cgroupNaming(options.printCgroup, options.prometheus));
      return applySelection(candidate, options);
    }));
  } catch (err) {
    command?.abandon();
    throw err;
  }
  const events = stream;
  lifetime.onEnd(() => obj.close());
  if (exporter) {
    serveMetrics(exporter, obj, events, plan.name);
    lifetime.onEnd(() => events.stop(() => {}));
    return;
  }

  const out = new Output();
  const decoder = eventDecoder(obj.struct('event'));
  const event = emptyEvent();
  const paint = await stdoutPaint(!options.json);
  const cgroups = options.printCgroup && new CgroupNames(obj, options.printCgroup);
  const renderer = options.json ? new JsonRenderer(options, cgroups || undefined) : new LineRenderer(options, paint, cgroups || undefined);
  const paths = options.paths && options.fullPath ? new PathFilter(options.paths) : undefined;
  const onEvent = (view: DataView, offset: number, length: number): void => {
    decodeInto(event, decoder, view, offset, length);
    if (paths && !paths.selected(event)) return;
    renderer.write(event, out);
    out.end();
  };
  if (!options.json) out.line(paint.header(header(options)));
  out.flush();
  events.start(onEvent, () => out.flush());
  lifetime.onEnd(() => {
    events.stop(onEvent);
    out.flush();
  });
  lifetime.endOn(options.duration);
  if (command) {
    command.child.on('exit', (code, signal) => {
      lifetime.onEnd(() => process.stderr.write(TracedCommand.ending(command.command, code, signal)));
      lifetime.end(0);
    });
    try {
      await command.start();
    } catch (err) {
      command.abandon();
      throw err;
    }
  }
}
