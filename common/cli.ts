// What every tool's main() shares: option parsing with one-line usage
// errors, the mapping of failures to exit codes, and the run loop that ends
// on SIGINT, SIGTERM, SIGHUP, a duration, or a closed stdout, always
// detaching from the kernel and printing any summary first.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Argv, InferredOptionTypes, Options as OptionDeclaration, PositionalOptions } from 'yargs';
import yargsParser from 'yargs-parser';
import { invalidValue, oneLine, quoted, RuntimeError, UsageError } from './errors.js';
import { exitNow } from './native.js';
import { OutputClosed } from './output.js';

let version: string | undefined;

/** The package's version, read when first asked for (--version, the exporter's info metric): a start has no use for it. */
export function packageVersion(): string {
  return (version ??= JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string);
}

let toolName = 'ebpf-tools';

/**
 * yargs' parser settings for every tool: a repeated option's last value
 * wins, as with getopt. A tool with a repeatable option (opensnoop -f)
 * turns duplicate-arguments-array on over these, and keeps the last value
 * of its other options itself.
 */
export const PARSER_CONFIGURATION = { 'duplicate-arguments-array': false, 'strip-aliased': true, 'boolean-negation': false };

/** A parse failure as yargs words it; parseCommandLine rewords it for the user. */
class YargsFailure extends Error {}

type ParserConfiguration = typeof PARSER_CONFIGURATION;

/**
 * A tool's command line as declared, in yargs' terms (yargs' option
 * declarations, its positional command, its parser configuration). yargs,
 * the parser of record, is loaded only when a command line needs more than
 * reading (--help, --version, completion, any mistake, anything unusual):
 * starting it costs more than the rest of a tool's start. What a plain
 * command line says is read by yargs' own parser, yargs-parser, from the
 * same declarations (test/cli-output.test.ts holds both to the same output).
 */
export class CommandLine<T = object> {
  /** The declarations in the order given, replayed on yargs when it is needed. */
  private readonly calls: ((y: Argv) => Argv)[] = [];
  private readonly declared: Record<string, OptionDeclaration> = {};
  private readonly positionals: string[] = [];
  private configuration: ParserConfiguration = PARSER_CONFIGURATION;
  private envPrefix?: string;

  constructor(readonly tool: string, private readonly usage: string, private readonly examples: string) {}

  options<O extends Record<string, OptionDeclaration>>(options: O): CommandLine<Omit<T, keyof O> & InferredOptionTypes<O>> {
    Object.assign(this.declared, options);
    this.calls.push((y) => y.options(options));
    return this as unknown as CommandLine<Omit<T, keyof O> & InferredOptionTypes<O>>;
  }

  parserConfiguration(configuration: ParserConfiguration): this {
    this.configuration = configuration;
    this.calls.push((y) => y.parserConfiguration(configuration));
    return this;
  }

  /** Options also read from PREFIX_<OPTION> in the environment (bench). */
  env(prefix: string): this {
    this.envPrefix = prefix;
    this.calls.push((y) => y.env(prefix));
    return this;
  }

  /** The default command with its positionals ('$0 [interval] [count]'), declared in `builder`. */
  command(command: string, description: false, builder: (positionals: Positionals) => Positionals): this {
    const declared: [string, PositionalOptions][] = [];
    const positionals: Positionals = { positional: (name, options) => (declared.push([name, options]), positionals) };
    builder(positionals);
    this.positionals.push(...declared.map(([name]) => name));
    this.calls.push((y) => y.command(command, description, (b) => declared.reduce((b, [name, options]) => b.positional(name, options), b)));
    return this;
  }

  /** The options by kind, as yargs' getOptions() has them (help, version and usage included); or only the declared options `only` names. */
  optionKinds(only?: ReadonlySet<string>): OptionKinds {
    const kinds: OptionKinds = only
      ? { boolean: [], string: [], array: [], alias: {} }
      : { boolean: ['help', 'version', 'usage'], string: [], array: [], alias: { help: HELP_ALIASES, version: ['V'] } };
    for (const [name, option] of Object.entries(this.declared)) {
      if (only && !only.has(name)) continue;
      const aliases = option.alias === undefined ? [] : ([] as string[]).concat(option.alias);
      if (aliases.length) kinds.alias[name] = aliases;
      if (option.type === 'boolean') kinds.boolean.push(name, ...aliases);
      if (option.type === 'string') kinds.string.push(name, ...aliases);
      if (option.array) kinds.array.push(name, ...aliases);
    }
    return kinds;
  }

  /**
   * What a plain command line says, read with yargs-parser, or undefined if
   * it is anything else. Plain is what asGetopt makes of a correct command
   * line: declared flags as --name or -x, declared values as --name=value,
   * at most the declared positionals; help, version and completion are not.
   */
  readPlain(normalized: string[]): ArgumentsOf<T> | undefined {
    if (this.envPrefix !== undefined) return undefined;
    const flags = new Set<string>();
    const takesValue = new Set<string>();
    /** the option each name and alias is */
    const optionOf = new Map<string, string>();
    const defaults: Record<string, unknown> = {};
    for (const [name, option] of Object.entries(this.declared)) {
      const names = [name, ...(option.alias === undefined ? [] : ([] as string[]).concat(option.alias))];
      for (const n of names) {
        (option.type === 'boolean' ? flags : takesValue).add(n);
        optionOf.set(n, name);
      }
      if ('default' in option) defaults[name] = option.default;
    }
    // yargs-parser is told of the options the line names and of those with a default, the
    // only ones its result can hold: what it does for every option it knows, at every call, was
    // most of its time (47 ms of opensnoop's start in a kernel-matrix guest, instructions counted)
    const told = new Set(Object.keys(defaults));
    let positionals = 0;
    for (const token of normalized) {
      if (token.startsWith('--')) {
        const eq = token.indexOf('=');
        const name = token.slice(2, eq < 0 ? undefined : eq);
        if (name.length < 2 || !(eq < 0 ? flags : takesValue).has(name)) return undefined;
        told.add(optionOf.get(name)!);
      } else if (token.startsWith('-')) {
        if (token.length !== 2 || !flags.has(token[1])) return undefined;
        told.add(optionOf.get(token[1])!);
      } else if (++positionals > this.positionals.length || token === 'completion') {
        return undefined;
      }
    }
    const kinds = this.optionKinds(told);
    const parsed = yargsParser(normalized, {
      alias: kinds.alias,
      boolean: kinds.boolean,
      string: kinds.string,
      array: kinds.array,
      default: defaults,
      configuration: { ...this.configuration, 'parse-positional-numbers': false },
    });
    const args: Record<string, unknown> = { ...parsed, _: [], $0: this.tool };
    delete args.help;
    delete args.version;
    delete args.usage;
    parsed._.forEach((value, i) => (args[this.positionals[i]] = String(value)));
    return args as ArgumentsOf<T>;
  }

  /** --usage's text: the USAGE: lines of the usage (the part after the tool's description). */
  usageLines(): string {
    const start = this.usage.search(/^USAGE: /m);
    if (start < 0) throw new Error(`${this.tool}: its usage has no USAGE: line`);
    return this.usage.slice(start);
  }

  /** The yargs parser of these declarations (loaded now: see the class comment). */
  yargs(): Argv<T> {
    const yargs = createRequire(import.meta.url)('yargs') as () => Argv;
    const parser = yargs()
      .scriptName(this.tool)
      .usage(this.usage)
      .epilogue(`EXAMPLES:\n${this.examples}`)
      .strict()
      .parserConfiguration(PARSER_CONFIGURATION)
      .help('help')
      .alias('help', HELP_ALIASES)
      .version(packageVersion())
      .alias('version', 'V')
      .option('usage', { type: 'boolean', description: 'Show a short usage message' })
      .wrap(null)
      .completion('completion', false)
      .fail((message, error) => {
        if (error instanceof UsageError || error instanceof RuntimeError) throw error;
        throw new YargsFailure(message ?? error?.message ?? 'invalid arguments');
      });
    return this.calls.reduce((y, call) => call(y), parser as Argv) as unknown as Argv<T>;
  }
}

/** What a positional command's builder declares its positionals on. */
export interface Positionals {
  positional(name: string, options: PositionalOptions): Positionals;
}

/** -h and argp's -? (libbpf-tools' tools take both, as GNU argp gives every program). */
const HELP_ALIASES = ['h', '?'];

/** Starts the declaration of a tool's command line: strict, -h/-?/--help, -V/--version, --usage; parse it with parseCommandLine. */
export function commandLine(tool: string, usage: string, examples: string): CommandLine {
  return new CommandLine(tool, usage, examples);
}

/**
 * Parses argv as getopt would (so as the C tools do), then as yargs does:
 * every mistake is a UsageError naming what the user typed.
 */
export function parseCommandLine<T>(commandLine: CommandLine<T>, argv: string[]): ArgumentsOf<T> {
  const normalized = asGetopt(argv, commandLine.optionKinds());
  // argp's --usage (libbpf-tools): the usage lines alone; like --help, it wins over anything else on the line
  const options = normalized.includes('--') ? normalized.slice(0, normalized.indexOf('--')) : normalized;
  if (options.includes('--usage')) {
    process.stdout.write(`${commandLine.usageLines()}\n`);
    process.exit(0);
  }
  let args = commandLine.readPlain(normalized);
  if (!args) {
    try {
      args = commandLine.yargs().parseSync(normalized);
    } catch (err) {
      if (err instanceof YargsFailure) throw new UsageError(oneLine(usageMessage(err.message, argv)));
      throw err;
    }
  }
  // what follows a '--' is left in _: no tool takes free arguments
  if (args._.length > 0) throw new UsageError(`unknown ${asTyped(String(args._[0]), argv)}`);
  return args;
}

type ArgumentsOf<T> = ReturnType<Argv<T>['parseSync']>;

interface OptionKinds {
  boolean: string[];
  string: string[];
  array: string[];
  alias: Record<string, string[]>;
}

/**
 * argv in a form yargs reads as getopt reads the original: short groups
 * split (-Tnbash is -T -n bash, which yargs would read as -T -n -b -a -s -h)
 * and every value attached with '=' (so that a value starting with '-' stays
 * a value). Refuses what getopt refuses and yargs would let through, each
 * of which would silently trace something other than what was asked: a
 * value given to a flag (--json=yes, -T=1, -T5, -x false) and an empty value.
 * Unknown options are passed on for yargs to name.
 */
/**
 * Options whose value is optional (getopt's "::"): given only attached, as
 * --name=VALUE, and standing for the value here when given bare.
 */
export const OPTIONAL_VALUES: ReadonlyMap<string, string> = new Map([['print-cgroup', 'path']]);

export function asGetopt(argv: string[], options: OptionKinds): string[] {
  const flags = new Set(options.boolean);
  const takesValue = new Set([...options.string, ...options.array]);
  const longName = new Map<string, string>();
  for (const [name, aliases] of Object.entries(options.alias)) {
    for (const alias of aliases) {
      if (flags.has(name)) flags.add(alias);
      if (takesValue.has(name)) takesValue.add(alias);
      if (alias.length === 1 && name.length > 1) longName.set(alias, name);
    }
  }
  const typed = (name: string): string => (name.length === 1 ? `-${name}` : `--${name}`);
  const option = (name: string): string => `option ${typed(name)}`;
  const withValue = (name: string, value: string | undefined): string[] => {
    if (value === undefined) return [typed(name)]; // the last word: yargs says it needs a value
    if (value === '') throw new UsageError(`${option(name)} needs a value`);
    return [`${typed(longName.get(name) ?? name)}=${value}`];
  };
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    let lastFlag: string | undefined;
    if (token === '-') {
      throw new UsageError("unknown argument '-' (no tool reads standard input)");
    } else if (token === '--') {
      out.push(...argv.slice(i));
      break;
    } else if (token.startsWith('--')) {
      const eq = token.indexOf('=');
      const name = token.slice(2, eq < 0 ? undefined : eq);
      const bare = OPTIONAL_VALUES.get(name);
      if (bare !== undefined && takesValue.has(name)) {
        out.push(...withValue(name, eq >= 0 ? token.slice(eq + 1) : bare));
      } else if (flags.has(name)) {
        if (eq >= 0) throw new UsageError(`${option(name)} takes no value`);
        lastFlag = name;
        out.push(token);
      } else if (takesValue.has(name)) {
        out.push(...withValue(name, eq >= 0 ? token.slice(eq + 1) : argv[++i]));
      } else {
        out.push(token);
      }
    } else if (token.startsWith('-') && token.length > 1 && /[A-Za-z?]/.test(token[1])) {
      for (let k = 1; k < token.length; k++) {
        const letter = token[k];
        if (flags.has(letter)) {
          lastFlag = letter;
          out.push(`-${letter}`);
        } else if (lastFlag !== undefined && !/[A-Za-z]/.test(letter)) {
          throw new UsageError(`${option(lastFlag)} takes no value`);
        } else if (takesValue.has(letter)) {
          lastFlag = undefined;
          out.push(...withValue(letter, k + 1 < token.length ? token.slice(k + 1).replace(/^=/, '') : argv[++i]));
          break;
        } else {
          out.push(`-${token.slice(k)}`);
          break;
        }
      }
    } else {
      out.push(token);
    }
    if (lastFlag !== undefined && (argv[i + 1] === 'true' || argv[i + 1] === 'false')) {
      throw new UsageError(`${option(lastFlag)} takes no value`);
    }
  }
  return out;
}

/** The option as the user typed it, from the name yargs reports (camelCased, no dashes). */
function asTyped(name: string, argv: string[]): string {
  if (argv.includes(name)) return `argument ${quoted(name)}`;
  if (name.length === 1) return `option -${name}`;
  return `option --${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** yargs' messages, rephrased to name what the user typed. */
function usageMessage(message: string, argv: string[]): string {
  const unknown = /^Unknown arguments?: (.*)$/.exec(message);
  if (unknown) return `unknown ${[...new Set(unknown[1].split(', ').map((n) => asTyped(n, argv)))].join(', ')}`;
  const missing = /^Not enough arguments following: ([\w-]+)$/.exec(message);
  if (missing) return `${asTyped(missing[1], argv)} needs a value`;
  return message.replace(/\n/g, ' ');
}

/** An integer option value in [min, max], or a UsageError naming the option. */
export function integerOption(option: string, value: unknown, min: number, max: number): number {
  const text = String(value).trim();
  if (!/^[+-]?\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw invalidValue(option, value, `expected an integer from ${min} to ${max}`);
  }
  return Number(text);
}

/** A regular expression option, compiled, or a UsageError naming the option. */
export function regexOption(option: string, value: string): RegExp {
  try {
    return new RegExp(value);
  } catch (err) {
    // the engine's message quotes the whole pattern: keep only why it failed
    throw invalidValue(option, value, (err as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, ''));
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
    exitNow(code);
  }

  /** Also ends after `seconds`, if given (-d/--duration, a count of intervals). */
  endOn(seconds?: number): void {
    if (seconds !== undefined) setTimeout(() => this.end(0), seconds * 1000);
  }
}

/** Prints the one line a failure deserves; returns its exit status. */
function reportFailure(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`${toolName}: ${oneLine(err.message)} (see '${toolName} --help')\n`);
    return err.exitCode;
  }
  if (err instanceof RuntimeError) {
    process.stderr.write(`${toolName}: ${oneLine(err.message)}\n`);
    return err.exitCode;
  }
  if (err instanceof OutputClosed) return 0;
  const detail = process.env.EBPF_TOOLS_DEBUG ? (err as Error).stack : (err as Error).message;
  process.stderr.write(`${toolName}: internal error: ${detail}\n`);
  return 1;
}

/** Runs a tool's main(): a thrown error becomes its one line and exit status. */
export function runMain(tool: string, main: () => void | Promise<void>): Promise<void> {
  toolName = tool;
  return Promise.resolve()
    .then(main)
    .catch((err: unknown) => exitNow(reportFailure(err)));
}
