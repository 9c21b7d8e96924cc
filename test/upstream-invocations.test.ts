// Every command line upstream documents (test/upstream-invocations.ts) run for
// real: refused ones exit 2 with their reason, the others attach, and where an
// event is asked for, a workload makes it and the tool shows it.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { rootDisk } from './bio-helpers.js';
import { compileOps, makeFileSystem } from './fsslower-ops.js';
import { RunningTool, sleep, startTool, toolArgv, withoutTapHooks, type Finished } from './helpers.js';
import { INVOCATIONS, type Invocation, type Workload } from './upstream-invocations.js';

t.setTimeout(15 * 60 * 1000);

/** Entries run this many at a time (each waits mostly on the kernel and on timers). */
const AT_ONCE = 4;
const HISTOGRAM_TOOLS = new Set(['biolatency']);

const scratch = mkdtempSync('/tmp/upstream-invocations-');
chmodSync(scratch, 0o777); // the uid 1000 workloads write here
const disk = rootDisk(); // on the root file system (ext4 on a block device): block I/O and ext4 operations
// XFS and btrfs on loop devices and a FUSE mount, their images on the root file system
const fsWork = mkdtempSync('/var/tmp/upstream-invocations-fs-');
const mounts: string[] = [];
t.teardown(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(disk.dir, { recursive: true, force: true });
  for (const dir of mounts) spawnSync('umount', [dir]);
  rmSync(fsWork, { recursive: true, force: true });
});
chmodSync(disk.dir, 0o755);
const fsDirs = {
  ext4: disk.dir,
  xfs: makeFileSystem(fsWork, 'xfs', mounts),
  btrfs: makeFileSystem(fsWork, 'btrfs', mounts),
  fuse: makeFileSystem(fsWork, 'fuse', mounts),
};
const OPS = compileOps(fsWork);
/** How long the slow write takes: over every threshold of the list (10 ms by default). */
const SLOW_MS = 100;

/** A copy of a program under another name, so its command name is that name. */
function named(program: string, name: string): string {
  const copy = join(scratch, name);
  copyFileSync(program, copy);
  chmodSync(copy, 0o755);
  return copy;
}
const main = named('/usr/bin/touch', 'main');
const ed = named('/usr/bin/touch', 'ed');
const echoMount = join(mkdtempSync(join(scratch, 'm-')), 'mount');
copyFileSync('/bin/echo', echoMount);
chmodSync(echoMount, 0o755);
// -n main for execsnoop: a command named main
const execMain = join(mkdtempSync(join(scratch, 'x-')), 'main');
copyFileSync('/bin/echo', execMain);
chmodSync(execMain, 0o755);

let counter = 0;
const marker = (): string => `up${process.pid}x${++counter}`;

/** Makes the workload's event; returns what identifies it in the tool's output. */
function runWorkload(kind: Workload, m: string): (line: string) => boolean {
  const has = (text: string) => (l: string) => l.includes(text);
  const run = (file: string, args: string[], options: { uid?: number; cwd?: string } = {}): number => {
    const r = spawnSync(file, args, { stdio: 'ignore', ...options });
    return r.pid ?? -1;
  };
  switch (kind) {
    case 'exec': run('/bin/echo', [m]); return has(m);
    case 'exec-as-1000': run('/bin/echo', [m], { uid: 1000 }); return has(m);
    case 'exec-named-main': run(execMain, [m]); return has(m);
    case 'exec-named-mount': run(echoMount, [m]); return has(m);
    case 'exec-tpkg': run('/bin/echo', [m, 'tpkg']); return has(m);
    case 'exec-failing': run(`/nonexistent-${m}`, []); return has(`/nonexistent-${m}`);
    case 'open': run('/usr/bin/touch', [join(scratch, m)]); return has(join(scratch, m));
    case 'open-as-1000': run('/usr/bin/touch', [join(scratch, m)], { uid: 1000 }); return has(join(scratch, m));
    case 'open-named-main': run(main, [join(scratch, m)]); return has(join(scratch, m));
    case 'open-named-ed': run(ed, [join(scratch, m)]); return has(join(scratch, m));
    case 'open-missing': run('/usr/bin/touch', [join(scratch, m, 'x')]); return has(join(scratch, m, 'x'));
    case 'open-relative': run('/usr/bin/touch', [m], { cwd: scratch }); return has(join(scratch, m));
    case 'block-io': {
      const pid = run('dd', ['if=/dev/zero', `of=${join(disk.dir, m)}`, 'bs=64k', 'count=16', 'oflag=direct']);
      return (l) => new RegExp(`\\bdd\\s+${pid}\\b`).test(l);
    }
    case 'ext4-write':
    case 'xfs-write':
    case 'btrfs-write': {
      const dir = fsDirs[kind.slice(0, -'-write'.length) as 'ext4' | 'xfs' | 'btrfs'];
      run('dd', ['if=/dev/zero', `of=${join(dir, m)}`, 'bs=4k', 'count=4', 'conv=fsync']);
      return has(m);
    }
    case 'ext4-slow-write':
    case 'xfs-slow-write':
    case 'btrfs-slow-write':
    case 'fuse-slow-write': {
      const dir = fsDirs[kind.slice(0, -'-slow-write'.length) as keyof typeof fsDirs];
      // e4ops waits for a byte on stdin, then writes a page served SLOW_MS late by userfaultfd
      const r = spawnSync(OPS, ['slow', join(dir, m), String(SLOW_MS)], { input: 'g', stdio: ['pipe', 'ignore', 'pipe'], encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`e4ops slow failed (${r.status}): ${r.stderr}`);
      return has(m);
    }
  }
}

/** A histogram with a count: a bar of stars, or a JSON object with buckets. */
const histogramShown = (stdout: string): boolean => /\|\*+/.test(stdout) || /^\{.*"(data|buckets|vals)"/m.test(stdout);

function runAsync(tool: string, argv: string[]): Promise<Finished> {
  const [file, args] = withoutTapHooks(process.execPath, toolArgv(tool, argv));
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/** Whether the process holds a BPF link: its programs are attached. */
function attached(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:bpf_link';
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

/**
 * Waits for the first line (a header, a "Tracing..." line: printed once
 * attached); a silent entry prints none: then for its first BPF link (a fixed
 * wait was too short on a loaded machine, where SIGINT came before the tool
 * had its handler).
 */
async function ready(tool: RunningTool, silent: boolean): Promise<void> {
  const deadline = Date.now() + 60000;
  const done = silent ? () => attached(tool.proc.pid!) : () => tool.lines.length > 0;
  while (!done() && Date.now() < deadline && tool.proc.exitCode === null) await sleep(20);
  if (silent) await sleep(500); // past the attach, to the signal handlers set up after it
}

/** Runs one entry; returns what went wrong, or nothing. */
async function check(entry: Invocation): Promise<string | undefined> {
  const { expect } = entry;
  if ('help' in expect || 'refused' in expect || 'prints' in expect) {
    const r = await runAsync(entry.tool, entry.argv);
    if ('help' in expect) return r.code === 0 && /EXAMPLES:/.test(r.stdout) ? undefined : `help: status ${r.code}, ${r.stderr}`;
    if ('prints' in expect) {
      return r.code === 0 && expect.prints.test(r.stdout) && r.stderr === '' ? undefined : `expected status 0 and ${String(expect.prints)}: status ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${r.stderr}`;
    }
    const lines = r.stderr.split('\n').filter(Boolean);
    if (r.code !== 2) return `expected status 2, got ${r.code}: ${r.stderr}`;
    if (lines.length !== 1 || !expect.refused.test(lines[0])) return `expected one line matching ${String(expect.refused)}: ${r.stderr}`;
    return undefined;
  }
  const m = marker();
  const argv = entry.argv.map((a) => (a === 'MARKER' ? join(scratch, m) : a));
  const tool = startTool(entry.tool, argv);
  let shown: (line: string) => boolean = () => true;
  if (entry.selfTracing) {
    shown = (l) => l.includes(join(scratch, m));
  } else {
    await ready(tool, entry.silent === true);
    if (tool.proc.exitCode !== null) return `exited early (${tool.proc.exitCode}): ${tool.stderr}`;
    if ('attaches' in expect && tool.lines.length === 0) return `no header: ${tool.stderr}`;
    if ('traces' in expect) shown = runWorkload(expect.traces, m);
  }
  const histogram = HISTOGRAM_TOOLS.has(entry.tool);
  const hasInterval = entry.argv.some((a) => /^\d+$/.test(a));
  if ('traces' in expect && !entry.ends && !(histogram && !hasInterval)) {
    const deadline = Date.now() + 8000;
    while (!(histogram ? histogramShown(tool.stdout) : tool.lines.some(shown)) && Date.now() < deadline) await sleep(50);
  }
  const done = entry.ends ? await Promise.race([tool.finished(), sleep(15000).then(() => tool.stop('SIGKILL'))]) : await tool.stop('SIGINT');
  if (done.code !== 0) return `status ${done.code} (${done.signal ?? 'no signal'}): ${done.stderr}`;
  if ('traces' in expect) {
    const ok = histogram ? histogramShown(done.stdout) : done.stdout.split('\n').some(shown);
    if (!ok) return `the ${expect.traces} event is not shown; stdout:\n${done.stdout.slice(0, 2000)}\nstderr:\n${done.stderr}`;
  }
  return undefined;
}

for (const tool of [...new Set(INVOCATIONS.map((e) => e.tool))]) {
  t.test(`${tool}: every command line upstream documents`, async (t) => {
    const entries = INVOCATIONS.filter((e) => e.tool === tool);
    for (let i = 0; i < entries.length; i += AT_ONCE) {
      const batch = entries.slice(i, i + AT_ONCE);
      const results = await Promise.all(batch.map(check));
      batch.forEach((entry, k) => t.equal(results[k], undefined, `${tool} ${entry.argv.join(' ')} (${entry.from})`));
    }
  });
}
