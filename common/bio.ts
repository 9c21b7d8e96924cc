// What biolatency and biosnoop share about block requests: how to attach to
// them on this kernel (the programs of bpf/bio.bpf.h), how to name their
// flags, and how to report requests the kernel side could not follow.
import type { BpfObject } from './bpfobject.js';
import { kernelTypes } from './corebtf.js';
import { kernelBtfHasName } from './kernelbtf.js';
import { readMap } from './maps.js';
import { reportSkippedRuns } from './misses.js';
import { kernelHasFunction, kprobesAvailable, type AttachPlan } from './plan.js';

/** Requests in flight the kernel side can follow (MAX_REQUESTS in bio.bpf.h). */
const MAX_REQUESTS = 32768;

interface StartHook {
  name: string;
  programs: string[];
  unavailable: () => string | null;
  limits?: string;
}

function fentryHook(fn: string, program: string): StartHook {
  return {
    name: `fentry ${fn}`,
    programs: [program],
    unavailable: () => {
      if (kernelBtfHasName(fn)) return null;
      return kernelHasFunction(fn) ? `no function ${fn} in the kernel's BTF` : `${fn} is not a function of this kernel (inlined, or absent)`;
    },
  };
}

function kprobeHook(fn: string, program: string): StartHook {
  return {
    name: `kprobe ${fn}`,
    programs: [program],
    unavailable: () => {
      if (!kprobesAvailable()) return 'kprobes are not available';
      return kernelHasFunction(fn) ? null : `no function ${fn} to probe (inlined, or absent)`;
    },
  };
}

/**
 * Where a request's creation is seen, in the issuing process, best first:
 * the block_io_start tracepoint (6.5+), blk_account_io_start by fentry or
 * kprobe (up to 5.15), then the block_getrq tracepoint, which sees the bio
 * a request is made for (every kernel; matched to the request at dispatch,
 * see bio.bpf.h: requests made without a bio, such as passthrough commands,
 * are not seen), and last the block_rq_insert tracepoint, which only sees
 * requests going through a scheduler queue.
 *
 * No plan hooks __blk_account_io_start, the function behind an inline
 * blk_account_io_start from 5.16 to 6.4 where the compiler kept it (Ubuntu
 * 22.04's HWE 5.19 and 6.2; Debian 12's 6.1 inlines it too): no kernel of
 * Debian's, the only ones CI can boot, has it, so such plans could never be
 * proven; and block_getrq, which those kernels take instead, sees every
 * request it would (it is only called for requests made from a bio, and not
 * at all when the disk's iostats are off).
 */
const START_HOOKS: StartHook[] = [
  {
    name: 'block_io_start',
    programs: ['io_start_raw_tp'],
    unavailable: () => (kernelBtfHasName('btf_trace_block_io_start') ? null : 'no block_io_start tracepoint (kernel before 6.5)'),
  },
  fentryHook('blk_account_io_start', 'account_start_fentry'),
  kprobeHook('blk_account_io_start', 'account_start_kprobe'),
  {
    name: 'block_getrq',
    programs: ['getrq_raw_tp', 'frontmerge_raw_tp'],
    unavailable: () => null,
    limits: 'requests made without a bio (passthrough commands) are not seen created: no process, no queued time',
  },
  {
    // only requests that go through a scheduler queue
    name: 'block_rq_insert',
    programs: ['rq_insert_raw_tp'],
    unavailable: () => null,
    limits: 'only requests through an I/O scheduler queue are seen created (none on a disk whose scheduler is "none"): the others have no process and no queued time',
  },
];

/**
 * The attach plans of a block request tool, best first: dispatch, requeue
 * and completion always, and with `withStart` a hook on request creation
 * (needed to know the issuing process, and for queued time).
 */
export function blockAttachPlans(withStart: boolean): AttachPlan[] {
  const requestPrograms = ['rq_issue_raw_tp', 'rq_requeue_raw_tp', 'rq_complete_raw_tp'];
  if (!withStart) return [{ name: 'raw_tp', programs: requestPrograms }];
  return START_HOOKS.map((hook) => ({
    name: `raw_tp start at ${hook.name}`,
    programs: [...requestPrograms, ...hook.programs],
    unavailable: hook.unavailable,
    ...(hook.limits ? { limits: hook.limits } : {}),
  }));
}

/**
 * Configures an object for its plan before load: the block_getrq plan
 * follows requests by bio; the others need no table for that.
 */
export function configureBlockPlan(obj: BpfObject, plan: AttachPlan): void {
  const byBio = plan.programs.some((p) => p.startsWith('getrq_'));
  obj.setConfig({ origins_by_bio: byBio });
  if (!byBio) obj.setMaxEntries('bio_origins', 1);
}

/** libbpf-tools' names of request flags for -F, in its order; each is followed by "-". */
const FLAG_NAMES: [string, string][] = [
  ['NOWAIT', 'NoWait'], ['BACKGROUND', 'Background'], ['RAHEAD', 'ReadAhead'], ['PREFLUSH', 'PreFlush'],
  ['FUA', 'FUA'], ['INTEGRITY', 'Integrity'], ['IDLE', 'Idle'], ['NOMERGE', 'NoMerge'],
  ['PRIO', 'Priority'], ['META', 'Metadata'], ['SYNC', 'Sync'],
];

/** Operation names libbpf-tools spells other than by camel-casing the kernel's. */
const OP_NAME_EXCEPTIONS: Record<string, string> = { SCSI_IN: 'SCSIIn', SCSI_OUT: 'SCSIOut' };

/** blk_fill_rwbs()'s letters for an operation; any other is N. */
const OP_LETTERS: Record<string, string> = {
  WRITE: 'W', WRITE_SAME: 'W', DISCARD: 'D', SECURE_ERASE: 'DE', FLUSH: 'F', READ: 'R',
};

function cached(cache: Map<number, string>, key: number, compute: () => string): string {
  let value = cache.get(key);
  if (value === undefined) {
    value = compute();
    cache.set(key, value);
  }
  return value;
}

function camelCase(kernelName: string): string {
  return kernelName.toLowerCase().replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}

/** biolatency's and biosnoop's --prometheus histogram, labelled by disk and op. */
export const BIO_LATENCY_METRIC = 'ebpf_tools_bio_latency_seconds';

/** Its HELP: what the latency covers. */
export function bioLatencyHelp(queued: boolean): string {
  return queued
    ? 'Block I/O latency from the creation of the request to its completion: the time queued in the OS included (-Q)'
    : 'Block I/O latency from the dispatch of the request to the device to its completion';
}

/**
 * Request flags (a request's cmd_flags) as the running kernel numbers them:
 * operation values and flag bits move between kernel versions, so they are
 * read from the kernel's own BTF (enum req_op, or req_opf before 6.0, and
 * enum req_flag_bits) instead of being compiled in.
 */
export class RequestFlags {
  private readonly opMask: number;
  private readonly ops = new Map<number, string>();
  private readonly bits = new Map<string, number>();
  // a disk sees few distinct flag sets: each is named once
  private readonly descriptions = new Map<number, string>();
  private readonly rwbsTexts = new Map<number, string>();

  constructor(ops: Map<string, number>, flagBits: Map<string, number>) {
    // the flag bits start right above the operation (REQ_OP_BITS)
    this.opMask = 2 ** (flagBits.get('__REQ_FAILFAST_DEV') ?? 8) - 1;
    for (const [name, value] of ops) this.ops.set(value, name.replace(/^REQ_OP_/, ''));
    for (const [name, bit] of flagBits) this.bits.set(name.replace(/^__REQ_/, ''), bit);
  }

  /** From the running kernel's BTF (the enums alone, cut from it once a boot: corebtf.ts). */
  static fromKernel(): RequestFlags {
    const btf = kernelTypes(['req_op', 'req_opf', 'req_flag_bits']);
    const ops = btf.enumerators('req_op') ?? btf.enumerators('req_opf') ?? new Map<string, number>();
    return new RequestFlags(ops, btf.enumerators('req_flag_bits') ?? new Map<string, number>());
  }

  private has(flags: number, name: string): boolean {
    const bit = this.bits.get(name);
    return bit !== undefined && Math.floor(flags / 2 ** bit) % 2 === 1;
  }

  /** The operation's kernel name without REQ_OP_ (READ, WRITE, ...), or undefined. */
  private op(flags: number): string | undefined {
    return this.ops.get(flags & this.opMask);
  }

  /** The operation as a metric label: its kernel name in lower case (read, write, flush, discard...), or unknown. */
  operation(flags: number): string {
    return this.op(flags)?.toLowerCase() ?? 'unknown';
  }

  /** libbpf-tools' -F name: "Sync-Write", "ReadAhead-Read", "Unknown" for an operation it cannot name. */
  describe(flags: number): string {
    return cached(this.descriptions, flags, () => {
      const op = this.op(flags);
      const names = FLAG_NAMES.filter(([bit]) => this.has(flags, bit)).map(([, name]) => `${name}-`);
      return names.join('') + (op === undefined ? 'Unknown' : OP_NAME_EXCEPTIONS[op] ?? camelCase(op));
    });
  }

  /** The kernel's rwbs string (blk_fill_rwbs), as block tracepoints and blktrace show it: "R", "WS", "FWFS". */
  rwbs(flags: number): string {
    return cached(this.rwbsTexts, flags, () => {
      let text = this.has(flags, 'PREFLUSH') ? 'F' : '';
      text += OP_LETTERS[this.op(flags) ?? ''] ?? 'N';
      if (this.has(flags, 'FUA')) text += 'F';
      if (this.has(flags, 'RAHEAD')) text += 'A';
      if (this.has(flags, 'SYNC')) text += 'S';
      if (this.has(flags, 'META')) text += 'M';
      if (this.has(flags, 'ATOMIC')) text += 'U';
      return text;
    });
  }
}

/** The counters of requests the kernel side could not follow (bio.bpf.h), and why, as reported. */
const UNTRACED_COUNTERS = [
  { variable: 'untracked_requests', why: `kernel tables full or busy; at most ${MAX_REQUESTS} in flight are followed` },
  { variable: 'unseen_completions', why: 'the kernel ran no BPF program at their completion' },
];

/**
 * How long the end of a run waits for the requests dispatched before it to
 * complete (and be shown or counted) before it reports those it has not seen
 * complete: a disk completes requests in milliseconds.
 */
export const END_SETTLE_MS = 250;
const UNFINISHED_WHY = `dispatched before the end and not seen to complete within ${END_SETTLE_MS} ms of it`;
/** Atomics.wait's target for the short sleeps of settle(). */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * Reports on stderr the requests the kernel side could not follow (too
 * many in flight, or completed where the kernel runs no BPF program), so
 * that none goes missing silently.
 */
export class UntrackedRequests {
  private readonly view: DataView;
  private readonly counters: { offset: number; why: string; reported: number }[];
  private readonly requests: { fd: number; size: number; issuedOffset: number };
  /** When the run ended (monotonic, as bpf_ktime_get_ns), once settle() has run. */
  private endNs?: bigint;

  /**
   * Reads the loaded object's counters, and its `requests` map, whose values
   * say when each request followed was dispatched.
   */
  constructor(private readonly obj: BpfObject) {
    const bss = obj.btf.datasec('.bss');
    this.view = obj.sectionView('.bss');
    this.counters = UNTRACED_COUNTERS.map(({ variable, why }) => {
      const found = bss.get(variable);
      if (!found) throw new Error(`${obj.tool}.bpf.o has no ${variable} counter`);
      return { offset: found.offset, why, reported: 0 };
    });
    const layout = obj.mapValue('requests');
    const issued = layout.fields.get('issued_ns');
    if (issued?.type.size !== 8) throw new Error(`struct ${layout.name} has no 64-bit issued_ns`);
    this.requests = { fd: obj.mapFd('requests'), size: layout.size, issuedOffset: issued.offset };
  }

  /** Prints how many more requests went unfollowed since the last report, and why, if any. */
  report(): void {
    reportSkippedRuns(this.obj, 'requests');
    for (const counter of this.counters) {
      const count = Number(this.view.getBigUint64(counter.offset, true));
      if (count === counter.reported) continue;
      this.print(count - counter.reported, counter.why, count);
      counter.reported = count;
    }
  }

  /**
   * The first thing done at the end of a run (its finalizer is registered
   * last): waits up to END_SETTLE_MS for the requests dispatched until now
   * to complete, so that they are read and shown with the rest rather than
   * reported as not seen to complete.
   */
  settle(): void {
    const endNs = process.hrtime.bigint();
    this.endNs = endNs;
    const deadline = performance.now() + END_SETTLE_MS;
    while (this.unfinished(endNs) > 0 && performance.now() < deadline) Atomics.wait(PAUSE, 0, 0, 2);
  }

  /**
   * The report at the end of a run: also the requests still followed that
   * were dispatched before its end (settle()). The kernel side counts a
   * completion it missed only when another request comes to the same
   * address, which may not happen before the end; a request still in flight
   * is not shown either.
   */
  finalReport(): void {
    this.report();
    const unfinished = this.unfinished(this.endNs ?? process.hrtime.bigint());
    if (unfinished) this.print(unfinished, UNFINISHED_WHY, unfinished);
  }

  /** The requests followed, dispatched before `endNs` (and not requeued since), not seen to complete. */
  unfinished(endNs: bigint): number {
    let count = 0;
    for (const { value } of readMap(this.requests.fd, 8, this.requests.size)) {
      const issuedNs = value.readBigUInt64LE(this.requests.issuedOffset);
      if (issuedNs !== 0n && issuedNs < endNs) count++;
    }
    return count;
  }

  private print(more: number, why: string, inAll: number): void {
    process.stderr.write(`${this.obj.tool}: ${more} request${more === 1 ? '' : 's'} not traced: ${why} (${inAll} in all)\n`);
  }
}
