// Standard output for tools that stream. Lines are gathered while a batch of
// events is decoded and written with one write() when the batch ends: a
// reader on a pipe sees each event as soon as it is decoded (the C tools
// leave lines in a 4 KiB stdio buffer), and a storm still costs few writes.
import { writeSync } from 'node:fs';

/** Thrown when the reader of stdout has gone (EPIPE): the tool ends quietly with status 0. */
export class OutputClosed extends Error {}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Writes all of `data` to `fd`, waiting out EAGAIN (a non-blocking stdout). */
export function writeAll(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += writeSync(fd, data, offset);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') Atomics.wait(sleeper, 0, 0, 1);
      else if (code === 'EPIPE') throw new OutputClosed('stdout closed');
      else throw err;
    }
  }
}

export class Output {
  private pending: string[] = [];

  constructor(private readonly fd = 1) {}

  /** Queues one line (without its newline). */
  line(text: string): void {
    this.pending.push(text, '\n');
  }

  /** Writes everything queued. */
  flush(): void {
    if (this.pending.length === 0) return;
    const data = Buffer.from(this.pending.join(''));
    this.pending = [];
    writeAll(this.fd, data);
  }
}
