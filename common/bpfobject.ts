// One BPF object of the package: open, configure by name, choose programs,
// load, attach, tear down. The C tools' skeletons do this with generated
// code; here the object's own BTF tells where each variable lives.
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Btf, type StructLayout } from './btf.js';
import { coreBtfPath } from './corebtf.js';
import { RuntimeError } from './errors.js';
import { libbpfLog } from './log.js';
import { recursionMisses } from './misses.js';
import { registerTracingHandler, setModuleTargets, TRACING_SECTION, type TracingProgram } from './moduletargets.js';
import { bpf, errnoText, inThreads, koffi, lastErrno, libcCalls } from './native.js';
import { checkKernelBtf, checkPrivileges, ensureTracefs } from './preflight.js';

/** Directory holding the shipped `<tool>.bpf.o` objects. */
export const BPF_DIR = fileURLToPath(new URL('../../bpf/', import.meta.url));

type Pointer = unknown;

/** The -v line that ends attaching (every program attached), as scripts and ebpf-tools check wait for it. */
export const ALL_ATTACHED = /^all \d+ programs attached$/m;

const PROT_READ = 1;
const MAP_SHARED = 1;

/**
 * The kernel refused to load or attach: `reason` says what, without the
 * libbpf hint the message adds; `errno` is the kernel's answer.
 */
export class KernelRefusal extends RuntimeError {
  constructor(readonly stage: 'load' | 'attach', readonly reason: string, readonly errno: number, hint: string) {
    super(reason + hint);
  }
}

export interface Program {
  name: string;
  section: string;
}

export class BpfObject {
  private readonly links: Pointer[] = [];
  /** each loaded program's fdinfo, open from load to close */
  private programInfo: number[] = [];
  /** Section maps mapped by sectionView() after load: [address, length]. */
  private readonly sectionMappings: [Pointer, number][] = [];
  private loaded = false;
  private closed = false;
  private btfModule?: string;
  readonly btf: Btf;

  private constructor(readonly tool: string, private readonly obj: Pointer) {
    const size = [0];
    const raw = bpf.btf_raw_data(bpf.object_btf(obj), size);
    this.btf = new Btf(new Uint8Array(koffi.view(raw, size[0])).slice());
  }

  /** The file of the object named `tool`. */
  static path(tool: string): string {
    return `${BPF_DIR}${tool}.bpf.o`;
  }

  /**
   * Opens bpf/<tool>.bpf.o after checking privileges and kernel BTF, to be
   * relocated against the part of the kernel's BTF it looks at (corebtf.ts).
   * `btfModule`: the module whose functions its fentry and fexit programs
   * trace, their targets to be found by us (moduletargets.ts).
   */
  static open(tool: string, btfModule?: string): BpfObject {
    checkPrivileges();
    checkKernelBtf();
    const coreBtf = coreBtfPath(BpfObject.path(tool));
    libbpfLog.note(`${tool}.bpf.o: CO-RE against ${coreBtf ?? "the kernel's whole BTF"}`);
    if (btfModule) registerTracingHandler();
    const obj = BpfObject.openUnchecked(tool, coreBtf);
    obj.btfModule = btfModule;
    return obj;
  }

  /**
   * Opens without the privilege checks: parsing an object needs none (tests,
   * layout checks). `coreBtf`: the BTF file CO-RE relocates against, in place of the kernel's.
   */
  static openUnchecked(tool: string, coreBtf?: string): BpfObject {
    libbpfLog.install();
    const path = BpfObject.path(tool);
    const opts = coreBtf ? { sz: koffi.sizeof('bpf_object_open_opts'), btf_custom_path: coreBtf } : null;
    const obj = bpf.object_open_file(path, opts);
    if (!obj) throw new RuntimeError(`cannot open ${path}: ${errnoText(lastErrno())}${libbpfLog.hint()}`);
    return new BpfObject(tool, obj);
  }

  struct(name: string): StructLayout {
    return this.btf.struct(name);
  }

  /** The layout of map `name`'s values, as its declaration (`__type(value, ...)`) gives it. */
  mapValue(name: string): StructLayout {
    return this.btf.structAt(bpf.map_btf_value_type_id(this.map(name)) as number);
  }

  private map(name: string): Pointer {
    const map = bpf.object_find_map(this.obj, name);
    if (!map) throw new Error(`${this.tool}.bpf.o has no map ${name}`);
    return map;
  }

  /**
   * A global data section (.rodata, .bss). Before load: the image libbpf
   * will load, where setConfig writes. After load: the map's own memory,
   * mapped here read-only, where counters the BPF side increments are seen.
   * (libbpf before 1.5 points its image at the map only for skeletons; for
   * us it stays a private copy that never changes after load.)
   */
  sectionView(section: string): DataView {
    const map = this.map(section);
    const size = [0];
    const ptr = bpf.map_initial_value(map, size);
    if (!ptr) throw new Error(`${section} of ${this.tool}.bpf.o is not mapped`);
    if (!this.loaded) return new DataView(koffi.view(ptr, size[0]));
    const live = libcCalls.mmap(null, size[0], PROT_READ, MAP_SHARED, bpf.map_fd(map), 0);
    if (!live || koffi.address(live) === 0xffffffffffffffffn) {
      throw new RuntimeError(`cannot map ${section} of ${this.tool}.bpf.o: ${errnoText(lastErrno())}`);
    }
    this.sectionMappings.push([live, size[0]]);
    return new DataView(koffi.view(live, size[0]));
  }

  /**
   * Sets `const volatile` variables by name before load. Values are checked
   * against the variable's BTF type so a config cannot be silently truncated;
   * a byte array (a `char name[N]` filter) takes a Uint8Array of at most N bytes.
   */
  setConfig(values: Record<string, number | bigint | boolean | Uint8Array>): void {
    const vars = this.btf.datasec('.rodata');
    const view = this.sectionView('.rodata');
    for (const [name, value] of Object.entries(values)) {
      const v = vars.get(name);
      if (!v) throw new Error(`${this.tool}.bpf.o has no const volatile ${name}`);
      if (value instanceof Uint8Array) {
        const t = v.type;
        if (t.kind !== 'array' || t.element.size !== 1) throw new Error(`${name} is not a byte array`);
        if (value.length > t.length) throw new Error(`${name} holds ${t.length} bytes, not ${value.length}`);
        new Uint8Array(view.buffer, view.byteOffset + v.offset, t.length).fill(0).set(value);
        continue;
      }
      if (v.type.kind !== 'int') throw new Error(`${name} is not an integer variable`);
      writeInt(view, v.offset, v.type.size, v.type.signed, name, value);
    }
  }

  programs(): Program[] {
    const list: Program[] = [];
    for (let p = bpf.object_next_program(this.obj, null); p; p = bpf.object_next_program(this.obj, p)) {
      list.push({ name: bpf.program_name(p) as string, section: bpf.program_section(p) as string });
    }
    return list;
  }

  /** The fds of the programs loaded (after load). */
  private loadedProgramFds(): number[] {
    return this.programs().map((p) => bpf.program_fd(this.program(p.name)) as number).filter((fd) => fd >= 0);
  }

  private program(name: string): Pointer {
    const prog = bpf.object_find_program(this.obj, name);
    if (!prog) throw new Error(`${this.tool}.bpf.o has no program ${name}`);
    return prog;
  }

  /** Chooses whether a program is loaded (and so attached). */
  setAutoload(name: string, autoload: boolean): void {
    bpf.program_set_autoload(this.program(name), autoload);
  }

  setMaxEntries(mapName: string, entries: number): void {
    const err = bpf.map_set_max_entries(this.map(mapName), entries) as number;
    if (err) throw new Error(`cannot size map ${mapName}: ${errnoText(err)}`);
  }

  /** Makes the object use an existing map (a pinned one) in place of its own. */
  reuseMapFd(mapName: string, fd: number): void {
    const err = bpf.map_reuse_fd(this.map(mapName), fd) as number;
    if (err) throw new RuntimeError(`cannot use map for ${mapName}: ${errnoText(err)}`);
  }

  mapFd(name: string): number {
    return bpf.map_fd(this.map(name)) as number;
  }

  /** A loaded program's fd (to run it with BPF_PROG_TEST_RUN, as the tests do). */
  programFd(name: string): number {
    return bpf.program_fd(this.program(name)) as number;
  }

  load(): void {
    const targets = this.btfModule ? this.moduleTargets(this.btfModule) : undefined;
    let err: number;
    try {
      err = bpf.object_load(this.obj) as number;
    } finally {
      targets?.release();
    }
    if (err) {
      throw new KernelRefusal('load', `failed to load BPF programs: ${errnoText(err)}`, Math.abs(err), libbpfLog.hint());
    }
    this.loaded = true;
    // opened now, before anything is attached, and read again in place: an
    // open a second would be traced by opensnoop (its own, and every other
    // tool's)
    this.programInfo = this.loadedProgramFds().map((fd) => openSync(`/proc/self/fdinfo/${fd}`, 'r'));
  }

  /** The targets of the fentry and fexit programs to load, in `module`'s BTF, given to libbpf for this load. */
  private moduleTargets(module: string): { release: () => void } {
    const tracing: TracingProgram[] = [];
    for (const p of this.programs()) {
      const program = this.program(p.name);
      if (TRACING_SECTION.test(p.section) && bpf.program_autoload(program)) tracing.push({ name: p.name, program, fn: p.section.slice(p.section.indexOf('/') + 1) });
    }
    const targets = setModuleTargets(module, tracing);
    libbpfLog.note(`${this.tool}.bpf.o: ${tracing.length} fentry and fexit targets found in the BTF of module ${module} (object ${targets.btfObjectId})`);
    return targets;
  }

  /** The runs of the loaded programs the kernel skipped so far (common/misses.ts). */
  skippedRuns(): number {
    return recursionMisses(this.programInfo);
  }

  /** Attaches every program loaded where its section says, and to the tracepoints `alsoAttached` names for it. */
  attach(alsoAttached: Record<string, string[]> = {}): void {
    const chosen = this.programs().filter((p) => bpf.program_autoload(this.program(p.name)));
    if (chosen.some((p) => /^(tracepoint|tp)\//.test(p.section))) libbpfLog.note(ensureTracefs());
    const attached = (link: Pointer | null, where: string, name: string): void => {
      if (!link) {
        const errno = lastErrno();
        throw new KernelRefusal('attach', `failed to attach ${where}: ${errnoText(errno)}`, errno, libbpfLog.hint());
      }
      this.links.push(link);
      libbpfLog.note(`attached ${name} (${where})`);
    };
    for (const p of chosen) {
      const program = this.program(p.name);
      // by what the section names: the handler of fentry and fexit sections may be ours, which has no attach function (moduletargets.ts)
      const link = TRACING_SECTION.test(p.section) ? bpf.program_attach_trace(program) : bpf.program_attach(program);
      attached(link as Pointer | null, p.section, p.name);
      for (const tracepoint of alsoAttached[p.name] ?? []) {
        const [category, name] = tracepoint.split('/');
        attached(bpf.program_attach_tracepoint(program, category, name) as Pointer | null, `tracepoint/${tracepoint}`, p.name);
      }
    }
    // the line that says tracing has begun (the tests wait for it)
    libbpfLog.note(`all ${chosen.length} programs attached`);
  }

  /** Detaches and unloads everything; safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    destroyLinks(this.links.splice(0));
    for (const [address, length] of this.sectionMappings.splice(0)) libcCalls.munmap(address, length);
    for (const fd of this.programInfo.splice(0)) closeSync(fd);
    bpf.object_close(this.obj);
  }
}

/**
 * Detaches links side by side. Detaching a tracepoint attached through perf
 * (a syscall's: opensnoop has six) waits out the kernel's RCU grace periods
 * for it, ~70 ms each on 6.18: one after the other they kept opensnoop from
 * exiting for 0.43 s after a Ctrl-C (the C tool, with two, for 0.15 s).
 * Side by side they wait out the same ones. libbpf says nothing meanwhile:
 * its messages come to JavaScript, on this thread, which waits.
 */
function destroyLinks(links: Pointer[]): void {
  let destroyed = 0;
  if (links.length > 1) {
    libbpfLog.silenced(() => {
      destroyed = inThreads('bpf_link__destroy', links);
    });
  }
  for (const link of links.slice(destroyed)) bpf.link_destroy(link);
}

function writeInt(
  view: DataView, offset: number, size: number, signed: boolean, name: string, value: number | bigint | boolean,
): void {
  const big = typeof value === 'boolean' ? BigInt(value ? 1 : 0) : BigInt(value);
  const bits = BigInt(size * 8);
  const min = signed ? -(1n << (bits - 1n)) : 0n;
  const max = signed ? (1n << (bits - 1n)) - 1n : (1n << bits) - 1n;
  if (big < min || big > max) throw new Error(`${name}=${value} does not fit its ${size}-byte variable`);
  const unsigned = BigInt.asUintN(size * 8, big);
  for (let i = 0; i < size; i++) view.setUint8(offset + i, Number((unsigned >> BigInt(8 * i)) & 0xffn));
}
