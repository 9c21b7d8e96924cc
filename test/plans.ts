// The attach plan each tool takes on each kernel of the matrix (npm test
// runs test/plans-e2e in a guest per kernel and on this machine), written
// once, as measured. A kernel is named by its series: 5.10, 6.1, 6.12, 7 for
// any 7.x, else major.minor (this machine: 6.18).
import { appendFileSync } from 'node:fs';
import { release } from 'node:os';

/** What plans-e2e starts: a tool, and its options where they change the plans (biolatency -Q needs request creation). */
export const VARIANTS = ['opensnoop', 'ext4slower', 'biolatency', 'biolatency -Q', 'biosnoop'] as const;
export type Variant = (typeof VARIANTS)[number];

export const EXPECTED_PLANS: Record<string, Record<Variant, string>> = {
  '5.10': {
    opensnoop: 'syscall tracepoints', ext4slower: 'kprobe', biolatency: 'raw_tp',
    'biolatency -Q': 'raw_tp start at fentry blk_account_io_start', biosnoop: 'raw_tp start at fentry blk_account_io_start',
  },
  '6.1': {
    opensnoop: 'syscall tracepoints', ext4slower: 'fentry', biolatency: 'raw_tp',
    'biolatency -Q': 'raw_tp start at block_getrq', biosnoop: 'raw_tp start at block_getrq',
  },
  '6.12': {
    opensnoop: 'syscall tracepoints', ext4slower: 'fentry', biolatency: 'raw_tp',
    'biolatency -Q': 'raw_tp start at block_io_start', biosnoop: 'raw_tp start at block_io_start',
  },
  '7': {
    opensnoop: 'syscall tracepoints', ext4slower: 'fentry', biolatency: 'raw_tp',
    'biolatency -Q': 'raw_tp start at block_io_start', biosnoop: 'raw_tp start at block_io_start',
  },
  '6.18': {
    opensnoop: 'syscall tracepoints', ext4slower: 'raw syscall tracepoints', biolatency: 'raw_tp',
    'biolatency -Q': 'raw_tp start at block_io_start', biosnoop: 'raw_tp start at block_io_start',
  },
};

export function kernelSeries(kernel = release()): string {
  const [major, minor] = kernel.split(/[.-]/);
  return Number(major) >= 7 ? major : `${major}.${minor}`;
}

/** The plan a tool said (-v) it took. */
export function chosenPlan(tool: string, stderr: string): string | undefined {
  return new RegExp(`^${tool}: using plan (.+)$`, 'm').exec(stderr)?.[1];
}

/** Why -v said a plan was passed over, if it did. */
export function refusal(tool: string, plan: string, stderr: string): string | undefined {
  for (const line of stderr.split('\n')) {
    const prefix = `${tool}: plan ${plan} `;
    if (line.startsWith(prefix + 'skipped: ') || line.startsWith(prefix + 'failed: ')) return line.slice(prefix.length);
  }
  return undefined;
}

export interface PlanResult {
  /** uname -r */
  kernel: string;
  series: string;
  variant: Variant;
  /** the plan forced (every better one skipped by EBPF_TOOLS_SKIP_PLANS), or null for the tool's own choice */
  forced: string | null;
  /** the plan taken, or null if none attached */
  chosen: string | null;
  /** whether the tool printed the event the test caused */
  event: boolean;
  /** for a forced plan not taken: what -v said */
  refused?: string;
}

/** Appends one result to EBPF_TOOLS_PLAN_RESULTS (scripts/test-all.mjs sets it), for scripts/plan-table.mjs. */
export function recordPlan(result: Omit<PlanResult, 'kernel' | 'series'>): void {
  const file = process.env.EBPF_TOOLS_PLAN_RESULTS;
  if (!file) return;
  appendFileSync(file, JSON.stringify({ kernel: release(), series: kernelSeries(), ...result }) + '\n');
}
