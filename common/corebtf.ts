// The kernel's BTF cut down to what one object's CO-RE relocations can look
// at, handed to libbpf as its btf_custom_path (what `bpftool gen
// min_core_btf` makes in C). Without it, every load has libbpf read and
// parse the kernel's whole BTF (5 MB, ~15 ms) and search all of its types
// for each struct relocated (~0.6 ms each); against a few hundred types,
// relocating takes well under a millisecond. libbpf still reads the
// kernel's BTF where a program needs it to attach (tp_btf, fentry).
//
// What is kept: for each type a relocation starts from (listed in the
// object's .BTF.ext), the kernel's types of that name and its ___flavours,
// with everything they hold (members, array elements, typedef targets,
// function prototypes); behind a pointer, a struct or union keeps only its
// name, kind and size, which is all libbpf compares there (relo_core.c: a
// pointer's target matches by kind and name alone). Where a relocation's
// type is in no type of vmlinux but a module's BTF has its name, libbpf
// would look for it in modules: then nothing is cut, and libbpf does it all.
// Making the cut walks the kernel's BTF (~15 ms), so it is made once a boot
// for each object file, and kept in the runtime directory. User space reads
// the few kernel types it needs (kernelTypes) from a cut too.
import { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { Btf, extraWords, Kind, type RawType } from './btf.js';
import { kernelBtf } from './kernelbtf.js';
import { currentBoot, runtimeDirectory, safeRuntimeDirectory } from './refusedplans.js';

/** Set (non-empty): libbpf relocates against the kernel's whole BTF, as without this module (for testing). */
export const FULL_BTF_VARIABLE = 'EBPF_TOOLS_FULL_KERNEL_BTF';

const BTF_MAGIC = 0xeb9f;
const MODULE_BTF_DIR = '/sys/kernel/btf';

/** The sections of an ELF64 little-endian file (a BPF object), by name. */
export function elfSections(file: Uint8Array): Map<string, Uint8Array> {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (view.getUint32(0) !== 0x7f454c46 || file[4] !== 2 || file[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
  const sectionHeaders = Number(view.getBigUint64(0x28, true));
  const entrySize = view.getUint16(0x3a, true);
  const count = view.getUint16(0x3c, true);
  const header = (i: number) => {
    const at = sectionHeaders + i * entrySize;
    const offset = Number(view.getBigUint64(at + 0x18, true));
    return { name: view.getUint32(at, true), bytes: file.subarray(offset, offset + Number(view.getBigUint64(at + 0x20, true))) };
  };
  const names = header(view.getUint16(0x3e, true)).bytes;
  const sections = new Map<string, Uint8Array>();
  for (let i = 1; i < count; i++) {
    const { name, bytes } = header(i);
    sections.set(Buffer.from(names.subarray(name, names.indexOf(0, name))).toString(), bytes);
  }
  return sections;
}

/** The local type ids the CO-RE relocations of a .BTF.ext section start from. */
export function relocationRoots(btfExt: Uint8Array): Set<number> {
  const view = new DataView(btfExt.buffer, btfExt.byteOffset, btfExt.byteLength);
  if (view.getUint16(0, true) !== BTF_MAGIC) throw new Error('not a .BTF.ext section (bad magic)');
  const headerLength = view.getUint32(4, true);
  const roots = new Set<number>();
  if (headerLength < 32) return roots; // no CO-RE relocations (clang before 12)
  const start = headerLength + view.getUint32(24, true);
  const end = start + view.getUint32(28, true);
  if (end <= start) return roots;
  const recordSize = view.getUint32(start, true);
  for (let at = start + 4; at < end;) {
    const records = view.getUint32(at + 4, true);
    at += 8;
    for (let i = 0; i < records; i++, at += recordSize) roots.add(view.getUint32(at + 4, true));
  }
  return roots;
}

/** A name as libbpf matches it: without a ___flavour suffix. */
const essential = (name: string) => name.replace(/___.*$/, '');

/** The kernel type ids a type refers to, and where in its words (-1: its size-or-type word). */
function references(t: RawType): number[] {
  switch (t.kind) {
    case Kind.Ptr: case Kind.Typedef: case Kind.Volatile: case Kind.Const: case Kind.Restrict:
    case Kind.Func: case Kind.Var: case Kind.TypeTag: case Kind.DeclTag:
      return [-1];
    case Kind.FuncProto:
      return [-1, ...Array.from({ length: t.vlen }, (_, i) => 2 * i + 1)];
    case Kind.Array:
      return [0, 1];
    case Kind.Struct: case Kind.Union:
      return Array.from({ length: t.vlen }, (_, i) => 3 * i + 1);
    case Kind.Datasec:
      return Array.from({ length: t.vlen }, (_, i) => 3 * i);
    default:
      return [];
  }
}

/** Where a type's words hold names (string offsets). */
function nameWords(t: RawType): number[] {
  switch (t.kind) {
    case Kind.Struct: case Kind.Union: case Kind.Enum64:
      return Array.from({ length: t.vlen }, (_, i) => 3 * i);
    case Kind.Enum: case Kind.FuncProto:
      return Array.from({ length: t.vlen }, (_, i) => 2 * i);
    default:
      return [];
  }
}

const referenced = (t: RawType, word: number) => (word < 0 ? t.sizeOrType : t.extra[word]);

/** Writes kernel types out as a new BTF, renumbered, with a string table of their names only. */
class BtfWriter {
  private readonly words: number[] = [];
  private readonly strings: string[] = [''];
  private readonly stringOffsets = new Map<string, number>([['', 0]]);
  private stringLength = 1;

  constructor(private readonly kernel: Btf) {}

  private string(offset: number): number {
    const s = this.kernel.stringAt(offset);
    let at = this.stringOffsets.get(s);
    if (at === undefined) {
      at = this.stringLength;
      this.stringOffsets.set(s, at);
      this.strings.push(s);
      this.stringLength += Buffer.byteLength(s) + 1;
    }
    return at;
  }

  /** Appends kernel type `t` with its references renumbered by `newId`; a stub keeps only name, kind and size. */
  add(t: RawType, newId: (kernelId: number) => number, stub = false): void {
    const vlen = stub ? 0 : t.vlen;
    const extra = stub ? [] : [...t.extra];
    let sizeOrType = t.sizeOrType;
    if (!stub) {
      for (const w of nameWords(t)) extra[w] = this.string(extra[w]);
      for (const w of references(t)) {
        if (w < 0) sizeOrType = newId(sizeOrType);
        else extra[w] = newId(extra[w]);
      }
    }
    if (extra.length !== extraWords(t.kind, vlen)) throw new Error(`BTF type of kind ${t.kind} has ${extra.length} words`);
    this.words.push(this.string(t.nameOffset), (t.kindFlag ? 1 << 31 : 0) | (t.kind << 24) | vlen, sizeOrType, ...extra);
  }

  bytes(): Uint8Array {
    const types = new Uint32Array(this.words);
    const strings = Buffer.from(`${this.strings.join('\0')}\0`);
    const out = new Uint8Array(24 + types.byteLength + strings.length);
    const view = new DataView(out.buffer);
    view.setUint16(0, BTF_MAGIC, true);
    view.setUint8(2, 1); // version
    view.setUint32(4, 24, true); // header length
    view.setUint32(8, 0, true); // types at
    view.setUint32(12, types.byteLength, true);
    view.setUint32(16, types.byteLength, true); // strings at
    view.setUint32(20, strings.length, true);
    out.set(new Uint8Array(types.buffer), 24);
    out.set(strings, 24 + types.byteLength);
    return out;
  }
}

/** The names (essential: without ___flavours) of the types the CO-RE relocations of `object` (a .bpf.o's bytes) start from. */
export function relocationNames(object: Uint8Array): Set<string> {
  const sections = elfSections(object);
  const localBtf = sections.get('.BTF');
  const ext = sections.get('.BTF.ext');
  const names = new Set<string>();
  if (!localBtf || !ext) return names;
  const local = new Btf(localBtf);
  for (const id of relocationRoots(ext)) {
    const name = local.nameOf(id);
    if (name) names.add(essential(name)); // libbpf refuses anonymous ones itself
  }
  return names;
}

/**
 * The part of `kernel` that relocations from types of these `names` can
 * look at, as raw BTF; undefined where libbpf must see more (a type named
 * in no type of the kernel's, but in a module's BTF).
 */
export function minimalCoreBtf(names: Set<string>, kernel: Btf): Uint8Array | undefined {
  const candidates = kernel.typesNamed(names);
  const missing = [...candidates].filter(([, ids]) => ids.length === 0).map(([name]) => name);
  if (missing.length > 0 && moduleBtfNames(missing)) return undefined;

  // Everything the candidates hold, up to pointers; then, behind pointers, the rest.
  const full = new Set<number>();
  const behindPointers: number[] = [];
  const pending = [...candidates.values()].flat();
  while (pending.length > 0) {
    const id = pending.pop() as number;
    if (id === 0 || full.has(id)) continue;
    full.add(id);
    const t = kernel.type(id);
    for (const w of references(t)) (t.kind === Kind.Ptr ? behindPointers : pending).push(referenced(t, w));
  }
  const pointerOnly = new Set<number>();
  while (behindPointers.length > 0) {
    const id = behindPointers.pop() as number;
    if (id === 0 || full.has(id) || pointerOnly.has(id)) continue;
    pointerOnly.add(id);
    const t = kernel.type(id);
    if (t.kind === Kind.Struct || t.kind === Kind.Union) continue;
    for (const w of references(t)) behindPointers.push(referenced(t, w));
  }

  const order = [...full, ...pointerOnly].sort((a, b) => a - b);
  const renumbered = new Map<number, number>(order.map((id, i) => [id, i + 1]));
  const newId = (id: number) => (id === 0 ? 0 : (renumbered.get(id) as number));
  const writer = new BtfWriter(kernel);
  for (const id of order) {
    const t = kernel.type(id);
    writer.add(t, newId, pointerOnly.has(id) && (t.kind === Kind.Struct || t.kind === Kind.Union));
  }
  return writer.bytes();
}

/** The module BTFs loaded: a cut made while other modules were loaded may have been made differently. */
function moduleBtfs(): string[] {
  try {
    return readdirSync(MODULE_BTF_DIR).filter((m) => m !== 'vmlinux').sort();
  } catch {
    return [];
  }
}

/** Whether a module's BTF has one of `names` in its strings (then libbpf may find a type there). */
function moduleBtfNames(names: string[]): boolean {
  for (const module of moduleBtfs()) {
    let strings: Buffer;
    try {
      strings = readFileSync(`${MODULE_BTF_DIR}/${module}`);
    } catch {
      continue; // unloaded meanwhile
    }
    if (names.some((n) => strings.includes(`\0${n}\0`) || strings.includes(`\0${n}___`))) return true;
  }
  return false;
}

/** Bumped whenever what minimalCoreBtf() keeps changes, so that no cut of an earlier version is used. */
const CUT_VERSION = 1;

/** Two 32-bit FNV-1a hashes of `text` (of its bytes, and of them backwards), as 16 hex digits: names a cache file, no defence (the directory is). */
function fileHash(text: string): string {
  const bytes = Buffer.from(text);
  let forward = 0x811c9dc5;
  let backward = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    forward = Math.imul(forward ^ bytes[i], 0x01000193);
    backward = Math.imul(backward ^ bytes[bytes.length - 1 - i], 0x01000193);
  }
  return [forward, backward].map((h) => (h >>> 0).toString(16).padStart(8, '0')).join('');
}

/**
 * The file libbpf is to relocate the object at `objectPath` against (see
 * cutFile); undefined to let libbpf use the kernel's own (asked by
 * EBPF_TOOLS_FULL_KERNEL_BTF, or no cut: only slower). The cut is named by
 * the object's file (its path, inode, size and time), not by the names its
 * relocations start from, so that a start finds it without reading them
 * (~0.8 ms of a start, measured); a package updated within the boot makes it again.
 */
export function coreBtfPath(
  objectPath: string, kernel: () => Btf = kernelBtf,
  names: () => Set<string> = () => relocationNames(readFileSync(objectPath)),
): string | undefined {
  if (process.env[FULL_BTF_VARIABLE]) return undefined;
  let object;
  try {
    object = statSync(objectPath);
  } catch {
    return undefined; // libbpf's open says what is wrong with it
  }
  const key = `object ${objectPath} ${object.dev}:${object.ino} ${object.size} ${object.mtimeMs}`;
  // read from the file here: libbpf takes the cut's path when it opens the object, before its own parse
  return cutFile(key, names, kernel);
}

/**
 * The kernel's types of these names and what they hold, as user space
 * reads them (biosnoop's request flag enums): from their cut where there is
 * one, so that a start reads a few hundred bytes, not a walk of the kernel's
 * whole BTF; else from the whole.
 */
export function kernelTypes(names: string[], kernel: () => Btf = kernelBtf): Btf {
  const file = cutFile(`types ${[...names].sort().join(' ')}`, () => new Set(names), kernel);
  return file ? new Btf(readFileSync(file)) : kernel();
}

/**
 * The file of the kernel's BTF cut to the `names` of what `key` names: made
 * on the first start of this boot that asks for it, and kept in our runtime
 * directory for the next ones; undefined where there are no names, a module
 * may have one of them (libbpf would look there) or there is no safe place
 * to keep it.
 */
function cutFile(key: string, names: () => Set<string>, kernel: () => Btf): string | undefined {
  const uid = process.getuid?.() ?? -1;
  const dir = runtimeDirectory(uid);
  const boot = currentBoot();
  if (!dir || !boot) return undefined;
  const file = `${dir}/core-btf-${fileHash([CUT_VERSION, boot.id, boot.kernel, moduleBtfs().join(' '), key].join('\n'))}.btf`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!safeRuntimeDirectory(dir, uid)) return undefined;
    const cached = cachedCut(file, uid);
    if (cached !== undefined) return cached ? file : undefined;
    const wanted = names();
    const btf = wanted.size === 0 ? undefined : minimalCoreBtf(wanted, kernel());
    // written whole under another name, then renamed over: a reader sees all of it or none
    const temporary = `${file}.${process.pid}`;
    writeFileSync(temporary, btf ?? new Uint8Array(), { mode: 0o600 });
    renameSync(temporary, file);
    return btf ? file : undefined;
  } catch {
    return undefined; // a read-only or full /run: the kernel's whole BTF is read
  }
}

/** Whether the cut in `file` is to be used (false: an empty file, libbpf must use the kernel's), or undefined if there is none of ours. */
function cachedCut(file: string, uid: number): boolean | undefined {
  let s;
  try {
    s = lstatSync(file);
  } catch {
    return undefined;
  }
  if (!s.isFile() || s.uid !== uid || (s.mode & 0o022) !== 0) return undefined;
  return s.size > 0;
}
