// The BPF ring buffer read directly from JS: its consumer page and its
// producer page plus data area are mapped into the process and walked in a
// loop, with no crossing into C per record (a koffi callback per record
// costs ~3.5 µs, too much for event storms). Wake-ups come from epoll on
// the map fd, waited for on a worker thread so the event loop stays free.
//
// Layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (the
// only page user space may write); page 1 the producer position; then the
// data area. The kernel offers the data area twice in a row, so that no
// record wraps, but maps every page at mmap time: we map it once (half the
// resident memory) and copy the rare record that wraps around its end. Each
// record starts with an 8-byte header: u32 length with the BUSY and DISCARD
// bits, u32 page offset; records and the area are 8-byte aligned, so a
// header never wraps.
import { RuntimeError } from './errors.js';
import { errnoText, koffi, lastErrno, libcCalls, nativeCompletion } from './native.js';

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const EPOLL_CTL_ADD = 1;
const EPOLLIN = 1;
const EPOLL_CLOEXEC = 0o2000000;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
/** An eventfd counter increment: what stop() writes to wake the wait. */
const WAKE = new BigUint64Array([1n]);
const SC_PAGESIZE = 30;

const BUSY_BIT = 0x80000000;
const DISCARD_BIT = 0x40000000;
const HEADER_SIZE = 8;
/** How long the waiting thread sleeps at most before it looks again (stop() wakes it at once through wakeFd). */
const WAIT_TIMEOUT_MS = 200;
/** Records handled before the consumer position is published mid-batch. */
const PUBLISH_EVERY = 256;
/** Records handled in one turn before yielding to the event loop. */
const MAX_PER_TURN = 1 << 16;
/**
 * After a turn that found records, how long to let more gather before the
 * next one instead of waiting on epoll. The kernel signals the epoll fd on
 * every committed record, so under a storm each wake-up finds one or two
 * records, and a turn's fixed cost (an epoll_wait through koffi's worker
 * pool, a write) outweighs theirs: measured, 80k turns for 200k opens and
 * ~13 µs of CPU per event, against ~1k turns and ~1.5 µs with this pause
 * (bench/). A lone event still goes out at once: an idle stream waits on epoll.
 */
const GATHER_MS = 1;
/** How long the last read of a run waits at most for a record still being written (BUSY). */
const FINAL_WAIT_MS = 100;

export const PAGE_SIZE = libcCalls.sysconf(SC_PAGESIZE) as number;

/** Called for each record; `offset` is where its payload starts in `view`. Must not keep the view. */
export type RecordHandler = (view: DataView, offset: number, length: number) => void;

function mapOrThrow(length: number, prot: number, fd: number, offset: number): unknown {
  const ptr = libcCalls.mmap(null, length, prot, MAP_SHARED, fd, offset);
  if (!ptr || koffi.address(ptr) === 0xffffffffffffffffn) {
    throw new RuntimeError(`cannot map the ring buffer: ${errnoText(lastErrno())}`);
  }
  return ptr;
}

export class RingBufferReader {
  private readonly consumerPtr: unknown;
  private readonly producerPtr: unknown;
  private readonly producerLength: number;
  private readonly consumerPos: BigInt64Array;
  private readonly producerPos: BigInt64Array;
  private readonly headers: Int32Array;
  private readonly view: DataView;
  private readonly bytes: Uint8Array;
  /** Where a record that wraps around the end of the data area is put together (grown as needed, kept). */
  private wrapped = new DataView(new ArrayBuffer(0));
  private readonly mask: number;
  private readonly epollFd: number;
  /** Written by stop() to end a wait in flight at once (until it ends, it keeps the event loop alive and the mappings in place). */
  private readonly wakeFd: number;
  private readonly epollEvents = Buffer.alloc(16);
  /** Atomics.wait's target for the short sleeps of drainToNow. */
  private readonly pause = new Int32Array(new SharedArrayBuffer(4));
  private stopped = false;
  private waiting = false;

  constructor(mapFd: number, readonly size: number) {
    this.mask = size - 1;
    this.consumerPtr = mapOrThrow(PAGE_SIZE, PROT_READ | PROT_WRITE, mapFd, 0);
    this.producerLength = PAGE_SIZE + size;
    this.producerPtr = mapOrThrow(this.producerLength, PROT_READ, mapFd, PAGE_SIZE);
    this.consumerPos = new BigInt64Array(koffi.view(this.consumerPtr, 8));
    const data = koffi.view(this.producerPtr, this.producerLength);
    this.producerPos = new BigInt64Array(data, 0, 1);
    this.headers = new Int32Array(data);
    this.view = new DataView(data);
    this.bytes = new Uint8Array(data);

    this.epollFd = libcCalls.epoll_create1(EPOLL_CLOEXEC) as number;
    this.wakeFd = libcCalls.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) as number;
    const event = Buffer.alloc(16);
    event.writeUInt32LE(EPOLLIN, 0);
    if (this.epollFd < 0 || this.wakeFd < 0 ||
        libcCalls.epoll_ctl(this.epollFd, EPOLL_CTL_ADD, mapFd, event) !== 0 ||
        libcCalls.epoll_ctl(this.epollFd, EPOLL_CTL_ADD, this.wakeFd, event) !== 0) {
      throw new RuntimeError(`cannot wait on the ring buffer: ${errnoText(lastErrno())}`);
    }
  }

  /** Where the next record will be reserved: every record reserved so far lies before it. */
  producerPosition(): number {
    return Number(Atomics.load(this.producerPos, 0));
  }

  /**
   * Hands every complete record to `onRecord`, in order, and frees their
   * space; with `end` (a producerPosition()), only the records before it.
   * Returns the number of records handled; stops early (returning with
   * more to read) after MAX_PER_TURN records.
   */
  drain(onRecord: RecordHandler, end = Infinity): number {
    let consumer = Number(Atomics.load(this.consumerPos, 0));
    let handled = 0;
    let sincePublish = 0;
    let producer = Math.min(this.producerPosition(), end);
    // A record still BUSY (reserved, not yet committed) ends the walk: the
    // kernel wakes us when it is committed, since it sits at our position.
    while (consumer < producer && handled < MAX_PER_TURN) {
      const headerOffset = PAGE_SIZE + (consumer & this.mask);
      const header = Atomics.load(this.headers, headerOffset >> 2) >>> 0;
      if (header & BUSY_BIT) break;
      const length = header & ~(BUSY_BIT | DISCARD_BIT);
      if (!(header & DISCARD_BIT)) {
        const start = headerOffset + HEADER_SIZE;
        if (start + length <= this.producerLength) onRecord(this.view, start, length);
        else onRecord(this.unwrapped(start, length), 0, length);
        handled++;
      }
      consumer += (length + HEADER_SIZE + 7) & ~7;
      if (++sincePublish === PUBLISH_EVERY) {
        Atomics.store(this.consumerPos, 0, BigInt(consumer));
        sincePublish = 0;
      }
      if (consumer >= producer) producer = Math.min(this.producerPosition(), end);
    }
    Atomics.store(this.consumerPos, 0, BigInt(consumer));
    return handled;
  }

  /** The record of `length` bytes at `start` that goes past the end of the data area, put together from both ends. */
  private unwrapped(start: number, length: number): DataView {
    if (this.wrapped.byteLength < length) this.wrapped = new DataView(new ArrayBuffer(length));
    const into = new Uint8Array(this.wrapped.buffer);
    const head = this.producerLength - start;
    into.set(this.bytes.subarray(start, this.producerLength));
    into.set(this.bytes.subarray(PAGE_SIZE, PAGE_SIZE + length - head), head);
    return this.wrapped;
  }

  /**
   * Hands over every record reserved before now, and none reserved after:
   * the last read of a run, which must end even while a storm goes on (a
   * drain until the buffer is empty never would). A record reserved but not
   * yet committed is waited for, FINAL_WAIT_MS at most: a BPF program
   * commits or discards what it reserved before it returns. Past
   * `deadline` (a performance.now() time) the rest is skipped unread and
   * counted: returns how many records were skipped.
   */
  drainToNow(onRecord: RecordHandler, deadline = Infinity): number {
    const end = this.producerPosition();
    let stalledSince: number | undefined;
    let skipped = 0;
    let seen = 0;
    // The clock is read every 256 records: a drain() call may hand over 64k.
    const handle: RecordHandler = (view, offset, length) => {
      if (skipped === 0 && (++seen & 255 || performance.now() < deadline)) onRecord(view, offset, length);
      else skipped++;
    };
    for (let consumer = Number(Atomics.load(this.consumerPos, 0)); consumer < end;) {
      this.drain(handle, end);
      const now = Number(Atomics.load(this.consumerPos, 0));
      if (now > consumer) {
        consumer = now;
        stalledSince = undefined;
        continue;
      }
      stalledSince ??= performance.now();
      if (performance.now() - stalledSince > FINAL_WAIT_MS) break;
      Atomics.wait(this.pause, 0, 0, 1);
    }
    return skipped;
  }

  /**
   * Reads records as they arrive until stop(): drains, then waits on epoll in
   * koffi's worker pool (or, after a drain that found records, GATHER_MS),
   * then drains again. `onBatch` runs after each drain (a tool flushes its
   * output there, so a burst goes out in one write).
   */
  start(onRecord: RecordHandler, onBatch: () => void): void {
    const turn = (): void => {
      if (this.stopped) return;
      const handled = this.drain(onRecord);
      if (handled) onBatch();
      if (handled >= MAX_PER_TURN) {
        setImmediate(turn);
        return;
      }
      if (handled > 0) {
        setTimeout(turn, GATHER_MS);
        return;
      }
      this.waiting = true;
      // A tool ends the process from a turn (a closed stdout throws): never from inside koffi's callback.
      libcCalls.epoll_wait.async(this.epollFd, this.epollEvents, 1, WAIT_TIMEOUT_MS, nativeCompletion(() => {
        this.waiting = false;
        if (this.stopped) this.release();
        else turn();
      }));
    };
    turn();
  }

  /** Stops reading; the mappings are released once no wait is in flight. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.waiting) libcCalls.write(this.wakeFd, WAKE, 8);
    else this.release();
  }

  private release(): void {
    libcCalls.close(this.epollFd);
    libcCalls.close(this.wakeFd);
    libcCalls.munmap(this.producerPtr, this.producerLength);
    libcCalls.munmap(this.consumerPtr, PAGE_SIZE);
  }
}
