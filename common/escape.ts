// Strings from the kernel (comm, argv, paths) are bytes chosen by whoever
// runs the traced program. Human output shows them on one line with every
// control character, terminal escape, invisible formatting character and
// invalid UTF-8 byte written as a visible escape; JSON keeps them exactly.

/** Code points shown escaped although valid: C1 controls, bidi and other invisible formatting. */
const HIDDEN_CODE_POINTS = '\u0080-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff';
const HIDDEN_CODE_POINT = new RegExp(`[${HIDDEN_CODE_POINTS}]`);
const HIDDEN_CODE_POINTS_ALL = new RegExp(`[${HIDDEN_CODE_POINTS}]`, 'g');

function isHiddenCodePoint(cp: number): boolean {
  return cp >= 0x80 && cp <= 0xfeff && HIDDEN_CODE_POINT.test(String.fromCharCode(cp));
}

/**
 * JSON.stringify, safe for a terminal: JSON escapes the C0 controls but
 * leaves C1 controls (0x9b is CSI on some terminals) and invisible
 * formatting (bidi overrides) raw; those are written as \uXXXX, which
 * parses back to the same string.
 */
export function terminalSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(HIDDEN_CODE_POINTS_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Decodes one UTF-8 sequence at `i`; returns [codePoint, length], or null if
 * the bytes there are not a valid, shortest-form sequence of a scalar value.
 */
function decodeUtf8At(bytes: Uint8Array, i: number): [number, number] | null {
  const b0 = bytes[i];
  let length: number;
  let cp: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) [length, cp, min] = [2, b0 & 0x1f, 0x80];
  else if (b0 >= 0xe0 && b0 <= 0xef) [length, cp, min] = [3, b0 & 0x0f, 0x800];
  else if (b0 >= 0xf0 && b0 <= 0xf4) [length, cp, min] = [4, b0 & 0x07, 0x10000];
  else return null;
  if (i + length > bytes.length) return null;
  for (let k = 1; k < length; k++) {
    const b = bytes[i + k];
    if ((b & 0xc0) !== 0x80) return null;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
  return [cp, length];
}

const NAMED_ESCAPES: Record<number, string> = { 0x09: '\\t', 0x0a: '\\n', 0x0d: '\\r', 0x5c: '\\\\' };

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

/** Whether bytes[start, end) is printable ASCII without a backslash: shown as it is. */
export function isPlainAscii(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
  for (let i = start; i < end; i++) {
    const b = bytes[i];
    if (b < 0x20 || b > 0x7e || b === 0x5c) return false;
  }
  return true;
}

/** Whether bytes[start, end) is ASCII: the same string whether decoded as UTF-8 or Latin-1. */
function isAscii(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
  for (let i = start; i < end; i++) if (bytes[i] >= 0x80) return false;
  return true;
}

/**
 * Text safe for a terminal: printable ASCII and printable UTF-8 as they are;
 * backslash as \\; \t \n \r; other controls, DEL, hidden code points as
 * \xHH or \u{HHHH}; bytes that are not valid UTF-8 as \xHH.
 */
export function escapeText(bytes: Uint8Array): string {
  if (isPlainAscii(bytes)) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  let out = '';
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    if (b >= 0x20 && b < 0x7f && b !== 0x5c) {
      out += String.fromCharCode(b);
      i++;
    } else if (b < 0x80) {
      out += NAMED_ESCAPES[b] ?? `\\x${hex2(b)}`;
      i++;
    } else {
      const decoded = decodeUtf8At(bytes, i);
      if (!decoded) {
        out += `\\x${hex2(b)}`;
        i++;
      } else {
        const [cp, length] = decoded;
        out += isHiddenCodePoint(cp) ? `\\u{${cp.toString(16).padStart(4, '0')}}` : String.fromCodePoint(cp);
        i += length;
      }
    }
  }
  return out;
}

/**
 * A JS string that JSON.stringify turns into the exact bytes: valid UTF-8 is
 * decoded; each byte that is not is mapped to the lone surrogate U+DC80+byte
 * (Python's "surrogateescape"), which JSON writes as \udcXX.
 */
export function losslessString(bytes: Uint8Array): string {
  if (isAscii(bytes)) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  let out = '';
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i];
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i++;
      continue;
    }
    const decoded = decodeUtf8At(bytes, i);
    if (decoded) {
      out += String.fromCodePoint(decoded[0]);
      i += decoded[1];
    } else {
      out += String.fromCharCode(0xdc00 + b);
      i++;
    }
  }
  return out;
}

/** The bytes a losslessString() stands for (the inverse, for tests and consumers). */
export function bytesOfLosslessString(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xdc80 && unit <= 0xdcff) out.push(unit - 0xdc00);
    else {
      const cp = text.codePointAt(i)!;
      if (cp > 0xffff) i++;
      out.push(...Buffer.from(String.fromCodePoint(cp)));
    }
  }
  return Uint8Array.from(out);
}

// Spans: a string the kernel wrote, read where it lies (a ring buffer
// record) without a copy; the text is made only where it is not plain ASCII.

/** Where the NUL-terminated string at bytes[start] ends, at most at `limit`. */
export function stringEnd(bytes: Uint8Array, start: number, limit: number): number {
  let end = start;
  while (end < limit && bytes[end] !== 0) end++;
  return end;
}

/** A span of bytes as terminal text: as is when plain ASCII (nearly always), else escaped. */
export function terminalText(bytes: Buffer, start: number, end: number): string {
  return isPlainAscii(bytes, start, end) ? bytes.toString('latin1', start, end) : escapeText(bytes.subarray(start, end));
}

/** A span of bytes as a JSON string literal with its exact bytes (see losslessString). */
export function jsonText(bytes: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    const b = bytes[i];
    if (b < 0x20 || b > 0x7e || b === 0x22 || b === 0x5c) return terminalSafeJson(losslessString(bytes.subarray(start, end)));
  }
  return `"${bytes.toString('latin1', start, end)}"`;
}

/** How a span of bytes becomes text (terminalText, or losslessText for JSON). */
export type SpanText = (bytes: Buffer, start: number, end: number) => string;

/** A span of bytes as the string JSON.stringify turns into exactly those bytes (see losslessString). */
export function losslessText(bytes: Buffer, start: number, end: number): string {
  return isAscii(bytes, start, end) ? bytes.toString('latin1', start, end) : losslessString(bytes.subarray(start, end));
}
