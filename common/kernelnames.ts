// Answers about this boot's kernel that cost a read of a large file: whether
// its BTF names a type or function (5 MB, read whole before 6.16, where it
// cannot be mmapped) and whether kallsyms has a function (megabytes of text
// the kernel makes at each read). Plan checks ask them at every start
// (biosnoop's first plan asks the BTF for block_io_start, a kprobe plan
// asks kallsyms for its functions): in a 6.1 guest the kprobe check of
// ext4slower spent 0.85 s of a 2.6 s start reading and searching kallsyms.
// The count of the kernel BTF's types is kept too (moduletargets.ts numbers
// a module's functions after them), and for a module the id of its BTF
// object (found by asking the kernel for each object in turn, 21 in a 6.1
// guest) and its functions' ids in it (found by a walk over its BTF, 140 kB
// for ext4: most of 150 ms of an ext4slower start in that guest): a hint,
// its object checked by name at each use, the functions' only while that
// object is the module's (a module loaded again has another). The answers
// hold until the next boot (kallsyms' while the same modules are loaded),
// so they are kept in the runtime directory beside the refused plans;
// anything wrong with the record (missing, unreadable, someone else's,
// another boot's) makes it empty, and the files are read again.
import { readFileSync } from 'node:fs';
import { type Boot, currentBoot, readRecord, recordEntries, runtimeDirectory, writeRecord } from './refusedplans.js';

const FILE_NAME = 'kernel-names.json';
const MODULES = '/proc/modules';

/** What is asked: a name in the kernel's own BTF (vmlinux, no module), or a function in kallsyms (modules' too). */
export type NameKind = 'btf' | 'functions';

interface Stored {
  boot_id: string;
  kernel: string;
  /** the modules loaded when the functions were looked up */
  modules: string;
  btf: Record<string, boolean>;
  functions: Record<string, boolean>;
  /** the kernel BTF's type count (void's included): what a module's BTF numbers its types after */
  btf_types?: number;
  /** by module: the id of its BTF object (a hint, checked when used), and its functions' ids in that object */
  btf_modules: Record<string, ModuleBtf>;
}

export interface ModuleBtf {
  object: number;
  functions: Record<string, number>;
}

/** The names of the modules loaded now, sorted ('' if /proc/modules cannot be read). */
export function loadedModules(text = readModules()): string {
  return text.split('\n').map((line) => line.split(' ')[0]).filter(Boolean).sort().join(' ');
}

function readModules(): string {
  try {
    return readFileSync(MODULES, 'latin1');
  } catch {
    return '';
  }
}

export class KernelNames {
  private record: Stored | undefined;

  constructor(
    private readonly file: string | undefined,
    private readonly boot: Boot | undefined,
    private readonly uid: number,
    private readonly modules: () => string = loadedModules,
  ) {}

  /** The record of this process' user, this boot. */
  static here(): KernelNames {
    const uid = process.getuid?.() ?? -1;
    const dir = runtimeDirectory(uid);
    return new KernelNames(dir && `${dir}/${FILE_NAME}`, currentBoot(), uid);
  }

  /** The answer for `name`: as found earlier this boot, else `look()`'s, which is recorded. */
  answer(kind: NameKind, name: string, look: () => boolean): boolean {
    const stored = this.stored();
    if (Object.hasOwn(stored[kind], name)) return stored[kind][name];
    const found = look();
    this.remember(kind, name, found);
    return found;
  }

  /** The kernel BTF's type count, as found earlier this boot, else `count()`'s, which is recorded (a walk over all its types). */
  kernelBtfTypeCount(count: () => number): number {
    const stored = this.stored().btf_types;
    if (stored !== undefined) return stored;
    const found = count();
    this.update((record) => {
      record.btf_types = found;
    });
    return found;
  }

  /** `module`'s BTF object when last found this boot (it may have another now), and its functions' ids found in it. */
  moduleBtf(module: string): ModuleBtf | undefined {
    return this.stored().btf_modules[module];
  }

  /** Records `module`'s BTF object and ids of functions in it: added to those known for that object, in place of another's. */
  rememberModuleBtf(module: string, object: number, functions: Record<string, number>): void {
    this.update((record) => {
      const known = record.btf_modules[module];
      const kept = known?.object === object ? known.functions : {};
      record.btf_modules = { ...record.btf_modules, [module]: { object, functions: { ...kept, ...functions } } };
    });
  }

  private remember(kind: NameKind, name: string, found: boolean): void {
    this.update((record) => {
      record[kind] = { ...record[kind], [name]: found };
    });
  }

  /** A record that cannot be written is only a look more next time. */
  private update(change: (record: Stored) => void): void {
    if (!this.file || !this.boot) return;
    // read again: another run may have added answers since
    this.record = undefined;
    const stored = this.stored();
    change(stored);
    writeRecord(this.file, this.uid, stored);
  }

  /** This boot's answers (kallsyms' only while the same modules are loaded); none where the record is not to be trusted. */
  private stored(): Stored {
    if (this.record) return this.record;
    const modules = this.modules();
    const record: Stored = { boot_id: this.boot?.id ?? '', kernel: this.boot?.kernel ?? '', modules, btf: {}, functions: {}, btf_modules: {} };
    this.record = record;
    if (!this.file || !this.boot) return record;
    const stored = readRecord(this.file, this.uid) as Partial<Stored> | undefined;
    if (stored?.boot_id !== this.boot.id || stored.kernel !== this.boot.kernel) return record;
    record.btf = answers(stored.btf);
    const types = stored.btf_types;
    if (positive(types)) record.btf_types = types;
    record.btf_modules = moduleBtfs(stored.btf_modules);
    if (stored.modules === modules) record.functions = answers(stored.functions);
    return record;
  }
}

function answers(value: unknown): Record<string, boolean> {
  return Object.fromEntries(recordEntries(value).filter((e): e is [string, boolean] => typeof e[1] === 'boolean'));
}

function positive(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

function moduleBtfs(value: unknown): Record<string, ModuleBtf> {
  const out: Record<string, ModuleBtf> = {};
  for (const [module, kept] of recordEntries(value)) {
    const { object, functions } = (kept ?? {}) as Partial<ModuleBtf>;
    if (!positive(object)) continue;
    out[module] = { object, functions: Object.fromEntries(recordEntries(functions).filter((e): e is [string, number] => positive(e[1]))) };
  }
  return out;
}

let here: KernelNames | undefined;

/** This process' record (one per run: what it learns is kept for its next questions too). */
export function kernelNames(): KernelNames {
  here ??= KernelNames.here();
  return here;
}
