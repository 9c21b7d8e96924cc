// fentry and fexit programs on a module's functions (a file system built as
// a module: ext4, xfs and btrfs are in Debian's kernels), their targets found
// here and handed to libbpf. libbpf looks a target up in the kernel's BTF,
// then in each module's BTF in turn, and searches a module's from the
// kernel's first type: for every program, all the kernel's types once for
// each module loaded before the one the function is in. In a 6.1 guest,
// with ext4 the last of 20 modules, that was 1.1 s of the 1.2 s that
// ext4slower's 8 fentry and fexit programs took to load; with their targets
// given, 0.15 s. A module's BTF is small (ext4's 140 kB): each function's
// id is found in it, numbered after the kernel's types (their count is kept
// for the boot, kernelnames.ts).
//
// libbpf takes a program's target from the handler of its section, and
// libbpf_register_prog_handler() lets a program put its own in place of
// libbpf's. Ours, for fentry and fexit sections, is registered once per
// process, before an object is opened (a program's handler is chosen when
// its object is opened), and gives the program the target found for it.
//
// libbpf also reads and parses the whole kernel BTF for an object with a
// tracing program, unless the program attaches to another BPF program (its
// attach_prog_fd is set): ~130 ms of a start in a 6.1 guest, and 8.5 MiB at
// the load's peak, for nothing once the targets are ours. So each program
// is given the module's BTF object as its attach_prog_fd, which libbpf reads
// for nothing else (it finds no target itself in our sections), and our
// handler clears it again from what is loaded: the kernel takes a BPF
// program or a BTF object there, the same field, and is given the module's.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { Btf, BTF_HEADER_SIZE, btfHeader, type SplitBase } from './btf.js';
import { RuntimeError } from './errors.js';
import { kernelBtf } from './kernelbtf.js';
import { kernelNames } from './kernelnames.js';
import { bpf, errnoText, koffi, libcCalls } from './native.js';
import { VMLINUX_BTF } from './preflight.js';

const BPF_PROG_TYPE_TRACING = 26;
const BPF_TRACE_FENTRY = 24;
const BPF_TRACE_FEXIT = 25;
const ESRCH = 3;
/** MODULE_NAME_LEN, the longest a kernel BTF object's name can be */
const BTF_NAME_SIZE = 64;

/** The sections of the programs whose targets the handler gives (the function follows the slash). */
export const TRACING_SECTION = /^f(entry|exit)\//;

interface Target {
  /** the module's BTF object */
  btfObjectFd: number;
  /** the function's id in it */
  typeId: number;
}

/** The targets of the object being loaded, by program name. */
const targets = new Map<string, Target>();
let registered = false;

/**
 * Puts our handler in place of libbpf's for fentry and fexit sections (once
 * per process; before the object is opened). A program it has no target
 * for is not loaded (libbpf says "failed to prepare load attributes: -3").
 */
export function registerTracingHandler(): void {
  if (registered) return;
  // taken first: it loads libbpf, where the types below are declared
  const register = bpf.register_prog_handler;
  const prepare = koffi.register((prog: unknown, opts: unknown): number => {
    const target = targets.get(bpf.program_name(prog) as string);
    if (!target) return -ESRCH;
    koffi.encode(opts, koffi.offsetof('bpf_prog_load_opts', 'attach_prog_fd'), 'uint32_t', 0);
    koffi.encode(opts, koffi.offsetof('bpf_prog_load_opts', 'attach_btf_obj_fd'), 'uint32_t', target.btfObjectFd);
    koffi.encode(opts, koffi.offsetof('bpf_prog_load_opts', 'attach_btf_id'), 'uint32_t', target.typeId);
    return 0;
  }, 'libbpf_prog_prepare_load_fn *');
  for (const [section, attachType] of [['fentry+', BPF_TRACE_FENTRY], ['fexit+', BPF_TRACE_FEXIT]] as const) {
    const opts = { sz: koffi.sizeof('libbpf_prog_handler_opts'), cookie: 0, prog_setup_fn: null, prog_prepare_load_fn: prepare, prog_attach_fn: null };
    const id = register(section, BPF_PROG_TYPE_TRACING, attachType, opts) as number;
    if (id < 0) throw new RuntimeError(`libbpf refused a handler for ${section.slice(0, -1)} programs: ${errnoText(id)}`);
  }
  registered = true;
}

/** A tracing program of an opened object, and the function it traces. */
export interface TracingProgram {
  name: string;
  program: unknown;
  fn: string;
}

/**
 * Finds the targets of `programs` in `module`'s BTF for the next load, and
 * returns what lets them go once loaded. Throws a RuntimeError naming what
 * is not there.
 */
export function setModuleTargets(module: string, programs: TracingProgram[]): { btfObjectId: number; release: () => void } {
  const object = moduleBtfObject(module);
  // a function's fentry and fexit programs share its id
  const ids = moduleFunctionIds(module, [...new Set(programs.map((p) => p.fn))], object.id);
  for (const { name, program, fn } of programs) {
    targets.set(name, { btfObjectFd: object.fd, typeId: ids.get(fn)! });
    // not a program's fd: see above
    const err = bpf.program_set_attach_target(program, object.fd, null) as number;
    if (err) throw new RuntimeError(`libbpf refused a target for ${name}: ${errnoText(err)}`);
  }
  return {
    btfObjectId: object.id,
    release: () => {
      targets.clear();
      libcCalls.close(object.fd);
    },
  };
}

/**
 * The ids of `functions` in `module`'s BTF (its object `objectId`), as the
 * kernel numbers them: as found earlier this boot in that object, else
 * found now. Throws a RuntimeError naming one it lacks.
 */
export function moduleFunctionIds(module: string, functions: string[], objectId: number): Map<string, number> {
  const kept = kernelNames().moduleBtf(module);
  const known = kept?.object === objectId ? kept.functions : {};
  if (functions.every((fn) => Object.hasOwn(known, fn))) return new Map(functions.map((fn) => [fn, known[fn]]));
  const btf = new Btf(readFileSync(`/sys/kernel/btf/${module}`));
  const base: SplitBase = {
    typeCount: kernelNames().kernelBtfTypeCount(() => kernelBtf().typeCount),
    stringLength: kernelBtfStringLength(),
    btf: kernelBtf,
  };
  const ids = new Map<string, number>();
  for (const fn of functions) {
    const id = btf.splitFunctionId(fn, base);
    if (id < 0) throw new RuntimeError(`module ${module}'s BTF has no function ${fn}`);
    ids.set(fn, id);
  }
  kernelNames().rememberModuleBtf(module, objectId, Object.fromEntries(ids));
  return ids;
}

/** The length of the kernel BTF's string table, from its header (a module's own strings are numbered after it). */
function kernelBtfStringLength(): number {
  const header = new Uint8Array(BTF_HEADER_SIZE);
  const fd = openSync(VMLINUX_BTF, 'r');
  try {
    readSync(fd, header, 0, BTF_HEADER_SIZE, 0);
  } finally {
    closeSync(fd);
  }
  return btfHeader(header).stringLength;
}

/**
 * The kernel's BTF object of `module` (loaded, or it has none): its id, and
 * an fd of it. Tried first at the id it had when last found this boot.
 */
export function moduleBtfObject(module: string): { id: number; fd: number } {
  const names = kernelNames();
  const hint = names.moduleBtf(module)?.object;
  const fd = hint === undefined ? -1 : btfObjectOf(hint, module);
  if (fd >= 0) return { id: hint!, fd };
  const next = [0];
  for (let id = 0; bpf.btf_get_next_id(id, next) === 0; id = next[0]) {
    const found = btfObjectOf(next[0], module);
    if (found < 0) continue;
    names.rememberModuleBtf(module, next[0], {});
    return { id: next[0], fd: found };
  }
  throw new RuntimeError(`the kernel has no BTF of module ${module}: it is not loaded`);
}

/** An fd of BTF object `id` if it is `module`'s, else -1. */
function btfObjectOf(id: number, module: string): number {
  const fd = bpf.btf_get_fd_by_id(id) as number;
  // gone since it was listed, or since it was found
  if (fd < 0) return -1;
  const name = koffi.alloc('char', BTF_NAME_SIZE);
  try {
    const info = Buffer.alloc(koffi.sizeof('bpf_btf_info'));
    koffi.encode(info, 'bpf_btf_info', { btf: 0, btf_size: 0, id: 0, name: koffi.address(name), name_len: BTF_NAME_SIZE, kernel_btf: 0 });
    const read = bpf.obj_get_info_by_fd(fd, info, [info.length]) === 0;
    const got = koffi.decode(info, 'bpf_btf_info') as { kernel_btf: number };
    if (read && got.kernel_btf && koffi.decode(name, 'char', -1) === module) return fd;
  } finally {
    koffi.free(name);
  }
  libcCalls.close(fd);
  return -1;
}
