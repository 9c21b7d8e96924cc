// fsslower on real XFS and btrfs file systems, made here on loop devices
// (mkfs.xfs, mkfs.btrfs), and FUSE (fuse2fs), through -t and through each name: the same known
// operations as ext4slower-e2e give their exact lines, and each file
// system's tool sees none of the others' (the programs, or the in-kernel
// filter on the superblock, keep to the one traced), and --print-cgroup and
// --cgroup name and select a cgroup made here. NFS is not here: see
// fsslower(8), TESTING.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attachPlans, FILE_SYSTEMS, parseOptions } from '../tools/fsslower.js';
import { makeCgroups, moveToCgroup } from './cgroup-helpers.js';
import { sleep, startAttached, startVerboseAttached } from './helpers.js';
import { compileOps, EXPECTED, filesystemType, makeFileSystem, type MadeFileSystem, pidColumn, registered, row, startOps } from './fsslower-ops.js';

const work = mkdtempSync('/var/tmp/fsslower-test-');
const mounts: string[] = [];
t.teardown(() => {
  for (const dir of mounts) spawnSync('umount', [dir]);
  rmSync(work, { recursive: true, force: true });
});
const OPS = compileOps(work);

const TYPES = ['xfs', 'btrfs', 'fuse'] as const;
const mountPoints = Object.fromEntries(TYPES.map((fs) => [fs, makeFileSystem(work, fs, mounts)])) as Record<MadeFileSystem, string>;
const ext4Dir = join(work, 'ext4');
mkdirSync(ext4Dir);
if (filesystemType(ext4Dir) !== 'ext4') throw new Error(`${ext4Dir} is not on ext4: the test needs the ext4 root`);


for (const [i, fs] of TYPES.entries()) {
  t.test(`${fs}: fsslower -t ${fs} and ${fs}slower give each operation its exact line, and nothing of ext4`, async (t) => {
    const file = join(mountPoints[fs], `ops-${fs}-${process.pid}.dat`);
    // A creating open on FUSE is FUSE_CREATE (fuse_create_open), not fuse_open, which
    // fentry and kprobes trace (as libbpf-tools'): e4ops's open of an existing file is fuse_open.
    if (fs === 'fuse') writeFileSync(file, '');
    const ext4File = join(ext4Dir, `ops-ext4-${process.pid}.dat`);
    const ops = startOps(OPS, ['ops', file, ext4File]);
    const other = TYPES[(i + 1) % TYPES.length];
    const otherFile = join(mountPoints[other], `ops-${other}-${process.pid}.dat`);
    const otherOps = startOps(OPS, ['ops', otherFile, join(ext4Dir, `other-${process.pid}.dat`)]);
    const header = new RegExp(`^Tracing ${fs} operations\\.\\.\\. Hit Ctrl-C to end\\.$`);
    // One after another: four loading at once on a TCG guest's one CPU took longer than any wait.
    const byType = await startAttached('fsslower', ['-t', fs, '0'], header);
    const byName = await startAttached(`${fs}slower`, ['-p', String(ops.pid), '0'], header);
    const csv = await startAttached(`${fs}slower`, ['-c', '-p', String(ops.pid), '0'], /^ENDTIME_ns,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE$/);
    const verbose = await startVerboseAttached(`${fs}slower`, ['-p', String(otherOps.pid), '0']);
    await Promise.all([ops.go(), otherOps.go()]);
    const name = `ops-${fs}-${process.pid}.dat`;
    const rows = EXPECTED.map(([type, bytes, offset]) => row(ops.pid, type, bytes, Math.floor(offset / 1024), name));
    await byType.waitForLine(rows[rows.length - 1]);
    await byName.waitForLine(rows[rows.length - 1]);
    await csv.waitForLine((l) => l.includes(',S,LL_MAX,') && l.endsWith(name) && csv.lines.filter((x) => x.endsWith(name)).length === EXPECTED.length);
    await sleep(300);
    const finished = await Promise.all([byType, byName, csv, verbose].map((tool) => tool.stop('SIGINT')));
    for (const done of finished) t.equal(done.code, 0, 'Ctrl-C exits 0');

    for (const [tool, what] of [[byType, `fsslower -t ${fs}`], [byName, `${fs}slower -p`]] as const) {
      const mine = tool.lines.filter((l) => pidColumn(l) === String(ops.pid));
      t.equal(mine.length, EXPECTED.length, `${what}: one line per operation on the ${fs} file, none for the ext4 one:\n${mine.join('\n')}`);
      mine.forEach((line, i) => t.match(line, rows[i], `${what}: ${EXPECTED[i][0]} ${EXPECTED[i][1]} at ${EXPECTED[i][2]}`));
    }
    t.notOk(byType.lines.some((l) => l.includes(`ops-${other}-`) || l.includes('other-') || l.includes('ops-ext4-')),
      `fsslower -t ${fs}: nothing of ${other} or ext4`);
    const csvLines = csv.lines.slice(1);
    t.same(csvLines.map((l) => l.split(',').slice(1, 6).join(',')),
      EXPECTED.map(([type, bytes, offset]) => `e4ops,${ops.pid},${type},${bytes},${offset}`), `${fs}slower -c: exact values`);
    t.ok(csvLines.every((l) => l.endsWith(`,${name}`)), 'on the file');
    t.same(verbose.lines.slice(2), [], `${fs}slower -p of a process working on ${other} and ext4: nothing`);
    const plans = attachPlans(parseOptions(['-t', fs])).map((p) => p.name);
    const chosen = new RegExp(`^${fs}slower: using plan (.+)$`, 'm').exec(finished[3].stderr)?.[1];
    t.ok(chosen && plans.includes(chosen), `-v names the attach mode (${chosen})`);
    for (const earlier of plans.slice(0, plans.indexOf(chosen!))) {
      t.match(finished[3].stderr, new RegExp(`^${fs}slower: plan ${earlier} (failed|skipped): .+$`, 'm'), `-v says why not ${earlier}`);
    }
  });
}

for (const fs of ['xfs', 'btrfs'] as const) {
  t.test(`${fs}slower --print-cgroup: the cgroup of each operation, three deep; --cgroup keeps to it`, async (t) => {
    const base = `/ebpf-tools-${fs}slower-${process.pid}`;
    const cgroup = `${base}/one/two`;
    makeCgroups(base, `${base}/one`, cgroup);
    const name = (who: string): string => `${who}-${fs}-${process.pid}.dat`;
    const inside = startOps(OPS, ['ops', join(mountPoints[fs], name('inside')), join(ext4Dir, name('inside'))]);
    const outside = startOps(OPS, ['ops', join(mountPoints[fs], name('outside')), join(ext4Dir, name('outside'))]);
    moveToCgroup(cgroup, inside.pid);
    const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))![1];
    const header = /^TIME +COMM +PID +T +BYTES +OFF_KB +LAT\(ms\) CGROUP +FILENAME$/;
    const all = await startAttached(`${fs}slower`, ['--print-cgroup', '0'], header);
    const only = await startAttached(`${fs}slower`, ['--print-cgroup', '--cgroup', cgroup, '0'], header);
    // one after the other: once the filtered tool has shown the last of the second, it has read the first
    await outside.go();
    await inside.go();
    const rows = (pid: number, who: string, path: string): RegExp[] =>
      EXPECTED.map(([type, bytes, offset]) => row(pid, type, bytes, Math.floor(offset / 1024), name(who), path));
    const insideRows = rows(inside.pid, 'inside', cgroup);
    await all.waitForLine(insideRows[insideRows.length - 1]);
    await only.waitForLine(insideRows[insideRows.length - 1]);
    for (const tool of [all, only]) t.equal((await tool.stop()).code, 0);
    const of = (tool: typeof all, pid: number): string[] => tool.lines.filter((l) => pidColumn(l) === String(pid));
    for (const [tool, what] of [[all, `${fs}slower --print-cgroup`], [only, `--cgroup ${cgroup}`]] as const) {
      const mine = of(tool, inside.pid);
      t.equal(mine.length, EXPECTED.length, `${what}: one line per operation in the cgroup:\n${mine.join('\n')}`);
      mine.forEach((line, i) => t.match(line, insideRows[i], `${what}: ${EXPECTED[i][0]} ${EXPECTED[i][1]} at ${EXPECTED[i][2]}, ${cgroup}`));
    }
    const outsideRows = rows(outside.pid, 'outside', own);
    const others = of(all, outside.pid);
    t.equal(others.length, EXPECTED.length, `the process outside, in ${own}:\n${others.join('\n')}`);
    others.forEach((line, i) => t.match(line, outsideRows[i]));
    t.same(of(only, outside.pid), [], '--cgroup: nothing of the process outside');
  });
}

t.test('ext4slower sees the ext4 file of the same run, and none of the xfs and btrfs files', async (t) => {
  const xfsFile = join(mountPoints.xfs, 'mixed.dat');
  const ops = startOps(OPS, ['ops', join(ext4Dir, 'mixed.dat'), xfsFile]);
  const tool = await startAttached('ext4slower', ['-p', String(ops.pid), '0'], /^Tracing ext4 operations\.\.\. Hit Ctrl-C to end\.$/);
  await ops.go();
  const rows = EXPECTED.map(([type, bytes, offset]) => row(ops.pid, type, bytes, Math.floor(offset / 1024), 'mixed.dat'));
  await tool.waitForLine(rows[rows.length - 1]);
  await sleep(300);
  t.equal((await tool.stop()).code, 0);
  // e4ops does 3 operations on its second file first (open, write, fsync, pread): here on xfs, so not shown
  const mine = tool.lines.slice(2);
  t.equal(mine.length, EXPECTED.length, `the ext4 file's operations only:\n${mine.join('\n')}`);
  mine.forEach((line, i) => t.match(line, rows[i]));
});

t.test('nfsslower: fentry and kprobes are refused for want of NFS here, or attach; the fallback filters on NFS', async (t) => {
  const nfs = FILE_SYSTEMS.nfs;
  const tool = await startVerboseAttached('nfsslower', ['-p', String(process.pid), '0']);
  t.equal((await tool.stop()).code, 0);
  const chosen = /^nfsslower: using plan (.+)$/m.exec(tool.stderr)![1];
  if (!registered('nfs') && !registered('nfs4')) {
    t.match(tool.stderr, new RegExp(`^nfsslower: plan fentry skipped: kernel BTF has no ${nfs.functions.join(', ')} \\(nfs is not in this kernel: not built in, and no module loaded\\)$`, 'm'),
      'fentry: no NFS functions, and why');
    t.not(chosen, 'fentry');
  }
  t.match(tool.stdout, /^Tracing nfs operations\.\.\. Hit Ctrl-C to end\.$/m);
});
