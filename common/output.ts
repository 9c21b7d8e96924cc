// Standard output for tools that stream. Lines are gathered while a batch of
// events is decoded and written with one write() when the batch ends: a
// reader on a pipe sees each event as soon as it is decoded (the C tools
// leave lines in a 4 KiB stdio buffer), and a storm still costs few writes.
// A batch of more than MAX_QUEUED_LINES is written in parts of that many.
import { writeSync } from 'node:fs';

/** Thrown when the reader of stdout has gone (EPIPE): the tool ends quietly with status 0. */
export class OutputClosed extends Error {}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Lines queued at most before they are written, even in the middle of a
 * batch: when a tool falls behind, one drain of the ring buffer hands over
 * up to 64k records, and lines held until its end outlive V8's young
 * generation. Collecting them from the old one then cost more than all the
 * rest (opensnoop --json in a storm: 44% of its time in the garbage
 * collector, and events lost; with parts of 1024 lines, 6% and none lost).
 */
const MAX_QUEUED_LINES = 1024;
/**
 * Room for one write, made once and kept (grown for a larger batch): a
 * Buffer made per write is memory outside V8's heap that only a later
 * collection frees, and a storm writes every millisecond or so.
 */
const WRITE_BUFFER_BYTES = 128 << 10;

/** Writes all of `data` to `fd`, waiting out EAGAIN (a non-blocking stdout). */
export function writeAll(fd: number, data: Buffer, length = data.length): void {
  let offset = 0;
  while (offset < length) {
    try {
      offset += writeSync(fd, data, offset, length - offset);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') Atomics.wait(sleeper, 0, 0, 1);
      else if (code === 'EPIPE') throw new OutputClosed('stdout closed');
      else throw err;
    }
  }
}

export class Output {
  private readonly pending: string[] = [];
  private bytes = Buffer.allocUnsafe(WRITE_BUFFER_BYTES);

  constructor(private readonly fd = 1) {}

  /** Queues one line (without its newline). */
  line(text: string): void {
    this.pending.push(text, '\n');
    if (this.pending.length >= 2 * MAX_QUEUED_LINES) this.flush();
  }

  /** Writes everything queued. */
  flush(): void {
    if (this.pending.length === 0) return;
    const text = this.pending.join('');
    this.pending.length = 0;
    // one pass over the text where it fits (write stops short of a
    // character that does not: within 3 bytes of the end, it may not have)
    let length = this.bytes.write(text);
    if (length > this.bytes.length - 4) {
      const needed = Buffer.byteLength(text);
      if (needed > length) {
        this.bytes = Buffer.allocUnsafe(needed);
        length = this.bytes.write(text);
      }
    }
    writeAll(this.fd, this.bytes, length);
  }
}
