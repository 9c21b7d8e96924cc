// The HTTP side of --prometheus: GET /metrics answers the exposition text
// of what the tool counts, collected when the scrape arrives (maps read
// then, counters as they stand); every other path is 404. node:http runs
// on the event loop like the ring buffer's reads, and a scrape costs one
// synchronous collection of pre-aggregated values (a few hundred
// microseconds): it never holds the reading up for long, and a scraper
// that goes away only closes its own socket.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BpfObject } from './bpfobject.js';
import { CgroupNames } from './cgroups.js';
import { packageVersion } from './cli.js';
import { oneLine, RuntimeError } from './errors.js';
import { bytesOfLosslessString } from './escape.js';
import { CgroupLabels, CommLabels, CONTENT_TYPE, exposition, type Family, type Labels } from './exposition.js';
import type { ListenAddress, PrometheusOptions } from './prometheus.js';

/** What a tool adds to every scrape: its own families, collected when asked. */
export type Collector = () => Family[];

const where = ({ host, port }: ListenAddress): string => `${host === undefined ? '' : host.includes(':') ? `[${host}]` : host}:${port}`;

function bindFailure(listen: ListenAddress, err: NodeJS.ErrnoException): RuntimeError {
  const reasons: Record<string, string> = {
    EADDRINUSE: 'the port is in use: choose another',
    EACCES: 'permission denied: choose a port above 1023',
    EADDRNOTAVAIL: 'no interface of this machine has that address',
    ENOTFOUND: 'no such host',
    EAI_AGAIN: 'host name lookup failed',
  };
  return new RuntimeError(`cannot serve metrics on ${where(listen)}: ${reasons[err.code ?? ''] ?? err.message}`);
}

export class Exporter {
  private collect?: () => string;
  /** what failed collections said on stderr: each message once, not at every scrape */
  private readonly collectFailuresReported = new Set<string>();
  /** the comm label of every metric that has one, bounded by --prometheus-comms */
  readonly comms: CommLabels;

  private constructor(private readonly tool: string, private readonly server: Server, private readonly options: PrometheusOptions) {
    this.comms = new CommLabels(options.comms);
  }

  /**
   * The labels of a process's counters: its comm (bounded by
   * --prometheus-comms) and, with --prometheus-cgroups, its cgroup's path
   * as the kernel named it (the object loaded with cgroupNaming's mode).
   */
  processLabels(obj: BpfObject): (comm: Uint8Array, cgroupId: number) => Labels {
    if (this.options.cgroups === 0) return (comm) => this.comms.of(comm);
    const names = new CgroupNames(obj, 'path');
    const cgroups = new CgroupLabels(this.options.cgroups, (id) => {
      const { path } = names.of(id);
      return path === undefined ? undefined : bytesOfLosslessString(path);
    });
    return (comm, cgroupId) => ({ ...this.comms.of(comm), ...cgroups.of(cgroupId) });
  }

  /** Binds the address (before anything is loaded, so that a failure leaves nothing behind). */
  static async listen(tool: string, options: PrometheusOptions): Promise<Exporter> {
    // imported here, not at the top: in a tool's bundle (scripts/bundle.mjs)
    // a top-level import of node:http would run at every start, and it costs
    // Node 24 some 20 ms (it loads undici)
    const { createServer } = process.getBuiltinModule('node:http');
    const server = createServer();
    const exporter = new Exporter(tool, server, options);
    server.on('request', (request, response) => exporter.answer(request, response));
    // a client that sends garbage or goes away mid-request only loses its own connection
    server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: options.listen.host, port: options.listen.port }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: NodeJS.ErrnoException) => {
      throw bindFailure(options.listen, err);
    });
    return exporter;
  }

  /** The URL served, with the port actually bound (port 0 picks one). */
  get url(): string {
    const { address, family, port } = this.server.address() as AddressInfo;
    return `http://${family === 'IPv6' ? `[${address}]` : address}:${port}/metrics`;
  }

  /**
   * Starts answering scrapes with build_info, the loss counter and the
   * tool's families, and says where on stderr.
   */
  serve(obj: BpfObject, attachPlan: string, collect: Collector): void {
    const buildInfo: Family = {
      name: 'ebpf_tools_build_info', type: 'gauge',
      help: 'Always 1: the tool, the ebpf-tools version, and how it attached to this kernel',
      samples: [{ labels: { tool: this.tool, version: packageVersion(), attach_plan: attachPlan }, value: 1 }],
    };
    const lost = lostEventsReader(obj);
    this.serveFamilies(() => [
      buildInfo,
      {
        name: 'ebpf_tools_lost_events_total', type: 'counter',
        help: 'Events the kernel side could not hand over because the ring buffer was full',
        samples: [{ labels: {}, value: lost() }],
      },
      {
        name: 'ebpf_tools_skipped_runs_total', type: 'counter',
        help: 'Runs of the tool\'s BPF programs the kernel skipped because one was already running on that CPU (recursion_misses): events or requests not traced',
        samples: [{ labels: {}, value: obj.skippedRuns() }],
      },
      ...collect(),
    ]);
  }

  /** Starts answering scrapes with the families `collect` gives at each, and says where on stderr. */
  serveFamilies(collect: Collector): void {
    this.collect = () => exposition(collect());
    process.stderr.write(`${this.tool}: serving metrics at ${this.url}\n`);
  }

  private answer(request: IncomingMessage, response: ServerResponse): void {
    const path = (request.url ?? '').replace(/\?.*/s, '');
    if (path !== '/metrics') return plainAnswer(response, 404, 'Not found: the metrics are at /metrics\n');
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('Allow', 'GET, HEAD');
      return plainAnswer(response, 405, 'Only GET and HEAD\n');
    }
    if (!this.collect) return plainAnswer(response, 503, 'Not attached yet\n');
    let body: string;
    try {
      body = this.collect();
    } catch (err) {
      return this.collectFailed(response, err);
    }
    response.writeHead(200, { 'Content-Type': CONTENT_TYPE, 'Content-Length': Buffer.byteLength(body) });
    response.end(request.method === 'HEAD' ? undefined : body);
  }

  /**
   * A collection that threw (a map that could not be read): this scrape is
   * answered 500, which Prometheus records as the target down, and the tool
   * goes on serving, since the next collection may succeed. Said on stderr
   * once per message, not at every scrape (every 15 s for weeks).
   */
  private collectFailed(response: ServerResponse, err: unknown): void {
    const message = oneLine(err instanceof Error ? err.message : String(err));
    if (!this.collectFailuresReported.has(message)) {
      this.collectFailuresReported.add(message);
      process.stderr.write(`${this.tool}: cannot collect the metrics (scrape answered 500, still serving; not repeated): ${message}\n`);
    }
    plainAnswer(response, 500, `Cannot collect the metrics: ${message}\n`);
  }
}

function plainAnswer(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  response.end(text);
}

/** The object's lost_events counter (common.bpf.h), read live from its .bss. */
function lostEventsReader(obj: BpfObject): () => number {
  const variable = obj.btf.datasec('.bss').get('lost_events');
  if (!variable) throw new Error(`${obj.tool}.bpf.o has no lost_events counter`);
  const bss = obj.sectionView('.bss');
  return () => Number(bss.getBigUint64(variable.offset, true));
}
