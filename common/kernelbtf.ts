// The running kernel's BTF as this process reads it: mapped where the
// kernel allows it, read once for all the checks and look-ups of a run, and
// let go once the programs are loaded.
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { Btf } from './btf.js';
import { kernelNames } from './kernelnames.js';
import { koffi, libcCalls } from './native.js';
import { VMLINUX_BTF } from './preflight.js';

let kernelBtfData: Btf | undefined;
/** Where kernelBtfData's bytes are mapped, if they are (else they were read onto the heap). */
let kernelBtfMapping: { ptr: unknown; size: number } | undefined;
const MADV_DONTNEED = 4;

/**
 * Gives the pages of our mapping of the kernel's BTF back (they are read
 * again from the file if looked at again: the mapping and every view of it
 * stay valid).
 */
export function dropKernelBtfPages(): void {
  if (kernelBtfMapping) libcCalls.madvise(kernelBtfMapping.ptr, kernelBtfMapping.size, MADV_DONTNEED);
}

/**
 * Once loaded: our copy of the kernel's BTF is let go (read again if asked
 * for), and the C heap hands back what libbpf freed (its own BTF copies:
 * ~10 MiB that glibc would otherwise keep for the whole run).
 */
export function releaseLoadMemory(): void {
  dropKernelBtfPages();
  if (!kernelBtfMapping) kernelBtfData = undefined;
  try {
    libcCalls.malloc_trim(0);
  } catch {
    // not glibc: nothing to trim
  }
}

/**
 * The running kernel's BTF, read once for all the checks and look-ups of a
 * run, its types decoded only as asked for.
 */
export function kernelBtf(): Btf {
  kernelBtfData ??= new Btf(kernelBtfBytes());
  return kernelBtfData;
}

const PROT_READ = 1;
const MAP_PRIVATE = 2;
const MAP_FAILED = 0xffffffffffffffffn;

/**
 * The kernel's BTF, mapped where the kernel allows it (6.16 and later: no
 * copy; mapped for the whole run, its pages given back after load), else read (~10 ms for its 5 MB: sysfs hands
 * it over a page at a time).
 */
function kernelBtfBytes(): Uint8Array {
  const fd = openSync(VMLINUX_BTF, 'r');
  try {
    const size = fstatSync(fd).size;
    const mapped = libcCalls.mmap(null, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped && koffi.address(mapped) !== MAP_FAILED) {
      kernelBtfMapping = { ptr: mapped, size };
      return new Uint8Array(koffi.view(mapped, size));
    }
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the kernel's BTF names a type or function `name` (a search of its
 * string table: enough to tell whether a tracepoint has a BTF version,
 * btf_trace_<tp>, or a function can be traced by fentry), as found the first
 * time this boot (kernelnames.ts): before 6.16 each look is a read of 5 MB.
 */
export function kernelBtfHasName(name: string): boolean {
  return kernelNames().answer('btf', name, () => kernelBtf().hasName(name));
}
