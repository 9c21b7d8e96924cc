// The event stream of a loaded object: its `events` ring buffer read as
// records arrive, and its `lost_events` counter watched so that every event
// the kernel side could not deliver is reported on stderr.
import type { BpfObject } from './bpfobject.js';
import { reportSkippedRuns } from './misses.js';
import { RingBufferReader, type RecordHandler } from './ringbuf.js';

const LOST_CHECK_INTERVAL_MS = 1000;
/**
 * How long the last read of a run may take. Ctrl-C under a storm must end
 * the tool promptly even when printing the backlog cannot keep up (a full
 * 16 MiB ring took minutes to print on a slow guest); what is left then is
 * counted and reported lost, never dropped silently.
 */
const EXIT_DRAIN_MS = 2000;

/**
 * Default ring buffer size: room for some tens of milliseconds of a storm
 * (about 40,000 opensnoop records of a short path). Every page of it is
 * resident from the start (the kernel maps them all at mmap), so it is most
 * of a tool's memory beyond Node's own: 4 MiB lost nothing in the
 * benchmark's storms (bench/RESULTS.md), where 16 MiB held 12 MiB more for
 * all of every run. -b grows it.
 */
export const DEFAULT_RING_BYTES = 4 << 20;

/** Rounds a requested ring buffer size up to what the kernel accepts: a power of two of at least a page. */
export function ringBufferBytes(requested: number): number {
  let size = 4096;
  while (size < requested) size *= 2;
  return size;
}

export class EventStream {
  private reader?: RingBufferReader;
  private lostView?: DataView;
  private lostOffset = 0;
  private reportedLost = 0;
  private timer?: NodeJS.Timeout;
  /** Events handed to the tool so far. */
  received = 0;

  /** Sizes the ring buffer; call before load. */
  /** `command`: the name the user ran, for the loss reports (ext4slower runs fsslower's object) */
  constructor(private readonly obj: BpfObject, readonly bytes = DEFAULT_RING_BYTES, private readonly command = obj.tool) {
    obj.setMaxEntries('events', bytes);
  }

  /** Starts reading; call after load and attach. */
  start(onEvent: RecordHandler, onBatch: () => void): void {
    const lost = this.obj.btf.datasec('.bss').get('lost_events');
    if (!lost) throw new Error(`${this.obj.tool}.bpf.o has no lost_events counter`);
    this.lostView = this.obj.sectionView('.bss');
    this.lostOffset = lost.offset;
    this.reader = new RingBufferReader(this.obj.mapFd('events'), this.bytes);
    const count: RecordHandler = (view, offset, length) => {
      this.received++;
      onEvent(view, offset, length);
    };
    this.reader.start(count, onBatch);
    this.timer = setInterval(() => this.reportLost(), LOST_CHECK_INTERVAL_MS);
  }

  /** Events the kernel side dropped because the ring buffer was full. */
  lost(): number {
    if (!this.lostView) return 0;
    return Number(this.lostView.getBigUint64(this.lostOffset, true));
  }

  private reportLost(): void {
    reportSkippedRuns(this.obj, 'events', this.command);
    const lost = this.lost();
    if (lost === this.reportedLost) return;
    process.stderr.write(
      `${this.command}: ${lost - this.reportedLost} events lost: ring buffer full (${lost} lost in all)\n`,
    );
    this.reportedLost = lost;
  }

  /** Reads what the kernel had written when called (not what a storm adds meanwhile; for EXIT_DRAIN_MS at most), reports any loss, and stops. */
  stop(onEvent: RecordHandler): void {
    if (!this.reader) return;
    clearInterval(this.timer);
    const unread = this.reader.drainToNow(onEvent, performance.now() + EXIT_DRAIN_MS);
    this.reader.stop();
    this.reader = undefined;
    this.reportLost();
    if (unread > 0) {
      process.stderr.write(`${this.command}: ${unread} events lost: still unread ${EXIT_DRAIN_MS / 1000} s after the end of the run\n`);
    }
  }
}
