// The two kinds of failure a tool reports, each with its exit status:
// a user's mistake (bad option, unknown disk) exits 2, a runtime failure
// (not root, no BTF, libbpf missing, load refused) exits 1. Both print one
// line, never a stack trace.
import { escapeText } from './escape.js';

export class UsageError extends Error {
  readonly exitCode = 2;
}

export class RuntimeError extends Error {
  readonly exitCode = 1;
}

/** How much of a value a message quotes: enough to recognise it, never a screenful. */
const QUOTED_CHARS = 64;

/** A value the user gave, quoted for a one-line message: escaped, and cut if long. */
export function quoted(value: unknown): string {
  const chars = [...String(value)];
  const shown = escapeText(Buffer.from(chars.slice(0, QUOTED_CHARS).join('')));
  return `'${shown}${chars.length > QUOTED_CHARS ? '...' : ''}'`;
}

/** The usage error for a value an option (or positional) cannot take. */
export function invalidValue(option: string, value: unknown, reason: string): UsageError {
  return new UsageError(`invalid ${option} ${quoted(value)}: ${reason}`);
}

/** A message made safe for one terminal line: control characters escaped. */
export function oneLine(message: string): string {
  return message.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => (c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}
