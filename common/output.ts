// Standard output for tools that stream. Lines are gathered while a batch of
// events is decoded and written with one write() when the batch ends: a
// reader on a pipe sees each event as soon as it is decoded (the C tools
// leave lines in a 4 KiB stdio buffer), and a storm still costs few writes.
// A batch of more than FLUSH_BYTES is written in parts.
import { writeSync } from 'node:fs';
import { escapeText, isPlainAscii, terminalText } from './escape.js';

/** Thrown when the reader of stdout has gone (EPIPE): the tool ends quietly with status 0. */
export class OutputClosed extends Error {}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Queued bytes past which the lines are written even in the middle of a
 * batch: when a tool falls behind, one drain of the ring buffer hands over
 * up to 64k records, and their lines go out as they are made.
 */
const FLUSH_BYTES = 64 << 10;
/**
 * Room for the lines of one write, made once and kept (grown for a longer
 * line). Lines are put into it as they are made, part by part, so that an
 * event costs no string of its own and no join: in an open storm, strings
 * made per event and joined per batch were what grew V8's young generation
 * (and the process) by some 5 MiB.
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

/** What a line is rendered into, part by part: Output, or LineText to have it as a string. */
export interface LineSink {
  /** Appends text. */
  text(text: string): void;
  /** Appends a span of bytes from the kernel as terminal text (see terminalText). */
  span(bytes: Buffer, start: number, end: number): void;
}

/** A line rendered as a string (tests, and renderers that make theirs whole). */
export class LineText implements LineSink {
  value = '';

  text(text: string): void {
    this.value += text;
  }

  span(bytes: Buffer, start: number, end: number): void {
    this.value += terminalText(bytes, start, end);
  }
}

export class Output implements LineSink {
  private bytes = Buffer.allocUnsafe(WRITE_BUFFER_BYTES);
  private length = 0;

  constructor(private readonly fd = 1) {}

  /** Queues one line (without its newline). */
  line(text: string): void {
    this.text(text);
    this.end();
  }

  text(text: string): void {
    // a string's UTF-8 takes at most 3 bytes for each of its UTF-16 units
    if (this.length + 3 * text.length > this.bytes.length) this.makeRoom(Buffer.byteLength(text));
    this.length += this.bytes.write(text, this.length);
  }

  span(bytes: Buffer, start: number, end: number): void {
    if (!isPlainAscii(bytes, start, end)) {
      this.text(escapeText(bytes.subarray(start, end)));
      return;
    }
    this.makeRoom(end - start);
    this.length += bytes.copy(this.bytes, this.length, start, end);
  }

  /** Ends the line; what is queued is written once there is enough of it. */
  end(): void {
    this.makeRoom(1);
    this.bytes[this.length++] = 0x0a;
    if (this.length >= FLUSH_BYTES) this.flush();
  }

  /** Writes everything queued. */
  flush(): void {
    if (this.length === 0) return;
    const length = this.length;
    this.length = 0;
    writeAll(this.fd, this.bytes, length);
  }

  /** Makes sure `needed` more bytes fit, growing the buffer (with the line begun in it) for a line longer than it. */
  private makeRoom(needed: number): void {
    if (this.length + needed <= this.bytes.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.bytes.length, this.length + needed));
    this.bytes.copy(grown, 0, 0, this.length);
    this.bytes = grown;
  }
}
