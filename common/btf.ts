// A reader for BPF Type Format data, so that user space takes every struct
// layout and every `const volatile` variable's place from the object's own
// BTF instead of hand-counted offsets (the role bpf2go's generated bindings
// play for cilium/ebpf).

const BTF_MAGIC = 0xeb9f;

enum Kind {
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

interface RawType {
  kind: Kind;
  name: string;
  kindFlag: boolean;
  /** size for sized kinds, referenced type id for the rest */
  sizeOrType: number;
  vlen: number;
  /** kind-specific data words following the common header */
  extra: number[];
}

export class Btf {
  private readonly types: RawType[] = [];
  private readonly stringAt: (offset: number) => string;

  constructor(data: Uint8Array) {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (view.getUint16(0, true) !== BTF_MAGIC) throw new Error('not BTF data (bad magic)');
    const headerLength = view.getUint32(4, true);
    const typeOffset = headerLength + view.getUint32(8, true);
    const typeLength = view.getUint32(12, true);
    const stringOffset = headerLength + view.getUint32(16, true);
    const stringLength = view.getUint32(20, true);
    const strings = data.subarray(stringOffset, stringOffset + stringLength);
    const decoder = new TextDecoder();
    const stringAt = (offset: number): string => {
      const end = strings.indexOf(0, offset);
      return decoder.decode(strings.subarray(offset, end < 0 ? undefined : end));
    };

    this.types.push({ kind: 0 as Kind, name: 'void', kindFlag: false, sizeOrType: 0, vlen: 0, extra: [] });
    let pos = typeOffset;
    const end = typeOffset + typeLength;
    while (pos < end) {
      const nameOffset = view.getUint32(pos, true);
      const info = view.getUint32(pos + 4, true);
      const sizeOrType = view.getUint32(pos + 8, true);
      pos += 12;
      const kind = ((info >>> 24) & 0x1f) as Kind;
      const vlen = info & 0xffff;
      const words = extraWords(kind, vlen);
      const extra: number[] = [];
      for (let i = 0; i < words; i++) extra.push(view.getUint32(pos + 4 * i, true));
      pos += 4 * words;
      this.types.push({ kind, name: stringAt(nameOffset), kindFlag: info >>> 31 === 1, sizeOrType, vlen, extra });
    }
    this.stringAt = stringAt;
  }

  private findId(kind: Kind, name: string): number {
    const id = this.types.findIndex((t) => t.kind === kind && t.name === name);
    if (id < 0) throw new Error(`BTF has no ${Kind[kind].toLowerCase()} named ${name}`);
    return id;
  }

  /** Follows typedefs and qualifiers to the type that defines the layout. */
  resolve(id: number): ResolvedType {
    let t = this.types[id];
    while (
      t.kind === Kind.Typedef || t.kind === Kind.Volatile || t.kind === Kind.Const ||
      t.kind === Kind.Restrict || t.kind === Kind.TypeTag
    ) {
      t = this.types[t.sizeOrType];
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
    const t = this.types[this.findId(Kind.Struct, name)];
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
    const t = this.types[this.findId(Kind.Datasec, name)];
    const vars = new Map<string, Field>();
    for (let i = 0; i < t.vlen; i++) {
      const [varId, offset] = t.extra.slice(3 * i, 3 * i + 2);
      const v = this.types[varId];
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
    const t = this.types.find((u) => (u.kind === Kind.Enum || u.kind === Kind.Enum64) && u.name === name);
    if (!t) return undefined;
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

function extraWords(kind: Kind, vlen: number): number {
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
