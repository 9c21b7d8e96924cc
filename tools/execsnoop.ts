// execsnoop: trace every exec (execve, execveat), as bcc's execsnoop.
import { BpfObject } from '../common/bpfobject.js';
import type { StructLayout } from '../common/btf.js';
import { commandLine, integerOption, Lifetime, parseCommandLine, regexOption } from '../common/cli.js';
import { hhmmss, secondsSinceStart, wallClock } from '../common/clock.js';
import { plain, stdoutPaint, type Paint } from '../common/colour.js';
import { escapeText, losslessString, terminalSafeJson } from '../common/escape.js';
import { type Cgroup, cgroupHeader, cgroupIdJson, cgroupModeFromArgs, CgroupNames, type CgroupMode, configureCgroupNames, printCgroupOption } from '../common/cgroups.js';
import { EventStream } from '../common/events.js';
import type { Exporter } from '../common/exporter.js';
import { errnoName } from '../common/errno.js';
import { Counters } from '../common/exposition.js';
import { applySelection, selectionFromArgs, selectionOptions, type SelectionOptions } from '../common/filters.js';
import { fixedLeft, left, right } from '../common/format.js';
import { structDecoder } from '../common/layout.js';
import { libbpfLog } from '../common/log.js';
import { Output } from '../common/output.js';
import {
  cgroupNaming, eventToolOptions, openExporter, prometheusFromArgs, type PrometheusOptions,
} from '../common/prometheus.js';
import { parseUser } from '../common/users.js';

const USAGE = `Trace exec() syscalls

USAGE: execsnoop [-h] [-T] [-t] [-x] [-u USER] [-q] [-n NAME] [-l LINE] [-U] [-C] [-M]
                 [-P PPID] [--max-args MAX_ARGS] [-c CG] [--cgroupmap PATH] [--mntnsmap PATH]
                 [--print-cgroup[=container]] [--prometheus [ADDR:]PORT]
                 [--prometheus-comms N] [--prometheus-cgroups N] [-v] [--json]`;

const EXAMPLES = `    execsnoop                      # trace all exec() syscalls
    execsnoop -x                   # include failed exec()s
    execsnoop -T                   # include time (HH:MM:SS)
    execsnoop -P 181               # only trace new processes whose parent PID is 181
    execsnoop -U                   # include UID
    execsnoop -C                   # include CPU
    execsnoop -M                   # include the parent's command name
    execsnoop -u 1000              # only trace UID 1000
    execsnoop -u user              # get user UID and trace only them
    execsnoop -t                   # include timestamps
    execsnoop -q                   # add "quotemarks" around arguments
    execsnoop -n main              # only print command lines containing "main"
    execsnoop -l tpkg              # only print command where arguments contains "tpkg"
    execsnoop -c CG                # only trace processes in cgroup v2 directory CG
    execsnoop --cgroupmap mappath  # only trace cgroups in this BPF map
    execsnoop --mntnsmap mappath   # only trace mount namespaces in the map
    execsnoop --print-cgroup       # include the cgroup v2 path (CGROUP)
    execsnoop --print-cgroup=container  # include the container id (CONTAINER)
    execsnoop --json | jq .        # one JSON object per exec
    execsnoop -x --prometheus 9560 # serve exec and failure counts by comm at :9560/metrics`;

export const MAX_ARGS_LIMIT = 4096;

export interface Options extends SelectionOptions {
  time: boolean;
  timestamp: boolean;
  fails: boolean;
  uid?: number;
  quote: boolean;
  name?: RegExp;
  line?: RegExp;
  printUid: boolean;
  printCpu: boolean;
  printPcomm: boolean;
  ppid?: number;
  maxArgs: number;
  printCgroup?: CgroupMode;
  verbose: boolean;
  json: boolean;
  /** --prometheus: serve metrics instead of printing */
  prometheus?: PrometheusOptions;
}

export function parseOptions(argv: string[]): Options {
  const args = parseCommandLine(commandLine('execsnoop', USAGE, EXAMPLES)
    .options({
      time: { alias: 'T', type: 'boolean', default: false, description: 'include time column on output (HH:MM:SS)' },
      timestamp: { alias: 't', type: 'boolean', default: false, description: 'include timestamp on output (seconds since start)' },
      fails: { alias: 'x', type: 'boolean', default: false, description: 'include failed exec()s' },
      uid: { alias: 'u', type: 'string', requiresArg: true, description: 'trace this UID (or user name) only' },
      quote: { alias: 'q', type: 'boolean', default: false, description: 'add quotemarks (") around arguments' },
      name: { alias: 'n', type: 'string', requiresArg: true, description: 'only print commands whose name matches this regex' },
      line: { alias: 'l', type: 'string', requiresArg: true, description: 'only print commands whose arguments match this regex' },
      'print-uid': { alias: 'U', type: 'boolean', default: false, description: 'print UID column' },
      'print-cpu': { alias: 'C', type: 'boolean', default: false, description: 'print CPU column' },
      'print-pcomm': { alias: 'M', type: 'boolean', default: false, description: 'print the parent\'s command name (PPCOMM column)' },
      ppid: { alias: 'P', type: 'string', requiresArg: true, description: 'trace this parent PID only' },
      'max-args': { type: 'string', default: '20', requiresArg: true, description: 'maximum number of arguments parsed and displayed' },
      ...selectionOptions,
      ...printCgroupOption,
      ...eventToolOptions('event'),
    }), argv);
  return {
    time: args.time,
    timestamp: args.timestamp,
    fails: args.fails,
    uid: args.uid === undefined ? undefined : parseUser('--uid', args.uid),
    quote: args.quote,
    name: args.name === undefined ? undefined : regexOption('--name', args.name),
    line: args.line === undefined ? undefined : regexOption('--line', args.line),
    printUid: args.printUid,
    printCpu: args.printCpu,
    printPcomm: args.printPcomm,
    ppid: args.ppid === undefined ? undefined : integerOption('--ppid', args.ppid, 1, 0x7fffffff),
    maxArgs: integerOption('--max-args', args.maxArgs, 1, MAX_ARGS_LIMIT),
    ...selectionFromArgs(args),
    printCgroup: cgroupModeFromArgs(args.printCgroup),
    verbose: args.verbose,
    json: args.json,
    prometheus: prometheusFromArgs(args, {
      '-T': args.time, '-t': args.timestamp, '-q': args.quote, '-U': args.printUid, '-C': args.printCpu,
      '-M': args.printPcomm, '--json': args.json,
    }),
  };
}

/** The kernel-side configuration an Options asks for. */
export function kernelConfig(options: Options): Record<string, number> {
  return { targ_uid: options.uid ?? 0xffffffff, targ_ppid: options.ppid ?? 0 };
}

/** Programs that report failed execs: loaded only with -x (the entry programs always are: they count the caller's argv). */
export const FAILURE_PROGRAMS = ['exit_execve', 'exit_execveat'];

/** struct event's caller_argc when the caller's argv could not be counted. */
const ARGC_UNKNOWN = 0xffffffff;

export function eventDecoder(layout: StructLayout) {
  return structDecoder(layout, {
    ts_ns: 'u64', cgroup_id: 'u64', pid: 'u32', ppid: 'u32', uid: 'u32', cpu: 'u32', retval: 's32',
    args_size: 'u32', args_truncated: 'u32', interpreted: 'u32', argc: 'u32', caller_argc: 'u32', comm: 'chars', pcomm: 'chars', filename: 'chars', args: 'chars',
  });
}

export interface ExecEvent {
  tsNs: number;
  cgroupId: number;
  pid: number;
  ppid: number;
  uid: number;
  cpu: number;
  retval: number;
  comm: Uint8Array;
  pcomm: Uint8Array;
  /** what upstream prints: the file name, then the caller's argv[1..] */
  args: Uint8Array[];
  /** for a script: the interpreter the kernel ran and its arguments (the strings it put before the script's path) */
  interpreter?: Uint8Array[];
  /** true when arguments were left out (--max-args) or cut (argument area too large) */
  truncated: boolean;
}

/** What the kernel says about an exec's argument area (struct event). */
export interface ArgArea {
  /** the NUL-separated strings, argv[0] first */
  area: Uint8Array;
  /** the area was larger than what was copied */
  areaCut: boolean;
  /** an interpreter runs the file: the area is argv as the kernel rewrote it for the interpreter */
  interpreted: boolean;
  /** strings in the area (bprm->argc) */
  argc: number;
  /** the caller's argc, or undefined where it was not counted */
  callerArgc?: number;
}

function splitStrings(area: Uint8Array): Uint8Array[] {
  const strings: Uint8Array[] = [];
  let start = 0;
  while (start < area.length) {
    const end = area.indexOf(0, start);
    strings.push(area.subarray(start, end < 0 ? area.length : end));
    if (end < 0) break;
    start = end + 1;
  }
  return strings;
}

/**
 * Where the script's path is in an interpreter's argv: the kernel put
 * `argc - callerArgc` strings (the interpreter and its arguments) before it
 * (an empty caller argv counts as one: the kernel gives it an argv[0]).
 * Not counted (an exec without a syscall, more arguments than the count
 * goes), it is the first string after argv[0] that is the file name.
 */
function scriptPathIndex(argv: Uint8Array[], filename: Uint8Array, a: ArgArea): number {
  if (a.callerArgc !== undefined) {
    const index = a.argc - Math.max(a.callerArgc, 1);
    if (index >= 0 && index <= argv.length) return index;
  }
  const found = argv.findIndex((s, i) => i > 0 && Buffer.from(s).equals(filename));
  return found < 0 ? 0 : found;
}

/**
 * Splits the NUL-separated argument area into what is shown: the exec'd
 * file name in place of argv[0] (as upstream), then up to maxArgs - 1 of
 * the caller's further arguments; for a script, the strings the kernel put
 * before the script's path are the interpreter. An argument cut by the end
 * of the area has no NUL: it is kept, truncated.
 */
export function splitArgs(
  filename: Uint8Array, a: ArgArea, maxArgs: number,
): { args: Uint8Array[]; truncated: boolean; interpreter?: Uint8Array[] } {
  const argv = splitStrings(a.area);
  const scriptAt = a.interpreted ? scriptPathIndex(argv, filename, a) : 0;
  const rest = argv.slice(scriptAt + 1);
  return {
    args: [filename, ...rest.slice(0, maxArgs - 1)],
    truncated: rest.length > maxArgs - 1 || a.areaCut,
    ...(a.interpreted ? { interpreter: argv.slice(0, scriptAt) } : {}),
  };
}

export function decodeEvent(
  decoder: ReturnType<typeof eventDecoder>, view: DataView, offset: number, maxArgs: number,
): ExecEvent {
  const e = decoder.decode(view, offset);
  const areaStart = view.byteOffset + offset + decoder.offsets.args;
  const area = new Uint8Array(view.buffer, areaStart, Math.min(e.args_size, decoder.sizes.args));
  const { args, truncated, interpreter } = splitArgs(e.filename, {
    area, areaCut: e.args_truncated !== 0, interpreted: e.interpreted !== 0, argc: e.argc,
    callerArgc: e.caller_argc === ARGC_UNKNOWN ? undefined : e.caller_argc,
  }, maxArgs);
  return {
    tsNs: e.ts_ns, cgroupId: e.cgroup_id, pid: e.pid, ppid: e.ppid, uid: e.uid, cpu: e.cpu, retval: e.retval,
    comm: e.comm, pcomm: e.pcomm, args: args.map((a) => a.slice()), truncated,
    ...(interpreter ? { interpreter: interpreter.map((a) => a.slice()) } : {}),
  };
}

export function header(options: Options): string {
  let text = '';
  if (options.time) text += left('TIME', 9);
  if (options.timestamp) text += left('TIME(s)', 9);
  if (options.printUid) text += left('UID', 7);
  text += `${left('PCOMM', 16)} ${left('PID', 6)} `;
  if (options.printPcomm) text += `${left('PPCOMM', 16)} `;
  text += `${left('PPID', 6)} `;
  if (options.printCpu) text += `${left('CPU', 4)} `;
  text += `${right('RET', 3)} `;
  if (options.printCgroup) text += cgroupHeader(options.printCgroup);
  return `${text}ARGS`;
}

function quoteArg(text: string): string {
  return `"${text.replace(/"/g, '\\"')}"`;
}

/** The ARGS column: arguments escaped, space-separated, "..." where something was left out. */
export function argsText(event: ExecEvent, quote: boolean): string {
  const shown = event.args.map((a) => (quote ? quoteArg(escapeText(a)) : escapeText(a)));
  if (event.truncated) shown.push('...');
  return shown.join(' ');
}

/** One output line (with the event's cgroup for --print-cgroup); a failed exec's RET is painted as an error. */
export function renderLine(event: ExecEvent, options: Options, paint: Paint = plain, cgroup?: Cgroup): string {
  let text = '';
  if (options.time) text += `${left(hhmmss(wallClock(event.tsNs)), 8)} `;
  if (options.timestamp) text += `${fixedLeft(secondsSinceStart(event.tsNs), 8, 3)} `;
  if (options.printUid) text += `${left(event.uid, 6)} `;
  text += `${left(escapeText(event.comm), 16)} ${left(event.pid, 6)} `;
  if (options.printPcomm) text += `${left(escapeText(event.pcomm), 16)} `;
  text += `${left(event.ppid, 6)} `;
  if (options.printCpu) text += `${left(event.cpu, 4)} `;
  const ret = right(event.retval, 3);
  return `${text}${event.retval === 0 ? ret : paint.error(ret)} ${cgroup?.column ?? ''}${argsText(event, options.quote)}`;
}

/** One --json line; "cgroup" is there with --print-cgroup (its cgroup given). */
export function renderJson(event: ExecEvent, cgroup?: Cgroup): string {
  const object = terminalSafeJson({
    time: wallClock(event.tsNs).toISOString(),
    ts: Number(secondsSinceStart(event.tsNs).toFixed(6)),
    pid: event.pid,
    ppid: event.ppid,
    uid: event.uid,
    cpu: event.cpu,
    comm: losslessString(event.comm),
    pcomm: losslessString(event.pcomm),
    retval: event.retval,
    args: event.args.map(losslessString),
    args_truncated: event.truncated,
    interpreter: event.interpreter?.map(losslessString) ?? null,
  });
  return `${object.slice(0, -1)}${cgroup?.json ?? cgroupIdJson(event.cgroupId)}}`;
}

/** The user-space filters (-n, -l), which need the whole event. */
export function selected(event: ExecEvent, options: Options): boolean {
  if (options.name && !options.name.test(losslessString(event.comm))) return false;
  if (options.line && !options.line.test(event.args.map(losslessString).join(' '))) return false;
  return true;
}

/** The --prometheus counters: execs by comm, and with -x failed execs by comm and errno. */
function serveMetrics(exporter: Exporter, obj: BpfObject, stream: EventStream, options: Options): void {
  const decoder = eventDecoder(obj.struct('event'));
  const execs = new Counters();
  const failures = new Counters();
  const labelsOf = exporter.processLabels(obj);
  stream.start((view, offset) => {
    const event = decodeEvent(decoder, view, offset, options.maxArgs);
    if (!selected(event, options)) return;
    const labels = labelsOf(event.comm, event.cgroupId);
    if (event.retval === 0) execs.add(labels);
    else failures.add({ ...labels, errno: errnoName(-event.retval) ?? String(-event.retval) });
  }, () => {});
  exporter.serve(obj, 'raw_tp', () => [
    { name: 'ebpf_tools_execs_total', type: 'counter', help: 'Successful execs (execve, execveat), by the new command name', samples: execs.samples() },
    ...(options.fails ? [{
      name: 'ebpf_tools_exec_failures_total', type: 'counter' as const,
      help: 'Failed execs (execve, execveat), by the caller\'s command name and errno', samples: failures.samples(),
    }] : []),
  ]);
}

export async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  libbpfLog.setVerbose(options.verbose);
  const exporter = await openExporter('execsnoop', options.prometheus);
  const obj = BpfObject.open('execsnoop');
  const lifetime = new Lifetime();
  lifetime.onEnd(() => obj.close());
  obj.setConfig(kernelConfig(options));
  for (const program of FAILURE_PROGRAMS) obj.setAutoload(program, options.fails);
  const afterLoad = applySelection(obj, options);
  configureCgroupNames(obj, cgroupNaming(options.printCgroup, options.prometheus));
  const stream = new EventStream(obj);
  obj.load();
  afterLoad();
  obj.attach();
  if (exporter) {
    serveMetrics(exporter, obj, stream, options);
    lifetime.onEnd(() => stream.stop(() => {}));
    return;
  }

  const out = new Output();
  const paint = await stdoutPaint(!options.json);
  const decoder = eventDecoder(obj.struct('event'));
  const cgroups = options.printCgroup && new CgroupNames(obj, options.printCgroup);
  const onEvent = (view: DataView, offset: number): void => {
    const event = decodeEvent(decoder, view, offset, options.maxArgs);
    if (!selected(event, options)) return;
    const cgroup = cgroups ? cgroups.of(event.cgroupId) : undefined;
    out.line(options.json ? renderJson(event, cgroup) : renderLine(event, options, paint, cgroup));
  };
  if (!options.json) out.line(paint.header(header(options)));
  out.flush();
  stream.start(onEvent, () => out.flush());
  lifetime.onEnd(() => {
    stream.stop(onEvent);
    out.flush();
  });
  lifetime.endOn();
}
