// The names of functions in a running process, from its user-space return
// addresses: /proc/PID/maps says which file (and which offset of it) an
// address is in, and that file's ELF symbol tables (.symtab, else .dynsym)
// which function covers it. Files are read through /proc/PID/root, so a
// process in a container is looked up in its own file system. Tables are
// kept per file (path, device, inode and mtime), not per process.
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';

interface Mapping {
  start: number;
  end: number;
  offset: number;
  path: string;
}

/** One function: [value, value + size) in the file's virtual addresses. */
interface FunctionSymbol {
  value: number;
  size: number;
  name: string;
}

/** A file's functions sorted by address, and how its file offsets map to its virtual addresses (PT_LOAD). */
interface SymbolTable {
  functions: FunctionSymbol[];
  loads: { offset: number; vaddr: number; size: number }[];
}

const ELF_MAGIC = 0x464c457f; // "\x7fELF" read little-endian
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const PT_LOAD = 1;
const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
/** Symbol tables larger than this are not read (a stripped binary's are far smaller; a debug build's rarely this large). */
const MAX_TABLE_BYTES = 64 << 20;

function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buffer, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buffer : buffer.subarray(0, done);
}

const u64 = (b: Buffer, at: number): number => b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 2 ** 32;

/** The function symbols of a 64-bit little-endian ELF file, or undefined if it is not one. */
export function readSymbolTable(file: string): SymbolTable | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const header = readAt(fd, 0, 64);
    if (header.length < 64 || header.readUInt32LE(0) !== ELF_MAGIC || header[4] !== ELFCLASS64 || header[5] !== ELFDATA2LSB) return undefined;
    const phoff = u64(header, 32);
    const shoff = u64(header, 40);
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const shentsize = header.readUInt16LE(58);
    const shnum = header.readUInt16LE(60);
    const loads: SymbolTable['loads'] = [];
    const programHeaders = readAt(fd, phoff, phentsize * phnum);
    for (let i = 0; i + 1 <= phnum && (i + 1) * phentsize <= programHeaders.length; i++) {
      const ph = programHeaders.subarray(i * phentsize);
      if (ph.readUInt32LE(0) === PT_LOAD) loads.push({ offset: u64(ph, 8), vaddr: u64(ph, 16), size: u64(ph, 32) });
    }
    const sections = readAt(fd, shoff, shentsize * shnum);
    const section = (i: number) => {
      const sh = sections.subarray(i * shentsize);
      return { type: sh.readUInt32LE(4), offset: u64(sh, 24), size: u64(sh, 32), link: sh.readUInt32LE(40), entsize: u64(sh, 56) };
    };
    const all = Array.from({ length: Math.floor(sections.length / Math.max(shentsize, 1)) }, (_, i) => section(i));
    // .symtab has every function; a stripped file has only .dynsym, the exported ones
    const table = all.find((s) => s.type === SHT_SYMTAB) ?? all.find((s) => s.type === SHT_DYNSYM);
    const functions: FunctionSymbol[] = [];
    if (table && table.entsize >= 24 && table.size <= MAX_TABLE_BYTES && all[table.link] && all[table.link].size <= MAX_TABLE_BYTES) {
      const symbols = readAt(fd, table.offset, table.size);
      const strings = readAt(fd, all[table.link].offset, all[table.link].size);
      for (let at = 0; at + 24 <= symbols.length; at += table.entsize) {
        const type = symbols[at + 4] & 0xf;
        const value = u64(symbols, at + 8);
        // an undefined symbol (section 0) is a reference to another file's function, not one here
        if ((type !== STT_FUNC && type !== STT_GNU_IFUNC) || value === 0 || symbols.readUInt16LE(at + 6) === 0) continue;
        const nameAt = symbols.readUInt32LE(at);
        const nameEnd = strings.indexOf(0, nameAt);
        functions.push({ value, size: u64(symbols, at + 16), name: strings.toString('latin1', nameAt, nameEnd < 0 ? strings.length : nameEnd) });
      }
    }
    functions.sort((a, b) => a.value - b.value || b.size - a.size);
    return { functions, loads };
  } catch {
    return undefined; // truncated or malformed: no names from it
  } finally {
    closeSync(fd);
  }
}

/** The function covering `vaddr`: the last one starting at or before it whose size reaches it (a size 0 symbol covers up to the next). */
export function functionAt(table: SymbolTable, vaddr: number): FunctionSymbol | undefined {
  const f = table.functions;
  let lo = 0;
  let hi = f.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (f[mid].value <= vaddr) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  for (let i = found; i >= 0 && i > found - 8; i--) {
    const s = f[i];
    if (vaddr < s.value + s.size || (s.size === 0 && i === found)) return s;
  }
  return undefined;
}

/** The executable mappings of /proc/PID/maps, or [] when the process is gone. */
export function executableMappings(pid: number, maps?: string): Mapping[] {
  let text = maps;
  if (text === undefined) {
    try {
      text = readFileSync(`/proc/${pid}/maps`, 'latin1');
    } catch {
      return [];
    }
  }
  const out: Mapping[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ \d+ +(\/.*)$/.exec(line);
    if (m && m[3][2] === 'x') out.push({ start: parseInt(m[1], 16), end: parseInt(m[2], 16), offset: parseInt(m[4], 16), path: m[5] });
  }
  return out;
}

/** Names return addresses of processes: the function (as libbpf-tools), else "file+0xOFFSET", else the address. */
export class Symbolizer {
  private readonly tables = new Map<string, SymbolTable | undefined>();

  /** Each address's name; addresses of 0 (no frame) are left out. */
  names(pid: number, addresses: number[]): string[] {
    const wanted = addresses.filter((a) => a !== 0);
    if (wanted.length === 0) return [];
    // its root opened first: a process that exits after its maps are read
    // still has its files named through it (a guest's 6.1 run read the maps
    // of an exiting process, then found its /proc/PID/root gone)
    let root: number | undefined;
    try {
      root = openSync(`/proc/${pid}/root`, 'r');
    } catch {
      // gone already: its maps are too
    }
    try {
      const mappings = executableMappings(pid);
      const rootPath = root === undefined ? `/proc/${pid}/root` : `/proc/self/fd/${root}`;
      return wanted.map((address) => this.name(rootPath, mappings, address));
    } finally {
      if (root !== undefined) closeSync(root);
    }
  }

  private name(rootPath: string, mappings: Mapping[], address: number): string {
    const mapping = mappings.find((m) => address >= m.start && address < m.end);
    if (!mapping) return `0x${address.toString(16)}`;
    const fileOffset = address - mapping.start + mapping.offset;
    const table = this.table(rootPath, mapping.path);
    const load = table?.loads.find((l) => fileOffset >= l.offset && fileOffset < l.offset + l.size);
    if (table && load) {
      const vaddr = fileOffset - load.offset + load.vaddr;
      const symbol = functionAt(table, vaddr);
      if (symbol) return symbol.name;
    }
    return `${mapping.path}+0x${fileOffset.toString(16)}`;
  }

  private table(rootPath: string, path: string): SymbolTable | undefined {
    const file = `${rootPath}${path}`;
    let key: string;
    try {
      const fd = openSync(file, 'r');
      try {
        const st = fstatSync(fd);
        key = `${st.dev}:${st.ino}:${st.mtimeMs}:${path}`;
      } finally {
        closeSync(fd);
      }
    } catch {
      return undefined;
    }
    if (!this.tables.has(key)) this.tables.set(key, readSymbolTable(file));
    return this.tables.get(key);
  }
}
