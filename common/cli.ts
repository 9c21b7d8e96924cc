// What every tool's main() shares: option parsing with one-line usage
// errors, the mapping of failures to exit codes, and the run loop that ends
// on SIGINT, SIGTERM, SIGHUP, a duration, or a closed stdout, always
// detaching from the kernel and printing any summary first.
import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { RuntimeError, UsageError } from './errors.js';
import { OutputClosed } from './output.js';

export const PACKAGE_VERSION: string = JSON.parse(
  readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
).version;

let toolName = 'ebpf-tools';

/**
 * yargs' parser settings for every tool: a repeated option's last value
 * wins, as with getopt. A tool with a repeatable option (opensnoop -f)
 * turns duplicate-arguments-array on over these, and keeps the last value
 * of its other options itself.
 */
export const PARSER_CONFIGURATION = { 'duplicate-arguments-array': false, 'strip-aliased': true, 'boolean-negation': false };

/** Builds the yargs parser every tool uses: strict, -h/--help, -V/--version, usage errors as UsageError. */
export function commandLine(tool: string, argv: string[], usage: string, examples: string): Argv {
  return yargs(argv)
    .scriptName(tool)
    .usage(usage)
    .epilogue(`EXAMPLES:\n${examples}`)
    .strict()
    .parserConfiguration(PARSER_CONFIGURATION)
    .help('help')
    .alias('help', 'h')
    .version(PACKAGE_VERSION)
    .alias('version', 'V')
    .wrap(null)
    .completion('completion', false)
    .fail((message, error) => {
      if (error instanceof UsageError || error instanceof RuntimeError) throw error;
      throw new UsageError(usageMessage(message ?? error?.message ?? 'invalid arguments', argv));
    });
}

/** The option as the user typed it, from the name yargs reports (camelCased, no dashes). */
function asTyped(name: string, argv: string[]): string {
  if (argv.includes(name)) return `argument '${name}'`;
  if (name.length === 1) return `option -${name}`;
  return `option --${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** yargs' messages, rephrased to name what the user typed. */
function usageMessage(message: string, argv: string[]): string {
  const unknown = /^Unknown arguments?: (.*)$/.exec(message);
  if (unknown) return `unknown ${unknown[1].split(', ').map((n) => asTyped(n, argv)).join(', ')}`;
  const missing = /^Not enough arguments following: ([\w-]+)$/.exec(message);
  if (missing) return `${asTyped(missing[1], argv)} needs a value`;
  return message.replace(/\n/g, ' ');
}

/** An integer option value in [min, max], or a UsageError naming the option. */
export function integerOption(option: string, value: unknown, min: number, max: number): number {
  const text = String(value).trim();
  if (!/^[+-]?\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`invalid ${option} '${String(value)}': expected an integer from ${min} to ${max}`);
  }
  return Number(text);
}

/** A regular expression option, compiled, or a UsageError naming the option. */
export function regexOption(option: string, value: string): RegExp {
  try {
    return new RegExp(value);
  } catch (err) {
    throw new UsageError(`invalid ${option} '${value}': ${(err as Error).message}`);
  }
}

type Finalizer = () => void;

/**
 * Runs until a signal, the duration, or a closed stdout; then runs the
 * finalizers (newest first: summaries are registered after the object, so
 * they print while it still exists) and exits 0.
 */
export class Lifetime {
  private readonly finalizers: Finalizer[] = [];
  private ended = false;

  /**
   * Ends on SIGINT/SIGTERM/SIGHUP from the moment it exists (a Ctrl-C during
   * load or right after the header still detaches and exits 0), and on a
   * closed stdout.
   */
  constructor() {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => this.end(0));
    process.on('uncaughtException', (err) => {
      if (err instanceof OutputClosed) this.end(0);
      this.end(reportFailure(err));
    });
  }

  /** Registers work for the end of the run (print a summary, detach, unload). */
  onEnd(finalizer: Finalizer): void {
    this.finalizers.push(finalizer);
  }

  /** Ends the run now: finalizers, then exit with `code`. */
  end(code = 0): never {
    if (!this.ended) {
      this.ended = true;
      for (const finalizer of this.finalizers.reverse()) {
        try {
          finalizer();
        } catch (err) {
          if (!(err instanceof OutputClosed)) reportFailure(err);
        }
      }
    }
    process.exit(code);
  }

  /** Also ends after `seconds`, if given (-d/--duration, a count of intervals). */
  endOn(seconds?: number): void {
    if (seconds !== undefined) setTimeout(() => this.end(0), seconds * 1000);
  }
}

/** Prints the one line a failure deserves; returns its exit status. */
function reportFailure(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`${toolName}: ${err.message} (see '${toolName} --help')\n`);
    return err.exitCode;
  }
  if (err instanceof RuntimeError) {
    process.stderr.write(`${toolName}: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof OutputClosed) return 0;
  const detail = process.env.EBPF_TOOLS_DEBUG ? (err as Error).stack : (err as Error).message;
  process.stderr.write(`${toolName}: internal error: ${detail}\n`);
  return 1;
}

/** Runs a tool's main(): a thrown error becomes its one line and exit status. */
export function runMain(tool: string, main: () => void | Promise<void>): void {
  toolName = tool;
  Promise.resolve()
    .then(main)
    .catch((err: unknown) => process.exit(reportFailure(err)));
}
