// Choosing how to attach at run time. A tool lists its attach plans in
// order of preference (fentry, then kprobe, then tracepoints...), each with
// the programs it loads and an optional cheap check of what the kernel
// offers. The first plan that passes its check, loads and attaches wins;
// a plan refused by the kernel (fentry refused with EPERM, a missing
// function) is closed and the next one tried. -v says what was chosen and why.
// A refusal that holds until the next boot is remembered (refusedplans.ts),
// so that the next start passes over that plan without loading it.
import { existsSync, readFileSync } from 'node:fs';
import { BpfObject, KernelRefusal } from './bpfobject.js';
import { quoted, RuntimeError, UsageError } from './errors.js';
import { kernelNames } from './kernelnames.js';
import { libbpfLog } from './log.js';
import { dropKernelBtfPages, releaseLoadMemory } from './kernelbtf.js';
import { checkKernelBtf, checkPrivileges } from './preflight.js';
import { planKey, RefusedPlans, stableRefusal } from './refusedplans.js';

export interface AttachPlan {
  /** shown with -v, and available to the tool (e.g. for a header note) */
  name: string;
  /** the programs this plan loads; every other program of the object is not loaded */
  programs: string[];
  /** tracepoints ("category/name") a program is attached to as well as its section's (one program for several of the same layout) */
  alsoAttached?: Record<string, string[]>;
  /** returns why the plan cannot work here, or null if it may */
  unavailable?: () => string | null;
  /** what a user misses with this plan, against the better ones (said with -v, and by ebpf-tools check) */
  limits?: string;
  /** the module whose functions its fentry and fexit programs trace (their targets found by us: moduletargets.ts) */
  btfModule?: string;
  /** the object its programs are in (bpf/<object>.bpf.o), where it is not the one loadWithPlans is given */
  object?: string;
}

export interface Loaded {
  obj: BpfObject;
  plan: AttachPlan;
}

/**
 * Opens, configures (before load), loads and attaches `tool` with the first
 * plan that works. `configure` runs on each fresh object (with the plan it is
 * tried with) and returns what to do after load (e.g. fill a filter map), if
 * anything. `object` is the object's name where it is not the tool's
 * (fsslower run as ext4slower), for the plans that do not name their own.
 */
export function loadWithPlans(
  tool: string, plans: AttachPlan[], configure: (obj: BpfObject, plan: AttachPlan) => (() => void) | void, object = tool,
): Loaded {
  // Before any plan's check, which may read the kernel's BTF or kallsyms.
  checkPrivileges();
  checkKernelBtf();
  const skipped = skippedPlans(tool, plans);
  const refused = RefusedPlans.here();
  const failures: string[] = [];
  for (const plan of plans) {
    const objectName = plan.object ?? object;
    const key = planKey(tool, plan.name, plan.programs, BpfObject.path(objectName));
    const earlier = refused.reason(key);
    const reason = skipped.has(plan.name) ? `${SKIP_PLANS_VARIABLE} names it`
      : earlier !== undefined ? `refused earlier this boot (${earlier})` : plan.unavailable?.() ?? null;
    if (reason) {
      libbpfLog.note(`${tool}: plan ${plan.name} skipped: ${reason}`);
      failures.push(`${plan.name}: ${reason}`);
      continue;
    }
    const obj = BpfObject.open(objectName, plan.btfModule);
    try {
      const wanted = new Set(plan.programs);
      for (const p of obj.programs()) obj.setAutoload(p.name, wanted.has(p.name));
      const afterLoad = configure(obj, plan);
      // libbpf parses a copy of the kernel's BTF while loading a plan that attaches by it (fentry): ours need not be resident meanwhile
      dropKernelBtfPages();
      obj.load();
      afterLoad?.();
      obj.attach(plan.alsoAttached);
      libbpfLog.note(`${tool}: using plan ${plan.name}`);
      if (plan.limits) libbpfLog.note(`${tool}: plan ${plan.name} sees less: ${plan.limits}`);
      releaseLoadMemory();
      return { obj, plan };
    } catch (err) {
      obj.close();
      if (err instanceof UsageError || !(err instanceof RuntimeError)) throw err;
      if (err instanceof KernelRefusal && stableRefusal(err.stage, err.errno)) refused.remember(key, err.reason);
      libbpfLog.note(`${tool}: plan ${plan.name} failed: ${err.message}`);
      failures.push(`${plan.name}: ${err.message}`);
    }
  }
  throw new RuntimeError(`no way to attach works on this kernel (${failures.join('; ')})`);
}

/** For testing only: plans to pass over, as `tool:plan,tool:plan`, so that a fallback runs on a kernel with a better plan. */
export const SKIP_PLANS_VARIABLE = 'EBPF_TOOLS_SKIP_PLANS';

/**
 * The plans of `tool` that EBPF_TOOLS_SKIP_PLANS names. A name that is no
 * plan of the tool is refused, so that a test cannot skip nothing unawares.
 */
export function skippedPlans(tool: string, plans: AttachPlan[]): Set<string> {
  const names = new Set<string>();
  for (const entry of (process.env[SKIP_PLANS_VARIABLE] ?? '').split(',')) {
    const colon = entry.indexOf(':');
    if (colon < 0 || entry.slice(0, colon).trim() !== tool) continue;
    const name = entry.slice(colon + 1).trim();
    if (!plans.some((p) => p.name === name)) {
      throw new UsageError(`${SKIP_PLANS_VARIABLE}: ${tool} has no plan ${quoted(name)} (plans: ${plans.map((p) => p.name).join('; ')})`);
    }
    names.add(name);
  }
  return names;
}

/** Whether kprobes exist in this kernel (CONFIG_KPROBES: the kprobe PMU). */
export function kprobesAvailable(): boolean {
  return existsSync('/sys/bus/event_source/devices/kprobe');
}

let kallsyms: string | undefined;

/**
 * Whether the kernel has a function symbol `name` (a kprobe target), in the
 * kernel itself or in a loaded module (kallsyms adds "\t[module]" to those:
 * ext4, xfs and btrfs are modules in Debian's kernels), as found the first
 * time this boot with the same modules loaded (kernelnames.ts).
 */
export function kernelHasFunction(name: string): boolean {
  return kernelNames().answer('functions', name, () => {
    kallsyms ??= readFileSync('/proc/kallsyms', 'utf8');
    return kallsymsHasFunction(kallsyms, name);
  });
}

export function kallsymsHasFunction(kallsyms: string, name: string): boolean {
  return new RegExp(`^[0-9a-f]+ [tTwW] ${name}(\\t\\[\\S+\\])?$`, 'm').test(kallsyms);
}

/**
 * Whether this kernel has the sys_enter_/sys_exit_ tracepoints of `syscall`
 * (arm64 has no open(); openat2 came in 5.6). Reads tracefs: call it after
 * ensureTracefs().
 */
export function syscallTracepointsExist(syscall: string): boolean {
  return ['/sys/kernel/tracing/events', '/sys/kernel/debug/tracing/events'].some((dir) =>
    existsSync(`${dir}/syscalls/sys_enter_${syscall}`) && existsSync(`${dir}/syscalls/sys_exit_${syscall}`));
}
