// --prometheus [ADDR:]PORT, the exporter mode every tool has: the options,
// checked as any other (before anything is loaded), and the start of the
// exporter, whose code (common/exporter.js, node:http) is imported only in
// this mode so that the terminal tools start no slower.
import type { CgroupMode } from './cgroups.js';
import { integerOption } from './cli.js';
import { invalidValue, UsageError } from './errors.js';
import type { Exporter } from './exporter.js';

export const DEFAULT_PROMETHEUS_COMMS = 200;
const MAX_PROMETHEUS_COMMS = 100000;

/**
 * The options a tool of events ends with: -v, --json (one object per
 * `event`, as its help says) and the exporter's, in that order.
 */
export function eventToolOptions(event: string) {
  return {
    verbose: { alias: 'v', type: 'boolean', default: false, description: 'verbose debug output (libbpf log, attach decisions)' },
    json: { type: 'boolean', default: false, description: `print one JSON object per ${event} (NDJSON)` },
    ...prometheusOption,
    ...prometheusCommsOption,
    ...prometheusCgroupsOption,
  } as const;
}

/** yargs definition of --prometheus, which every tool has. */
export const prometheusOption = {
  prometheus: {
    type: 'string', requiresArg: true,
    description: 'serve metrics for Prometheus at http://[ADDR:]PORT/metrics instead of printing (PORT alone: all interfaces)',
  },
} as const;

/** yargs definition of --prometheus-comms, for the tools whose metrics have a comm label. */
const prometheusCommsOption = {
  'prometheus-comms': {
    type: 'string', requiresArg: true,
    description: `with --prometheus: at most this many comm label values (default ${DEFAULT_PROMETHEUS_COMMS}; 0 drops the comm label)`,
  },
} as const;

/** yargs definition of --prometheus-cgroups, for the tools whose counters have a comm label. */
const prometheusCgroupsOption = {
  'prometheus-cgroups': {
    type: 'string', requiresArg: true,
    description: 'with --prometheus: a cgroup label (the cgroup v2 path) on the counters, at most this many values (default 0: no cgroup label)',
  },
} as const;

export interface ListenAddress {
  /** undefined: every interface */
  host?: string;
  port: number;
}

export interface PrometheusOptions {
  listen: ListenAddress;
  /** how many distinct comms get their own label value; 0: no comm label */
  comms: number;
  /** how many distinct cgroups get their own label value; 0 (the default): no cgroup label */
  cgroups: number;
}

const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** PORT, ADDR:PORT or [IPV6]:PORT, as exporters take them; a malformed one is a UsageError. */
export function parseListenAddress(value: string): ListenAddress {
  // node:net only here: imported at the top, it loads the streams in every start (~1.3 ms)
  const { isIP } = process.getBuiltinModule('node:net');
  const bad = (reason: string): UsageError => invalidValue('--prometheus', value, reason);
  let host: string | undefined;
  let portText = value;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(value);
  if (bracketed) {
    if (isIP(bracketed[1]) !== 6) throw bad('expected an IPv6 address between [ ]');
    [, host, portText] = bracketed;
  } else if (value.includes(':')) {
    const colon = value.lastIndexOf(':');
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) throw bad('write an IPv6 address as [ADDR]:PORT');
    if (isIP(host) === 0 && !HOST_NAME.test(host)) throw bad('expected [ADDR:]PORT with ADDR an IP address or a host name');
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw bad('expected [ADDR:]PORT with PORT from 0 to 65535');
  return { host, port: Number(portText) };
}

interface PrometheusArgs {
  prometheus?: string;
  prometheusComms?: string;
  prometheusCgroups?: string;
  /** --print-cgroup, of the tools that have it: a column, so not with --prometheus (the label is --prometheus-cgroups) */
  printCgroup?: string;
}

/**
 * The exporter options, or undefined when --prometheus is not given.
 * `terminalOnly` names the options that only shape printed output (as typed,
 * with whether they were given): they cannot go with --prometheus.
 */
export function prometheusFromArgs(args: PrometheusArgs, terminalOnly: Record<string, unknown>): PrometheusOptions | undefined {
  if (args.prometheus === undefined) {
    if (args.prometheusComms !== undefined) throw new UsageError('option --prometheus-comms needs --prometheus');
    if (args.prometheusCgroups !== undefined) throw new UsageError('option --prometheus-cgroups needs --prometheus');
    return undefined;
  }
  const shaping: Record<string, unknown> = { ...terminalOnly, '--print-cgroup': args.printCgroup };
  const given = Object.entries(shaping)
    .filter(([, value]) => value !== undefined && value !== false).map(([name]) => name);
  if (given.length) {
    const hint = args.printCgroup === undefined ? '' : ' (--prometheus-cgroups N labels the counters by cgroup)';
    throw new UsageError(`${given.join(', ')} only shape${given.length === 1 ? 's' : ''} printed output: not with --prometheus${hint}`);
  }
  return {
    listen: parseListenAddress(args.prometheus),
    comms: args.prometheusComms === undefined
      ? DEFAULT_PROMETHEUS_COMMS
      : integerOption('--prometheus-comms', args.prometheusComms, 0, MAX_PROMETHEUS_COMMS),
    cgroups: args.prometheusCgroups === undefined ? 0 : integerOption('--prometheus-cgroups', args.prometheusCgroups, 0, MAX_PROMETHEUS_COMMS),
  };
}

/**
 * How the kernel must name cgroups: as --print-cgroup asks, else by path
 * when the exporter labels counters by cgroup.
 */
export function cgroupNaming(printCgroup: CgroupMode | undefined, prometheus: PrometheusOptions | undefined): CgroupMode | undefined {
  return printCgroup ?? (prometheus?.cgroups ? 'path' : undefined);
}

/** Listens (a bind failure is a RuntimeError: nothing is loaded yet); undefined when not asked for. */
export async function openExporter(tool: string, options: PrometheusOptions | undefined): Promise<Exporter | undefined> {
  if (!options) return undefined;
  const { Exporter } = await import('./exporter.js');
  return Exporter.listen(tool, options);
}
