// A real container: Debian's runc runs a busybox root file system in a
// cgroup shaped as Docker's systemd driver names it (docker-<id>.scope),
// and execsnoop and opensnoop must name its events by the container's
// 12-character id with --print-cgroup=container, and by its full path in
// --json. runc is installed by scripts/install-test-deps.sh.
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RunningTool, startAttached, startVerboseAttached, withoutSkippedRuns } from './helpers.js';

const RUNC = '/usr/sbin/runc';
const BUSYBOX = '/bin/busybox';
for (const program of [RUNC, BUSYBOX]) {
  if (!existsSync(program)) throw new Error(`${program} is missing: scripts/install-test-deps.sh installs it`);
}

const ID = randomBytes(32).toString('hex');
const SHORT_ID = ID.slice(0, 12);
const PARENT = `/ebpf-tools-container-${process.pid}`;
/** As the CGROUP column shows it: relative to the cgroup2 mount. */
const CGROUP = `${PARENT}/docker-${ID}.scope`;
const MARKER = `/marker-${process.pid}`;

const work = mkdtempSync('/var/tmp/ebpf-tools-container-');
const bundle = join(work, 'bundle');
const rootfs = join(bundle, 'rootfs');
for (const dir of ['bin', 'proc', 'dev', 'sys', 'tmp']) mkdirSync(join(rootfs, dir), { recursive: true });
copyFileSync(BUSYBOX, join(rootfs, 'bin/busybox'));
symlinkSync('busybox', join(rootfs, 'bin/cat'));

/** Every cgroup hierarchy mounted (v1 ones too: runc makes the parent in each, and leaves it). */
function cgroupMounts(): string[] {
  return readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '))
    .filter((f) => f[2] === 'cgroup' || f[2] === 'cgroup2').map((f) => f[1]);
}

t.teardown(() => {
  rmSync(work, { recursive: true, force: true });
  for (const mount of cgroupMounts()) if (existsSync(`${mount}${PARENT}`)) rmdirSync(`${mount}${PARENT}`);
});

/** Runs the container to its end: /bin/cat MARKER (which fails: ENOENT), in the docker-shaped cgroup. */
async function runContainer(): Promise<void> {
  const spec = spawn(RUNC, ['spec', '--bundle', bundle], { stdio: 'ignore' });
  await new Promise((resolve) => spec.on('close', resolve));
  const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as {
    process: { terminal: boolean; args: string[] }; root: { path: string; readonly: boolean }; linux: { cgroupsPath?: string };
  };
  config.process.terminal = false;
  config.process.args = ['/bin/cat', MARKER];
  config.root = { path: 'rootfs', readonly: true };
  config.linux.cgroupsPath = CGROUP;
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
  const runc = spawn(RUNC, ['--root', join(work, 'state'), 'run', '--bundle', bundle, `ebpf-tools-${process.pid}`],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  runc.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => runc.on('close', resolve));
  // cat fails on the missing marker, and runc exits with its status
  if (code !== 1 || !stderr.includes(`can't open '${MARKER}'`)) throw new Error(`runc run: status ${code}: ${stderr}`);
}

const byMarker = (tool: RunningTool, comm: string): Promise<string> =>
  tool.waitForLine((l) => l.includes(MARKER) && l.includes(comm));

t.test('runc: execsnoop and opensnoop name the container by its id, and by its cgroup path in JSON', async (t) => {
  const execs = await startAttached('execsnoop', ['--print-cgroup=container'], /^PCOMM\s+PID\s+PPID\s+RET CONTAINER\s+ARGS$/);
  const opens = await startAttached('opensnoop', ['--print-cgroup=container'], /^PID\s+COMM\s+FD\s+ERR CONTAINER\s+PATH$/);
  const execJson = await startVerboseAttached('execsnoop', ['--json', '--print-cgroup']);
  const openJson = await startVerboseAttached('opensnoop', ['--json', '--print-cgroup']);
  await runContainer();
  t.match(await byMarker(execs, 'cat'), new RegExp(`^cat {14}\\d+ +\\d+ +0 ${SHORT_ID} /bin/cat ${MARKER}$`), 'execsnoop: the id');
  t.match(await byMarker(opens, 'cat'), new RegExp(`^\\d+ +cat +-1 +2 ${SHORT_ID} ${MARKER}$`), 'opensnoop: the id');
  const exec = JSON.parse(await byMarker(execJson, '"comm":"cat"')) as Record<string, unknown>;
  t.same([exec.cgroup, typeof exec.cgroup_id], [CGROUP, 'number'], 'execsnoop --json: the full path');
  const open = JSON.parse(await byMarker(openJson, '"comm":"cat"')) as Record<string, unknown>;
  t.same([open.path, open.cgroup, open.cgroup_id], [MARKER, CGROUP, exec.cgroup_id], 'opensnoop --json: the full path, the same id');
  for (const tool of [execs, opens]) {
    const done = await tool.stop();
    t.equal(done.code, 0);
    t.equal(withoutSkippedRuns(done.stderr), '');
  }
  for (const tool of [execJson, openJson]) t.equal((await tool.stop()).code, 0);
});
