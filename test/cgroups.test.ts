import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cgroup2Root, usageError } from './helpers.js';
import {
  cgroupHeader, cgroupModeFromArgs, CONTAINER_ARGUMENT, containerOf, describeCgroup, findContainerCgroups, pathOfNames, podOf,
} from '../common/cgroups.js';
import { parseOptions as execsnoopOptions } from '../tools/execsnoop.js';
import { parseOptions as opensnoopOptions } from '../tools/opensnoop.js';

const ID = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const names = (...parts: string[]): Uint8Array => Buffer.from(parts.map((p) => `${p}\0`).join(''));
const POD_UID = '0f6b6a1c-3d2e-4f5a-8b9c-0123456789ab';
/** A pod's own cgroup as systemd's driver names it: its uid's dashes as underscores. */
const systemdPod = (uid: string): string => `kubepods-besteffort-pod${uid.replace(/-/g, '_')}.slice`;
const SYSTEMD_POD = systemdPod(POD_UID);

t.test('the kernel names (innermost first) make the path, the root is /', async (t) => {
  t.equal(Buffer.from(pathOfNames(names('c', 'b', 'a'), false)).toString(), '/a/b/c');
  t.equal(Buffer.from(pathOfNames(names(), false)).toString(), '/');
  t.equal(Buffer.from(pathOfNames(names('c', 'b'), true)).toString(), '.../b/c', 'outer names missing: marked');
  t.equal(Buffer.from(pathOfNames(Buffer.from('c\0b'), false)).toString(), '/b/c', 'a last name without its NUL is kept');
});

t.test('container ids from every well-known cgroup shape', async (t) => {
  const short = ID.slice(0, 12);
  for (const path of [
    `/system.slice/docker-${ID}.scope`,
    `/system.slice/cri-containerd-${ID}.scope`,
    `/machine.slice/libpod-${ID}.scope/container`,
    `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f6b6a1c_3d2e_4f5a_8b9c_0123456789ab.slice/crio-${ID}.scope`,
    `/kubepods/besteffort/pod0f6b6a1c-3d2e-4f5a-8b9c-0123456789ab/${ID}`,
    `/docker/${ID}`,
  ]) t.equal(containerOf(path), short, path);
  t.equal(containerOf('/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f6b6a1c_3d2e_4f5a_8b9c_0123456789ab.slice'),
    'pod0f6b6a1c-3d2e-4f5a-8b9c-0123456789ab', 'a process in the pod itself: the pod uid');
  t.equal(containerOf(`/kubepods/burstable/pod${POD_UID}`), `pod${POD_UID}`, 'the cgroupfs driver\'s pod');
  t.equal(containerOf('/system.slice/nginx.service'), undefined);
  t.equal(containerOf(`/system.slice/docker-${ID.slice(1)}.scope`), undefined, 'not 64 hex digits: no id');
});

t.test('the column escapes, the JSON keeps the exact bytes; CONTAINER falls back to the path', async (t) => {
  const hostile = Buffer.concat([Buffer.from('/ev\x1b[31mil'), Buffer.from([0xff]), Buffer.from('x')]);
  const c = describeCgroup(42, hostile, 'path');
  t.equal(c.column, `${'/ev\\x1b[31mil\\xffx'.padEnd(32)} `);
  t.same(JSON.parse(`{${c.json.slice(1)}}`), { cgroup_id: 42, cgroup: '/ev\x1b[31mil\udcffx' });
  const docker = describeCgroup(7, Buffer.from(`/system.slice/docker-${ID}.scope`), 'container');
  t.equal(docker.column, `${ID.slice(0, 12)} `);
  t.equal(JSON.parse(`{${docker.json.slice(1)}}`).cgroup, `/system.slice/docker-${ID}.scope`, 'the full path stays in JSON');
  t.equal(describeCgroup(8, Buffer.from('/user.slice'), 'container').column, '/user.slice  ');
  const unknown = describeCgroup(9, undefined, 'path');
  t.equal(unknown.column.trim(), '?');
  t.same(JSON.parse(`{${unknown.json.slice(1)}}`), { cgroup_id: 9, cgroup: null });
  t.equal(cgroupHeader('path'), `${'CGROUP'.padEnd(32)} `);
  t.equal(cgroupHeader('container'), 'CONTAINER    ');
});

t.test('--print-cgroup takes its value only attached, as getopt optional arguments', async (t) => {
  t.equal(execsnoopOptions([]).printCgroup, undefined);
  t.equal(execsnoopOptions(['--print-cgroup']).printCgroup, 'path');
  t.equal(execsnoopOptions(['--print-cgroup', '-T']).printCgroup, 'path', 'a bare one takes no next word');
  t.equal(opensnoopOptions(['--print-cgroup=container']).printCgroup, 'container');
  t.equal(usageError(() => execsnoopOptions(['--print-cgroup', 'container'])), "unknown argument 'container'");
  t.equal(usageError(() => execsnoopOptions(['--print-cgroup='])), 'option --print-cgroup needs a value');
  t.match(usageError(() => execsnoopOptions(['--print-cgroup=pod'])), /^invalid --print-cgroup 'pod'/);
  t.equal(cgroupModeFromArgs('path'), 'path');
});

t.test('whatever CONTAINER shows, --cgroup takes as a container: an id or its 12-character start, a pod', async (t) => {
  for (const path of [`/system.slice/docker-${ID}.scope`, `/kubepods.slice/${SYSTEMD_POD}`, `/kubepods/besteffort/pod${POD_UID}`]) {
    t.ok(CONTAINER_ARGUMENT.test(containerOf(path)!), `${path}: ${containerOf(path)}`);
  }
  t.ok(CONTAINER_ARGUMENT.test(ID), 'the full id');
  for (const value of [ID.slice(0, 11), `${ID}0`, ID.toUpperCase(), 'pod0f6b6a1c', `pod${POD_UID.replace(/-/g, '_')}`, `pod${POD_UID}x`, `x${ID}`]) {
    t.notOk(CONTAINER_ARGUMENT.test(value), value);
  }
  t.equal(podOf(SYSTEMD_POD), `pod${POD_UID}`);
  t.equal(podOf(`pod${POD_UID}`), `pod${POD_UID}`);
  t.equal(podOf(`docker-${ID}.scope`), undefined);
});

t.test('the cgroups a container id or pod names: an id by its start, a pod exactly', async (t) => {
  const root = mkdtempSync('/tmp/ebpf-tools-cgroups-');
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const pod = join(root, 'kubepods.slice', 'kubepods-besteffort.slice', SYSTEMD_POD);
  const container = join(pod, `cri-containerd-${ID}.scope`);
  const otherPod = join(root, 'kubepods', 'besteffort', 'pod0f6b6a1c-3d2e-4f5a-8b9c-0123456789ac');
  for (const dir of [container, otherPod]) mkdirSync(dir, { recursive: true });
  t.same(findContainerCgroups(root, `pod${POD_UID}`), [pod], 'the pod\'s own cgroup, not the other pod\'s');
  t.same(findContainerCgroups(root, ID.slice(0, 12)), [container], 'a container inside the pod, by its id\'s start');
  t.same(findContainerCgroups(root, 'pod0f6b6a1c-3d2e-4f5a-8b9c-0123456789ac'), [otherPod], 'a cgroupfs pod');
  t.same(findContainerCgroups(root, `pod${POD_UID.slice(0, -1)}0`), [], 'no such pod');
});

t.test('--cgroup pod<uid>: the pod\'s own cgroup; an unknown pod, or one of two cgroups, a usage error', async (t) => {
  const base = join(cgroup2Root(), `ebpf-tools-cgroups-unit-${process.pid}`);
  const uid = `${process.pid.toString(16).padStart(8, '0')}${POD_UID.slice(8)}`;
  const pod = join(base, systemdPod(uid));
  const cgroupfsPod = join(base, `pod${uid}`);
  mkdirSync(pod, { recursive: true });
  // innermost first: a cgroup directory goes only by rmdir, its files with it
  t.teardown(() => [cgroupfsPod, pod, base].filter((dir) => existsSync(dir)).forEach((dir) => rmdirSync(dir)));
  t.equal(execsnoopOptions(['--cgroup', `pod${uid}`]).cgroup, pod);
  t.equal(opensnoopOptions(['--cgroup', `pod${uid}`]).cgroup, pod);
  const unknown = `pod${uid.slice(0, -1)}c`;
  t.equal(usageError(() => execsnoopOptions(['-c', unknown])), `invalid --cgroup '${unknown}': no such directory (nor a container id or pod)`);
  mkdirSync(cgroupfsPod);
  t.equal(usageError(() => execsnoopOptions(['-c', `pod${uid}`])), `invalid --cgroup 'pod${uid}': 2 cgroups carry it: give more of the id, or a path`);
});
