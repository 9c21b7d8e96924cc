// Colour, only for people: on when stdout is a terminal, off in pipes and
// files (piped output is byte for byte the plain format), off with NO_COLOR,
// and FORCE_COLOR wins over both. JSON and CSV are never coloured: tools
// only paint their human column output.
//
// Whether stdout is a terminal is libc's isatty(1), not process.stdout.isTTY:
// Node makes the stream on first use, and a terminal's or a pipe's loads
// node:tty, node:net and the streams (~3.5 ms of a start) that the tools,
// which write with fs.writeSync, never use. For the same reason the bundles
// leave out chalk's own detection of the terminal (scripts/bundle.mjs):
// the level is always ours. chalk itself is imported only when something
// is painted (~0.9 ms of a start otherwise).
import type { ChalkInstance } from 'chalk';
import { libcCalls } from './native.js';

export type ColourLevel = 0 | 1 | 2 | 3;

export function colourLevel(env: NodeJS.ProcessEnv, stdoutIsTty: boolean): ColourLevel {
  const force = env.FORCE_COLOR;
  if (force !== undefined) {
    if (force === '' || force === 'true') return 1;
    if (force === 'false' || force === '0') return 0;
    const level = Number(force);
    if (level === 1 || level === 2 || level === 3) return level;
    return 1;
  }
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 0;
  if (!stdoutIsTty || env.TERM === 'dumb') return 0;
  return 1;
}

/** What tools paint: failures and errors, and the bars of histograms. */
export interface Paint {
  error(text: string): string;
  bar(text: string): string;
  header(text: string): string;
}

export const plain: Paint = { error: (s) => s, bar: (s) => s, header: (s) => s };

function painter(chalk: ChalkInstance): Paint {
  return { error: (s) => chalk.red(s), bar: (s) => chalk.cyan(s), header: (s) => chalk.bold(s) };
}

/** The paint for this process's stdout; plain unless colour is wanted and `enabled` (false for JSON/CSV). */
export async function stdoutPaint(enabled: boolean): Promise<Paint> {
  const level = enabled ? colourLevel(process.env, libcCalls.isatty(1) === 1) : 0;
  if (level === 0) return plain;
  const { Chalk } = await import('chalk');
  return painter(new Chalk({ level }));
}
