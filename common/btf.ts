// A reader for BPF Type Format data, so that user space takes every struct
// layout and every `const volatile` variable's place from the object's own
// BTF instead of hand-counted offsets (the role bpf2go's generated bindings
// play for cilium/ebpf).

const BTF_MAGIC = 0xeb9f;
/** struct btf_header: magic, version, flags, hdr_len, then the offset and length of the types and of the strings */
export const BTF_HEADER_SIZE = 24;

export enum Kind {
  Int = 1, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const, Restrict,
  Func, FuncProto, Var, Datasec, Float, DeclTag, TypeTag, Enum64,
}

const INT_SIGNED = 1;
const INT_BOOL = 4;

export type ResolvedType =
  | { kind: 'int'; size: number; signed: boolean; bool: boolean }
  | { kind: 'array'; size: number; length: number; element: ResolvedType }
  | { kind: 'struct' | 'union'; size: number; name: string }
  | { kind: 'ptr'; size: number }
  | { kind: 'other'; size: number };

export interface Field {
  name: string;
  /** byte offset within the enclosing struct (bitfields are refused) */
  offset: number;
  type: ResolvedType;
}

export interface StructLayout {
  name: string;
  size: number;
  fields: Map<string, Field>;
}

export interface RawType {
  kind: Kind;
  name: string;
  /** where the name is in the string table */
  nameOffset: number;
  kindFlag: boolean;
  /** size for sized kinds, referenced type id for the rest */
  sizeOrType: number;
  vlen: number;
  /** kind-specific data words following the common header */
  extra: number[];
}

/** What a module's BTF is split from: the kernel's, as its types and strings are numbered. */
export interface SplitBase {
  /** type ids of the kernel's BTF, void's included */
  typeCount: number;
  /** bytes of its string table */
  stringLength: number;
  /** the kernel's BTF itself (read only where a name must be looked for in its strings) */
  btf: () => Btf;
}

const VOID: RawType = { kind: 0 as Kind, name: 'void', nameOffset: 0, kindFlag: false, sizeOrType: 0, vlen: 0, extra: [] };

/**
 * BTF data, read on demand: where each type starts is found on the first
 * look-up (a walk over the headers: ~10 ms for the kernel's 5 MB), and a
 * type is decoded when asked for, so that the kernel's BTF costs nothing
 * until a type is looked up (a search of its names does not walk it), and
 * looking up one enum does not decode its hundred thousand other types.
 */
export class Btf {
  private readonly view: DataView;
  private readonly strings: Uint8Array;
  private readonly typeOffset: number;
  private readonly typeLength: number;
  private starts?: Uint32Array;
  private readonly decoded = new Map<number, RawType>();
  private readonly decoder = new TextDecoder();

  constructor(data: Uint8Array) {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const { typeOffset, typeLength, stringOffset, stringLength } = btfHeader(data);
    this.view = view;
    this.strings = data.subarray(stringOffset, stringOffset + stringLength);
    this.typeOffset = typeOffset;
    this.typeLength = typeLength;
  }

  /** Where each type's header is in `view`, by type id (id 0, void, has none). */
  private get typeStarts(): Uint32Array {
    if (this.starts) return this.starts;
    // a type's header is at least 12 bytes: this bounds the count
    const starts = new Uint32Array(1 + Math.floor(this.typeLength / 12));
    let count = 1;
    const end = this.typeOffset + this.typeLength;
    for (let pos = this.typeOffset; pos < end; count++) {
      starts[count] = pos;
      const info = this.view.getUint32(pos + 4, true);
      pos += 12 + 4 * extraWords(((info >>> 24) & 0x1f) as Kind, info & 0xffff);
    }
    this.starts = starts.subarray(0, count);
    return this.starts;
  }

  stringAt(offset: number): string {
    const end = this.strings.indexOf(0, offset);
    return this.decoder.decode(this.strings.subarray(offset, end < 0 ? undefined : end));
  }

  /** A type's name, read without decoding the rest of it (a struct's members). */
  nameOf(id: number): string {
    return id === 0 ? VOID.name : this.stringAt(this.view.getUint32(this.typeStarts[id], true));
  }

  /** A type as it is stored: its kind, name and the words that follow its header. */
  type(id: number): RawType {
    if (id === 0) return VOID;
    let t = this.decoded.get(id);
    if (t) return t;
    const pos = this.typeStarts[id];
    const info = this.view.getUint32(pos + 4, true);
    const kind = ((info >>> 24) & 0x1f) as Kind;
    const vlen = info & 0xffff;
    const extra: number[] = [];
    for (let i = 0, words = extraWords(kind, vlen); i < words; i++) extra.push(this.view.getUint32(pos + 12 + 4 * i, true));
    const nameOffset = this.view.getUint32(pos, true);
    t = {
      kind, name: this.stringAt(nameOffset), nameOffset, kindFlag: info >>> 31 === 1,
      sizeOrType: this.view.getUint32(pos + 8, true), vlen, extra,
    };
    this.decoded.set(id, t);
    return t;
  }

  /**
   * The id of the first type of one of `kinds` named `name` (not a flavour
   * of it), or -1: the name is looked for in the string table (a native
   * search), then among the type headers by its offset, without a string
   * made for any other type (a start looks up several types of its object).
   */
  private find(kinds: Kind[], name: string): number {
    return this.findNamed(kinds, this.offsetsOf(name));
  }

  /** The first of this BTF's types of one of `kinds` whose name is at one of `offsets`, or -1. */
  private findNamed(kinds: Kind[], offsets: number[]): number {
    if (offsets.length === 0) return -1;
    const starts = this.typeStarts;
    for (let id = 1; id < starts.length; id++) {
      if (offsets.includes(this.view.getUint32(starts[id], true)) && kinds.includes(this.type(id).kind)) return id;
    }
    return -1;
  }

  /** Where `name` is in the string table (a native search): every offset it is at. */
  private offsetsOf(name: string): number[] {
    const strings = Buffer.from(this.strings.buffer, this.strings.byteOffset, this.strings.byteLength);
    // every string follows the NUL of the one before (the table starts with the empty string)
    const needle = Buffer.from(`\0${name}\0`);
    const offsets: number[] = [];
    for (let at = strings.indexOf(needle); at >= 0; at = strings.indexOf(needle, at + 1)) offsets.push(at + 1);
    return offsets;
  }

  /** How many type ids this BTF has, void's included (libbpf's btf__type_cnt()). */
  get typeCount(): number {
    return this.typeStarts.length;
  }

  /**
   * The id of function `name` in this BTF as the kernel numbers it, this
   * being a module's BTF split from `base` (the kernel's): its own types
   * are numbered after base's, its own strings after base's. -1 where it
   * has none.
   */
  splitFunctionId(name: string, base: SplitBase): number {
    let id = this.findNamed([Kind.Func], this.offsetsOf(name).map((o) => o + base.stringLength));
    // libbpf adds a string to a split BTF only where its base lacks it: the name may be one of base's
    if (id < 0) id = this.findNamed([Kind.Func], base.btf().offsetsOf(name));
    return id < 0 ? -1 : base.typeCount + id - 1;
  }

  /**
   * The ids of the types named `name` or a flavour of it (`name___x`, as
   * libbpf matches CO-RE candidates), for each name: one walk over the type
   * headers, where a name is only compared in full when its first four
   * bytes are those of a name asked for (a search of the string table for
   * each name would read its 3 MB every time).
   */
  typesNamed(names: Iterable<string>): Map<string, number[]> {
    const found = new Map<string, number[]>();
    const byPrefix = new Map<number, { name: Uint8Array; ids: number[] }[]>();
    const encoder = new TextEncoder();
    for (const name of names) {
      const ids: number[] = [];
      found.set(name, ids);
      const bytes = encoder.encode(name);
      // a flavour of a name shorter than four bytes starts with its underscores
      const prefixes = bytes.length >= 4 ? [bytes] : [bytes, encoder.encode(`${name}___`)];
      for (const p of prefixes) {
        const key = prefixKey(p, 0);
        byPrefix.set(key, [...(byPrefix.get(key) ?? []), { name: bytes, ids }]);
      }
    }
    const starts = this.typeStarts;
    for (let id = 1; id < starts.length; id++) {
      const nameOffset = this.view.getUint32(starts[id], true);
      if (nameOffset === 0) continue;
      for (const { name, ids } of byPrefix.get(prefixKey(this.strings, nameOffset)) ?? []) {
        if (this.nameOrFlavour(nameOffset, name) && ids.at(-1) !== id) ids.push(id);
      }
    }
    return found;
  }

  /** Whether the string at `offset` is `name` or `name___...`. */
  private nameOrFlavour(offset: number, name: Uint8Array): boolean {
    const s = this.strings;
    for (let i = 0; i < name.length; i++) if (s[offset + i] !== name[i]) return false;
    const next = s[offset + name.length];
    return next === 0 || (next === 0x5f && s[offset + name.length + 1] === 0x5f && s[offset + name.length + 2] === 0x5f);
  }

  private findId(kind: Kind, name: string): number {
    const id = this.find([kind], name);
    if (id < 0) throw new Error(`BTF has no ${Kind[kind].toLowerCase()} named ${name}`);
    return id;
  }

  /**
   * Whether the string table holds `name`: enough to tell whether the
   * kernel's BTF has a type or function of that name (a tracepoint's
   * btf_trace_<tp>, a function fentry can attach to).
   */
  hasName(name: string): boolean {
    return Buffer.from(this.strings.buffer, this.strings.byteOffset, this.strings.byteLength).includes(`\0${name}\0`);
  }

  /** Follows typedefs and qualifiers to the type that defines the layout. */
  resolve(id: number): ResolvedType {
    let t = this.type(id);
    while (
      t.kind === Kind.Typedef || t.kind === Kind.Volatile || t.kind === Kind.Const ||
      t.kind === Kind.Restrict || t.kind === Kind.TypeTag
    ) {
      t = this.type(t.sizeOrType);
    }
    switch (t.kind) {
      case Kind.Int:
        return {
          kind: 'int',
          size: t.sizeOrType,
          signed: ((t.extra[0] >>> 24) & 0xf & INT_SIGNED) !== 0,
          bool: ((t.extra[0] >>> 24) & 0xf & INT_BOOL) !== 0,
        };
      case Kind.Enum:
      case Kind.Enum64:
        return { kind: 'int', size: t.sizeOrType, signed: t.kindFlag, bool: false };
      case Kind.Ptr:
        return { kind: 'ptr', size: 8 };
      case Kind.Array: {
        const element = this.resolve(t.extra[0]);
        const length = t.extra[2];
        return { kind: 'array', size: element.size * length, length, element };
      }
      case Kind.Struct:
      case Kind.Union:
        return { kind: t.kind === Kind.Struct ? 'struct' : 'union', size: t.sizeOrType, name: t.name };
      default:
        return { kind: 'other', size: t.sizeOrType };
    }
  }

  /** The layout of `struct name`. */
  struct(name: string): StructLayout {
    return this.structAt(this.findId(Kind.Struct, name));
  }

  /** The layout of the struct that is type `id`. */
  structAt(id: number): StructLayout {
    const t = this.type(id);
    if (t.kind !== Kind.Struct) throw new Error(`BTF type ${id} is not a struct`);
    const name = this.nameOf(id);
    const fields = new Map<string, Field>();
    for (let i = 0; i < t.vlen; i++) {
      const [nameOffset, typeId, offsetWord] = t.extra.slice(3 * i, 3 * i + 3);
      const bitOffset = t.kindFlag ? offsetWord & 0xffffff : offsetWord;
      const bitfieldSize = t.kindFlag ? offsetWord >>> 24 : 0;
      const fieldName = this.stringAt(nameOffset);
      if (bitfieldSize !== 0 || bitOffset % 8 !== 0) throw new Error(`${name}.${fieldName} is a bitfield`);
      fields.set(fieldName, { name: fieldName, offset: bitOffset / 8, type: this.resolve(typeId) });
    }
    return { name, size: t.sizeOrType, fields };
  }

  /**
   * The variables of a data section (".rodata", ".bss") with their offsets,
   * as libbpf has laid them out (offsets are only final in BTF that libbpf
   * has finalized at open, not in the raw ELF section).
   */
  datasec(name: string): Map<string, Field> {
    const t = this.type(this.findId(Kind.Datasec, name));
    const vars = new Map<string, Field>();
    for (let i = 0; i < t.vlen; i++) {
      const [varId, offset] = t.extra.slice(3 * i, 3 * i + 2);
      const v = this.type(varId);
      vars.set(v.name, { name: v.name, offset, type: this.resolve(v.sizeOrType) });
    }
    return vars;
  }

  /**
   * The constants of `enum name` with their values, or undefined if there is
   * no such enum (read from the kernel's BTF: numbers that change between
   * kernels, such as block request flag bits).
   */
  enumerators(name: string): Map<string, number> | undefined {
    const id = this.find([Kind.Enum, Kind.Enum64], name);
    if (id < 0) return undefined;
    const t = this.type(id);
    const words = t.kind === Kind.Enum ? 2 : 3;
    const values = new Map<string, number>();
    for (let i = 0; i < t.vlen; i++) {
      const [nameOffset, low, high] = t.extra.slice(words * i, words * i + words);
      const value = t.kind === Kind.Enum64 ? low + high * 2 ** 32 : t.kindFlag ? low | 0 : low;
      values.set(this.stringAt(nameOffset), value);
    }
    return values;
  }
}

/** Where a BTF's types and strings are, from its header (the first BTF_HEADER_SIZE bytes are enough). */
export function btfHeader(data: Uint8Array): { typeOffset: number; typeLength: number; stringOffset: number; stringLength: number } {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.byteLength < BTF_HEADER_SIZE || view.getUint16(0, true) !== BTF_MAGIC) throw new Error('not BTF data (bad magic)');
  const headerLength = view.getUint32(4, true);
  return {
    typeOffset: headerLength + view.getUint32(8, true),
    typeLength: view.getUint32(12, true),
    stringOffset: headerLength + view.getUint32(16, true),
    stringLength: view.getUint32(20, true),
  };
}

/** The first four bytes of the string at `offset` (fewer where it is shorter), as a number. */
function prefixKey(bytes: Uint8Array, offset: number): number {
  let key = 0;
  for (let i = 0; i < 4; i++) {
    const b = bytes[offset + i];
    if (b === 0 || b === undefined) break;
    key |= b << (8 * i);
  }
  return key;
}

export function extraWords(kind: Kind, vlen: number): number {
  switch (kind) {
    case Kind.Int: return 1;
    case Kind.Array: return 3;
    case Kind.Struct: case Kind.Union: return 3 * vlen;
    case Kind.Enum: return 2 * vlen;
    case Kind.FuncProto: return 2 * vlen;
    case Kind.Var: return 1;
    case Kind.Datasec: return 3 * vlen;
    case Kind.DeclTag: return 1;
    case Kind.Enum64: return 3 * vlen;
    default: return 0;
  }
}
