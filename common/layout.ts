// Typed views of the C structs a BPF object shares with user space. A tool
// declares the fields it reads and the kind it expects of each; the offsets
// come from the object's BTF, and a field whose BTF type does not match the
// declared kind is refused when the decoder is built, not misread later.
import type { Field, StructLayout } from './btf.js';

/** 'u64s': an array of u64 (user-space addresses, which stay below 2^53) */
export type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | 's32' | 's64' | 'bool' | 'chars' | 'u64s';
export type FieldSpec = Record<string, FieldKind>;

type ValueOf<K extends FieldKind> = K extends 'chars' ? Uint8Array : K extends 'bool' ? boolean : K extends 'u64s' ? number[] : number;
export type Decoded<S extends FieldSpec> = { -readonly [F in keyof S]: ValueOf<S[F]> };

export interface StructDecoder<S extends FieldSpec> {
  /** size of the C struct in bytes */
  readonly size: number;
  /** byte offset of each declared field */
  readonly offsets: { readonly [F in keyof S]: number };
  /** byte length of each declared field */
  readonly sizes: { readonly [F in keyof S]: number };
  /** Decodes one struct at `base`; strings are copied, so the result outlives the buffer. */
  decode(view: DataView, base: number): Decoded<S>;
}

const INT_KINDS: Record<Exclude<FieldKind, 'chars' | 'bool' | 'u64s'>, { size: number; signed: boolean }> = {
  u8: { size: 1, signed: false },
  u16: { size: 2, signed: false },
  u32: { size: 4, signed: false },
  u64: { size: 8, signed: false },
  s32: { size: 4, signed: true },
  s64: { size: 8, signed: true },
};

function checkField(layout: StructLayout, name: string, kind: FieldKind): Field {
  const field = layout.fields.get(name);
  if (!field) throw new Error(`struct ${layout.name} has no field ${name}`);
  const t = field.type;
  const mismatch = (): Error =>
    new Error(`struct ${layout.name}.${name} is not ${kind} in BTF (${JSON.stringify(t)})`);
  if (kind === 'chars') {
    if (t.kind !== 'array' || t.element.kind !== 'int' || t.element.size !== 1) throw mismatch();
  } else if (kind === 'u64s') {
    if (t.kind !== 'array' || t.element.kind !== 'int' || t.element.size !== 8 || t.element.signed) throw mismatch();
  } else if (kind === 'bool') {
    if (t.kind !== 'int' || t.size !== 1) throw mismatch();
  } else {
    const want = INT_KINDS[kind];
    // A signed field may be read as unsigned of the same size (ids are
    // declared as pid_t upstream) but an unsigned one never as signed.
    if (t.kind !== 'int' || t.size !== want.size || (want.signed && !t.signed)) throw mismatch();
  }
  return field;
}

type Reader = (view: DataView, base: number) => number | boolean | Uint8Array | number[];

function readerFor(kind: FieldKind, offset: number, size: number): Reader {
  switch (kind) {
    case 'u8': return (v, b) => v.getUint8(b + offset);
    case 'u16': return (v, b) => v.getUint16(b + offset, true);
    case 'u32': return (v, b) => v.getUint32(b + offset, true);
    case 's32': return (v, b) => v.getInt32(b + offset, true);
    case 'u64': return (v, b) => v.getUint32(b + offset, true) + v.getUint32(b + offset + 4, true) * 2 ** 32;
    case 's64': return (v, b) => v.getUint32(b + offset, true) + v.getInt32(b + offset + 4, true) * 2 ** 32;
    case 'bool': return (v, b) => v.getUint8(b + offset) !== 0;
    case 'chars': return (v, b) => cString(v, b + offset, size);
    case 'u64s': return (v, b) => Array.from({ length: size / 8 }, (_, i) => v.getUint32(b + offset + 8 * i, true) + v.getUint32(b + offset + 8 * i + 4, true) * 2 ** 32);
  }
}

/** The bytes of a NUL-terminated string stored in `size` bytes at `offset`, copied. */
export function cString(view: DataView, offset: number, size: number): Uint8Array {
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, size);
  const end = bytes.indexOf(0);
  return bytes.slice(0, end < 0 ? size : end);
}

export function structDecoder<S extends FieldSpec>(layout: StructLayout, spec: S): StructDecoder<S> {
  const offsets = {} as Record<keyof S, number>;
  const sizes = {} as Record<keyof S, number>;
  const readers: [keyof S, Reader][] = [];
  for (const name of Object.keys(spec) as (keyof S & string)[]) {
    const field = checkField(layout, name, spec[name]);
    offsets[name] = field.offset;
    sizes[name] = field.type.size;
    readers.push([name, readerFor(spec[name], field.offset, field.type.size)]);
  }
  return {
    size: layout.size,
    offsets,
    sizes,
    decode(view, base) {
      const out = {} as Record<keyof S, unknown>;
      for (const [name, read] of readers) out[name] = read(view, base);
      return out as Decoded<S>;
    },
  };
}
