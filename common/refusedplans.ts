// Attach plans the kernel refused earlier this boot (ext4slower's fentry
// where the kernel does not allow trampolines: EPERM at load), remembered so
// that the next start passes over them at once instead of loading them and
// being refused again (each such load is a whole parse of the kernel's BTF
// by libbpf and ~11 MiB of C heap). The record holds only refusals that do
// not depend on the run's options or on the moment (see STABLE_REFUSALS); it
// is kept in a directory of ours alone, valid for one boot of one kernel,
// and anything wrong with it (missing, unreadable, someone else's, another
// boot's) makes it empty: it can only ever save a load, never fail a run.
import { closeSync, fstatSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { safeDirectory } from './compilecache.js';

/** Set (non-empty): every plan is tried again, whatever was refused earlier this boot (what it meets now is recorded). */
export const RETRY_PLANS_VARIABLE = 'EBPF_TOOLS_RETRY_REFUSED_PLANS';

const BOOT_ID = '/proc/sys/kernel/random/boot_id';
/** the kernel's release, as uname() gives it (without node:os, which a start does not load: errno.ts) */
const KERNEL_RELEASE = '/proc/sys/kernel/osrelease';
const FILE_NAME = 'refused-plans.json';

const EPERM = 1, EINVAL = 22, EOPNOTSUPP = 95, ENOTSUPP = 524;
/**
 * The refusals remembered: errors that say the kernel does not allow or
 * support this kind of program or attachment (fentry not permitted, a
 * function kprobes refuse), the same for any options until the next boot.
 * A verifier's rejection (EACCES, EINVAL at load) may depend on the
 * configuration, ENOMEM, EBUSY and EAGAIN on the moment: those are met again.
 */
const STABLE_REFUSALS: Record<'load' | 'attach', Set<number>> = {
  load: new Set([EPERM, EOPNOTSUPP, ENOTSUPP]),
  attach: new Set([EPERM, EINVAL, EOPNOTSUPP, ENOTSUPP]),
};

export function stableRefusal(stage: 'load' | 'attach', errno: number): boolean {
  return STABLE_REFUSALS[stage].has(errno);
}

/**
 * Where what holds for one boot is kept (refused plans, corebtf.ts's cut of
 * the kernel's BTF): /run/ebpf-tools for root, the user's runtime directory
 * otherwise (none without one). Both are emptied at boot.
 */
export function runtimeDirectory(uid = process.getuid?.() ?? -1, env = process.env): string | undefined {
  if (uid === 0) return '/run/ebpf-tools';
  return env.XDG_RUNTIME_DIR ? `${env.XDG_RUNTIME_DIR}/ebpf-tools` : undefined;
}

/** Whether `dir` is ours alone and in a directory only we or root can change (what is read from it is trusted). */
export function safeRuntimeDirectory(dir: string, uid: number): boolean {
  return safeDirectory(lstatSync(dir), uid, false) && safeDirectory(lstatSync(dirname(dir)), uid, true);
}

/** The entries of a map read from a record; none for anything else (an array, a value, nothing). */
export function recordEntries(value: unknown): [string, unknown][] {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? Object.entries(value) : [];
}

/**
 * The JSON record in `file`, if it can be trusted: a regular file of `uid`'s
 * that no one else may write, in a safe runtime directory. Undefined where it
 * is missing, unreadable or not to be trusted.
 */
export function readRecord(file: string, uid: number): unknown {
  let fd: number | undefined;
  try {
    if (!safeRuntimeDirectory(dirname(file), uid)) return undefined;
    fd = openSync(file, 'r');
    const s = fstatSync(fd);
    if (!s.isFile() || s.uid !== uid || (s.mode & 0o022) !== 0) return undefined;
    return JSON.parse(readFileSync(fd, 'utf8'));
  } catch {
    return undefined; // no record yet, or not one we can read
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Writes `record` as JSON to `file`, 0600 in a 0700 runtime directory of
 * ours, whole under another name and then renamed over, so that a reader sees
 * the old record or the new one. Whether it was written (not on a read-only
 * or full /run, or a directory not ours alone).
 */
export function writeRecord(file: string, uid: number, record: unknown): boolean {
  try {
    const dir = dirname(file);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!safeRuntimeDirectory(dir, uid)) return false;
    const temporary = `${file}.${process.pid}`;
    writeFileSync(temporary, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    renameSync(temporary, file);
    return true;
  } catch {
    return false;
  }
}

/** Where the record is kept (none without a runtime directory). */
export function refusedPlansFile(uid = process.getuid?.() ?? -1, env = process.env): string | undefined {
  const dir = runtimeDirectory(uid, env);
  return dir && `${dir}/${FILE_NAME}`;
}

/** What makes a record valid: this boot of this kernel. */
export interface Boot {
  id: string;
  kernel: string;
}

let boot: Boot | undefined;

/** This boot, read once a process (the refused plans, the kernel's names and the cut of its BTF are each kept for it). */
export function currentBoot(): Boot | undefined {
  try {
    return (boot ??= { id: readFileSync(BOOT_ID, 'utf8').trim(), kernel: readFileSync(KERNEL_RELEASE, 'utf8').trim() });
  } catch {
    return undefined;
  }
}

interface Stored {
  boot_id: string;
  kernel: string;
  /** why each plan was refused, by planKey() */
  refused: Record<string, string>;
}

/**
 * Names a plan of a tool as loaded from one object file: the programs it
 * loads (fsslower's plans differ by file system) and the object's size and
 * time (a package updated within the boot decides again).
 */
export function planKey(tool: string, plan: string, programs: string[], objectPath: string): string | undefined {
  try {
    const s = statSync(objectPath);
    return `${tool}\t${plan}\t${programs.join(',')}\t${objectPath}\t${s.size}\t${s.mtimeMs}`;
  } catch {
    return undefined; // no object: opening it says so
  }
}

export class RefusedPlans {
  private refused: Record<string, string> | undefined;

  constructor(
    private readonly file: string | undefined,
    private readonly boot: Boot | undefined,
    private readonly uid: number,
    private readonly retry: boolean,
  ) {}

  /** The record of this process' user, this boot. */
  static here(): RefusedPlans {
    const uid = process.getuid?.() ?? -1;
    return new RefusedPlans(refusedPlansFile(uid), currentBoot(), uid, !!process.env[RETRY_PLANS_VARIABLE]);
  }

  /** Why the plan `key` was refused earlier this boot, if it was (and is not to be retried). */
  reason(key: string | undefined): string | undefined {
    if (this.retry || key === undefined) return undefined;
    return Object.hasOwn(this.stored(), key) ? this.stored()[key] : undefined;
  }

  /** Records that the kernel refused the plan `key`, and why; a record that cannot be written is only a load more next time. */
  remember(key: string | undefined, reason: string): void {
    if (!this.file || !this.boot || key === undefined) return;
    // read again: another run may have added a refusal since
    this.refused = undefined;
    const refused = { ...this.stored(), [key]: reason };
    const stored: Stored = { boot_id: this.boot.id, kernel: this.boot.kernel, refused };
    if (writeRecord(this.file, this.uid, stored)) this.refused = refused;
  }

  /** The refusals recorded this boot: none if the record is missing, unreadable, someone else's or another boot's. */
  private stored(): Record<string, string> {
    if (this.refused) return this.refused;
    this.refused = {};
    if (!this.file || !this.boot) return this.refused;
    const stored = readRecord(this.file, this.uid) as Partial<Stored> | undefined;
    if (stored?.boot_id !== this.boot.id || stored.kernel !== this.boot.kernel) return this.refused;
    for (const [key, reason] of recordEntries(stored.refused)) if (typeof reason === 'string') this.refused[key] = reason;
    return this.refused;
  }
}
