// The record of plans the kernel refused this boot: what it remembers, and
// that a record of another boot or kernel, an unreadable one, or one that is
// not ours alone is as no record (a plan is then only tried again).
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planKey, RefusedPlans, refusedPlansFile, RETRY_PLANS_VARIABLE, stableRefusal } from '../common/refusedplans.js';

const top = mkdtempSync(join(tmpdir(), 'ebpf-tools-refused-'));
chmodSync(top, 0o755);
t.teardown(() => rmSync(top, { recursive: true, force: true }));
const uid = process.getuid!();
const boot = { id: '5b1c0a4e-1111-4222-8333-944455556666', kernel: '6.18.0-test' };
const KEY = 'ext4slower\tfentry\tprograms\tobject\t1\t2';
const REASON = 'failed to load BPF programs: Operation not permitted';
let serial = 0;
/** A fresh record directory (0700, ours) and its file. */
function fresh(): { dir: string; file: string } {
  const dir = join(top, `run${++serial}`);
  return { dir, file: join(dir, 'refused-plans.json') };
}

t.test('root keeps it in /run/ebpf-tools, a user in their runtime directory, or nowhere', async (t) => {
  t.equal(refusedPlansFile(0, {}), '/run/ebpf-tools/refused-plans.json');
  t.equal(refusedPlansFile(1000, { XDG_RUNTIME_DIR: '/run/user/1000' }), '/run/user/1000/ebpf-tools/refused-plans.json');
  t.equal(refusedPlansFile(1000, {}), undefined);
});

t.test('fresh: nothing refused; a refusal remembered is found by the next run of this boot', async (t) => {
  const { dir, file } = fresh();
  t.equal(new RefusedPlans(file, boot, uid, false).reason(KEY), undefined, 'no record yet');
  new RefusedPlans(file, boot, uid, false).remember(KEY, REASON);
  const next = new RefusedPlans(file, boot, uid, false);
  t.equal(next.reason(KEY), REASON, 'the next run finds it, with the reason');
  t.equal(next.reason(`${KEY}x`), undefined, 'and only for that plan');
  new RefusedPlans(file, boot, uid, false).remember('other', 'why');
  t.equal(new RefusedPlans(file, boot, uid, false).reason(KEY), REASON, 'a second refusal keeps the first');
  t.equal(statSync(dir).mode & 0o777, 0o700, 'directory created 0700');
  t.equal(statSync(file).mode & 0o777, 0o600, 'record 0600');
  t.equal(new RefusedPlans(file, boot, uid, true).reason(KEY), undefined, `${RETRY_PLANS_VARIABLE}: tried again`);
});

t.test('another boot or another kernel: nothing refused, and the record is replaced', async (t) => {
  const { file } = fresh();
  new RefusedPlans(file, boot, uid, false).remember(KEY, REASON);
  t.equal(new RefusedPlans(file, { ...boot, id: '00000000-0000-4000-8000-000000000000' }, uid, false).reason(KEY), undefined, 'stale boot id');
  t.equal(new RefusedPlans(file, { ...boot, kernel: '6.19.0' }, uid, false).reason(KEY), undefined, 'another kernel release');
  const later = { ...boot, id: 'ffffffff-0000-4000-8000-000000000000' };
  new RefusedPlans(file, later, uid, false).remember('other', 'why');
  t.equal(new RefusedPlans(file, later, uid, false).reason(KEY), undefined, "the old boot's refusal is gone from the new record");
  t.equal(new RefusedPlans(file, later, uid, false).reason('other'), 'why');
  t.equal(new RefusedPlans(file, undefined, uid, false).reason(KEY), undefined, 'no boot id readable: no record');
});

t.test('unreadable: nothing refused, never an error', async (t) => {
  const { dir, file } = fresh();
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(file, '{"boot_id": ', { mode: 0o600 });
  t.equal(new RefusedPlans(file, boot, uid, false).reason(KEY), undefined, 'cut short');
  writeFileSync(file, JSON.stringify({ boot_id: boot.id, kernel: boot.kernel, refused: [REASON] }));
  t.equal(new RefusedPlans(file, boot, uid, false).reason('0'), undefined, 'refused not an object of reasons');
  writeFileSync(file, JSON.stringify({ boot_id: boot.id, kernel: boot.kernel, refused: { [KEY]: 7 } }));
  t.equal(new RefusedPlans(file, boot, uid, false).reason(KEY), undefined, 'a reason not a string');
  rmSync(file);
  mkdirSync(file);
  t.equal(new RefusedPlans(file, boot, uid, false).reason(KEY), undefined, 'a directory in its place');
  t.doesNotThrow(() => new RefusedPlans(file, boot, uid, false).remember(KEY, REASON), 'and not writable: no error');
  t.doesNotThrow(() => new RefusedPlans(join(top, 'no-such', 'deeper', 'x', '\0'), boot, uid, false).remember(KEY, REASON), 'an impossible path');
  t.equal(new RefusedPlans(undefined, boot, uid, false).reason(KEY), undefined, 'no place for a record');
});

t.test("not ours alone: someone else's record or directory, or one others may write, is not read or written", async (t) => {
  const { dir, file } = fresh();
  new RefusedPlans(file, boot, uid, false).remember(KEY, REASON);
  t.equal(new RefusedPlans(file, boot, uid + 1, false).reason(KEY), undefined, "someone else's directory and record");
  chmodSync(file, 0o622);
  t.equal(new RefusedPlans(file, boot, uid, false).reason(KEY), undefined, 'a record others may write');
  chmodSync(file, 0o600);
  chmodSync(dir, 0o770);
  t.equal(new RefusedPlans(file, boot, uid, false).reason(KEY), undefined, 'a directory its group may write');
  new RefusedPlans(file, boot, uid, false).remember('other', 'why');
  chmodSync(dir, 0o700);
  t.equal(new RefusedPlans(file, boot, uid, false).reason('other'), undefined, 'nor written there');
  t.equal(new RefusedPlans(file, boot, uid, false).reason(KEY), REASON, 'the same record, ours alone again, is read');
  const open = join(top, `open${++serial}`);
  mkdirSync(open, { mode: 0o777 });
  chmodSync(open, 0o1777);
  new RefusedPlans(join(open, 'ebpf-tools', 'refused-plans.json'), boot, uid, false).remember(KEY, REASON);
  t.equal(new RefusedPlans(join(open, 'ebpf-tools', 'refused-plans.json'), boot, uid, false).reason(KEY), undefined,
    'under a directory anyone may write (as /tmp)');
});

t.test('a plan is named with its programs and its object file as it is now', async (t) => {
  const object = join(top, 'fsslower.bpf.o');
  writeFileSync(object, 'object');
  const key = planKey('fsslower', 'fentry', ['ext4_fentry_read'], object);
  t.equal(planKey('fsslower', 'fentry', ['ext4_fentry_read'], object), key, 'the same plan');
  t.not(planKey('fsslower', 'fentry', ['xfs_fentry_read'], object), key, 'other programs (-t xfs)');
  t.not(planKey('ext4slower', 'fentry', ['ext4_fentry_read'], object), key, 'another command');
  utimesSync(object, new Date(), new Date(Date.now() + 5000));
  t.not(planKey('fsslower', 'fentry', ['ext4_fentry_read'], object), key, 'the object replaced (a package update)');
  t.equal(planKey('fsslower', 'fentry', [], join(top, 'missing.bpf.o')), undefined, 'no object: nothing to name');
});

t.test('only refusals that hold until the next boot are remembered', async (t) => {
  t.ok(stableRefusal('load', 1), 'load: EPERM (fentry not allowed)');
  t.ok(stableRefusal('load', 95), 'load: EOPNOTSUPP');
  t.ok(stableRefusal('load', 524), 'load: ENOTSUPP');
  t.notOk(stableRefusal('load', 13), 'load: EACCES (the verifier: depends on the options)');
  t.notOk(stableRefusal('load', 22), 'load: EINVAL (the verifier too)');
  t.notOk(stableRefusal('load', 12), 'load: ENOMEM');
  t.ok(stableRefusal('attach', 22), 'attach: EINVAL (a function kprobes refuse)');
  t.notOk(stableRefusal('attach', 16), 'attach: EBUSY');
  t.notOk(stableRefusal('attach', 2), 'attach: ENOENT (a module may be loaded later)');
});
