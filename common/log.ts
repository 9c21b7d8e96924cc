// libbpf's own messages. With -v they go to stderr, in one write for all
// that one call into libbpf said (thousands of lines when a large object
// loads: a write each cost more than the load); otherwise the recent ones
// are kept so that a failure can say what libbpf said.
import { bpf, koffi, libcCalls } from './native.js';

const KEEP_LINES = 20;
const LIBBPF_DEBUG = 2;

/**
 * How much of libbpf's log -v shows: all of it, down to debug, unless
 * LIBBPF_LOG_LEVEL (libbpf's own variable for its default logger: warn,
 * info or debug) says less. Its debug messages run to thousands of lines
 * when a large object loads, and cost more than the load itself on a slow
 * machine; a script that reads -v for the attach decisions needs none.
 */
export const LIBBPF_LOG_LEVEL = 'LIBBPF_LOG_LEVEL';
const shownLevel = ({ warn: 0, info: 1, debug: 2 } as Record<string, number>)[process.env[LIBBPF_LOG_LEVEL]?.toLowerCase() ?? ''] ?? LIBBPF_DEBUG;

class LibbpfLog {
  private verbose = false;
  private readonly recent: string[] = [];
  // The verifier log arrives as a single message: room for the largest one libbpf keeps.
  private readonly buffer = Buffer.alloc(16 << 20);

  private installed = false;
  /** the callback libbpf is given, once installed */
  private callback: unknown = null;
  /** -v: what libbpf said since the last write to stderr */
  private unwritten: string[] = [];
  private flushesAtExit = false;

  /** Routes libbpf's messages here; loads libbpf, so it is done when an object is opened. */
  install(): void {
    if (this.installed) return;
    this.installed = true;
    const setPrint = bpf.set_print; // loads libbpf, which declares libbpf_print_fn
    const callback = koffi.register((level: number, format: string, args: unknown): number => {
      const shown = this.verbose && level <= shownLevel;
      if (!shown && level >= LIBBPF_DEBUG) return 0;
      const n = libcCalls.vsnprintf(this.buffer, this.buffer.length, format, args) as number;
      const text = this.buffer.subarray(0, Math.max(0, Math.min(n, this.buffer.length - 1))).toString();
      if (shown) this.later(text);
      else this.keep(text);
      return 0;
    }, koffi.pointer('libbpf_print_fn'));
    this.callback = callback;
    setPrint(callback);
  }

  /** Runs `work` with libbpf's messages turned off (work in other threads, which must not call back into JavaScript). */
  silenced(work: () => void): void {
    bpf.set_print(null);
    try {
      work();
    } finally {
      bpf.set_print(this.callback);
    }
  }

  setVerbose(on: boolean): void {
    this.verbose = on;
  }

  /** A line of our own about what was decided (attach mode, tracefs), shown with -v after what libbpf said before it. */
  note(text: string): void {
    if (!this.verbose) return;
    this.unwritten.push(`${text}\n`);
    this.flush();
  }

  /** Writes what libbpf said once the call into it has returned (or before our next line, or at exit). */
  private later(text: string): void {
    if (this.unwritten.length === 0) setImmediate(() => this.flush());
    if (!this.flushesAtExit) {
      this.flushesAtExit = true;
      process.once('exit', () => this.flush());
    }
    this.unwritten.push(text);
  }

  private flush(): void {
    if (this.unwritten.length === 0) return;
    const text = this.unwritten.join('');
    this.unwritten = [];
    process.stderr.write(text);
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
    this.flush();
    const last = this.recent.at(-1);
    this.recent.length = 0;
    if (this.verbose) return '';
    return last ? ` (libbpf: ${last.replace(/^libbpf: /, '').trim()}; run with -v for the full log)` : ' (run with -v for libbpf\'s log)';
  }
}

export const libbpfLog = new LibbpfLog();
