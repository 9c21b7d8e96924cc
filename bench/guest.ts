// The benchmark on a kernel of the test matrix (scripts/vm-run boots it in
// qemu): one before 6.16, whose BTF cannot be mmapped, and where the C
// ext4slower works (on this machine it fails; the C biosnoop fails in the
// guests too, and is held to C biolatency as here). The benchmark runs
// inside the guest, its section 1b with the machine's Node (ready time and
// memory at ready, and the open storm's peak), and writes its report into
// a directory shared with the guest (not under /tmp or /var/tmp, which the
// guest mounts over). qemu runs here without KVM (TCG): a bare Node start
// takes ~5 times as long as on the machine, and other work differently
// (the C tools less so than JavaScript), so only ratios within the guest
// compare, and not to the machine's.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { ROOT, running } from './measure.js';

/**
 * The guest's clock: the instructions it runs, counted by qemu (-icount,
 * 8 ns each), its waits (for this machine's file server, for its timers)
 * in real time; or this machine's clock alone. Counted, what the guest does
 * takes the same time whatever else this machine runs (on this machine's
 * clock a bare Node start in the guest took 365 to 705 ms within an hour,
 * and a tool's ratio moved by a third), and qemu's translating of the
 * guest's code, which weighs on JavaScript (much code, run once) far more
 * than on C, and which no real CPU pays, is left out. Not sleep=off: an
 * idle guest's clock then jumps to its next timer, and every open of a file
 * over 9p (a wait for this machine) cost up to a tick (the C opensnoop's
 * start: 880 ms against 525).
 */
export const GUEST_CLOCKS = ['instructions', 'real'] as const;
export type GuestClock = (typeof GUEST_CLOCKS)[number];

/** qemu's -icount for the instructions clock (scripts/vm-run's VM_RUN_ICOUNT). */
const ICOUNT = 'shift=3';

export interface GuestSettings {
  kernel: string;
  rounds: number;
  opens: number;
  clock: GuestClock;
}

const SHARED_PARENT = '/var/cache/ebpf-tools';

/** Runs the benchmark's section 1b in a guest on `settings.kernel`; its report (or why there is none) as section 7. */
export async function guestReport(settings: GuestSettings, progress: (text: string) => void): Promise<string> {
  mkdirSync(SHARED_PARENT, { recursive: true, mode: 0o700 });
  const shared = mkdtempSync(`${SHARED_PARENT}/bench-guest-`);
  try {
    return await runInGuest(settings, shared, progress);
  } finally {
    rmSync(shared, { recursive: true, force: true });
  }
}

async function runInGuest(settings: GuestSettings, shared: string, progress: (text: string) => void): Promise<string> {
  const report = `${shared}/guest.md`;
  const args = [settings.kernel, '--', process.execPath, `${ROOT}dist/bench/bench.js`, '--sections', 'nodes', '--nodes', 'none',
    '--rounds', String(settings.rounds), '--opens', String(settings.opens), '--output', report];
  progress(`guest: scripts/vm-run ${args.join(' ')}`);
  const child = spawn(`${ROOT}scripts/vm-run`, args, {
    cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, VM_RUN_WRITABLE: shared, ...(settings.clock === 'instructions' ? { VM_RUN_ICOUNT: ICOUNT } : {}) },
  });
  running.add(child);
  let lastLine = '';
  let partial = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines.filter((l) => l.trim())) {
      lastLine = line;
      progress(`guest: ${line}`);
    }
  });
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  running.delete(child);
  const title = `## 7. On kernel ${settings.kernel} (before 6.16), in a qemu guest`;
  if (status !== 0 || !existsSync(report)) {
    return `${title}\n\nNot measured: the guest run failed (status ${status}): ${lastLine || 'no output'}`;
  }
  return guestSection(title, readFileSync(report, 'utf8'), settings);
}

/** The guest's report as a section: its environment, then its sections one level down. */
export function guestSection(title: string, report: string, settings: GuestSettings): string {
  const lines = report.trimEnd().split('\n');
  const firstSection = lines.findIndex((l) => l.startsWith('## '));
  const environment = lines.slice(0, firstSection < 0 ? lines.length : firstSection)
    .filter((l) => l.startsWith('- ') && !l.startsWith('- settings:'));
  const sections = firstSection < 0 ? [] : lines.slice(firstSection).map((l) => (l.startsWith('## ') ? `#${l}` : l));
  return [
    title,
    '',
    `Debian's kernel, booted by \`scripts/vm-run ${settings.kernel}\`: one whose BTF cannot be mmapped (before 6.16), where the C ext4slower works (the C biosnoop fails there as well, and is held to C biolatency). The benchmark runs inside the guest (section 1b: the machine's Node alone, ${settings.rounds} rounds, an open storm of ${settings.opens.toLocaleString('en-US')} opens a round). qemu runs without KVM here (TCG), and other work differently from the machine, so the times compare only within this section, as ratios. ${settings.clock === 'instructions'
      ? `The guest's clock counts the instructions it runs (qemu's \`-icount ${ICOUNT}\`, 8 ns each; its waits pass in real time): the same times whatever else the machine is doing, without qemu's cost of translating the guest's code, which no real CPU pays and which weighs on JavaScript far more than on C (\`--guest-clock real\`: the machine's clock).`
      : "The guest's clock is the machine's (`--guest-clock real`): times move with whatever else the machine is doing, and include qemu's translating of the guest's code."}`,
    '',
    ...environment,
    '',
    ...sections,
  ].join('\n');
}
