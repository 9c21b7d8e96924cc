// libbpf's own messages. With -v they go to stderr as they come; otherwise
// the recent ones are kept so that a failure can say what libbpf said.
import { bpf, koffi, libcCalls } from './native.js';

const KEEP_LINES = 20;
const LIBBPF_DEBUG = 2;

class LibbpfLog {
  private verbose = false;
  private readonly recent: string[] = [];
  // The verifier log arrives as a single message: room for the largest one libbpf keeps.
  private readonly buffer = Buffer.alloc(16 << 20);

  private installed = false;

  /** Routes libbpf's messages here; loads libbpf, so it is done when an object is opened. */
  install(): void {
    if (this.installed) return;
    this.installed = true;
    const setPrint = bpf.set_print; // loads libbpf, which declares libbpf_print_fn
    const callback = koffi.register((level: number, format: string, args: unknown): number => {
      if (level >= LIBBPF_DEBUG && !this.verbose) return 0;
      const n = libcCalls.vsnprintf(this.buffer, this.buffer.length, format, args) as number;
      const text = this.buffer.subarray(0, Math.max(0, Math.min(n, this.buffer.length - 1))).toString();
      if (this.verbose) process.stderr.write(text);
      else if (level < LIBBPF_DEBUG) this.keep(text);
      return 0;
    }, koffi.pointer('libbpf_print_fn'));
    setPrint(callback);
  }

  setVerbose(on: boolean): void {
    this.verbose = on;
  }

  /** A line of our own about what was decided (attach mode, tracefs), shown with -v. */
  note(text: string): void {
    if (this.verbose) process.stderr.write(`${text}\n`);
  }

  private keep(text: string): void {
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      this.recent.push(line);
      if (this.recent.length > KEEP_LINES) this.recent.shift();
    }
  }

  /** What to append to a failure message: libbpf's last word, or a pointer to -v. */
  hint(): string {
    const last = this.recent.at(-1);
    this.recent.length = 0;
    if (this.verbose) return '';
    return last ? ` (libbpf: ${last.replace(/^libbpf: /, '').trim()}; run with -v for the full log)` : ' (run with -v for libbpf\'s log)';
  }
}

export const libbpfLog = new LibbpfLog();
