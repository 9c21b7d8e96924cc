// The answers about this boot's kernel that plan checks would otherwise
// read its BTF or kallsyms for at every start: kept for the boot (kallsyms'
// while the same modules are loaded), and a record of another boot, an
// unreadable one or one that is not ours alone is as no record.
import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelNames, loadedModules } from '../common/kernelnames.js';

const top = mkdtempSync(join(tmpdir(), 'ebpf-tools-names-'));
chmodSync(top, 0o755);
t.teardown(() => rmSync(top, { recursive: true, force: true }));
const uid = process.getuid!();
const boot = { id: '5b1c0a4e-1111-4222-8333-944455556666', kernel: '6.1.0-test' };
let serial = 0;
/** A fresh record directory (made 0700 by the first answer) and its file. */
function fresh(): { dir: string; file: string } {
  const dir = join(top, `run${++serial}`);
  return { dir, file: join(dir, 'kernel-names.json') };
}

/** A look-up that counts how often it ran. */
function lookUp(found: boolean): { look: () => boolean; runs: number } {
  const counted = { runs: 0, look: () => ((counted.runs += 1), found) };
  return counted;
}

t.test('loaded modules: their names from /proc/modules, sorted', async (t) => {
  t.equal(loadedModules('loop 32768 0 - Live 0x0\next4 1060864 1 - Live 0x0\njbd2 196608 1 ext4, Live 0x0\n'), 'ext4 jbd2 loop');
  t.equal(loadedModules(''), '');
});

t.test('an answer found once is the answer of the next runs of this boot, without looking again', async (t) => {
  const { dir, file } = fresh();
  const first = lookUp(true);
  t.equal(new KernelNames(file, boot, uid, () => 'ext4').answer('btf', 'btf_trace_block_io_start', first.look), true);
  t.equal(first.runs, 1, 'looked up the first time');
  const again = lookUp(false);
  t.equal(new KernelNames(file, boot, uid, () => 'ext4').answer('btf', 'btf_trace_block_io_start', again.look), true, 'the answer recorded');
  t.equal(again.runs, 0, 'not looked up again');
  const absent = lookUp(false);
  t.equal(new KernelNames(file, boot, uid, () => 'ext4').answer('functions', 'blk_account_io_start', absent.look), false);
  t.equal(new KernelNames(file, boot, uid, () => 'ext4').answer('functions', 'blk_account_io_start', lookUp(true).look), false, 'an absence is recorded too');
  t.equal(new KernelNames(file, boot, uid, () => 'ext4').answer('btf', 'blk_account_io_start', lookUp(true).look), true, 'the two kinds are apart');
  t.equal(statSync(dir).mode & 0o777, 0o700, 'directory created 0700');
  t.equal(statSync(file).mode & 0o777, 0o600, 'record 0600');
});

t.test("kallsyms' answers hold while the same modules are loaded; the BTF's for the whole boot", async (t) => {
  const { file } = fresh();
  new KernelNames(file, boot, uid, () => 'jbd2').answer('functions', 'ext4_file_read_iter', () => false);
  new KernelNames(file, boot, uid, () => 'jbd2').answer('btf', 'ext4_file_read_iter', () => false);
  const loaded = lookUp(true);
  t.equal(new KernelNames(file, boot, uid, () => 'ext4 jbd2').answer('functions', 'ext4_file_read_iter', loaded.look), true, 'ext4 loaded since: looked up again');
  t.equal(loaded.runs, 1);
  t.equal(new KernelNames(file, boot, uid, () => 'ext4 jbd2').answer('btf', 'ext4_file_read_iter', lookUp(true).look), false, "vmlinux' BTF does not change with modules");
});

t.test('another boot or another kernel: nothing known', async (t) => {
  const { file } = fresh();
  new KernelNames(file, boot, uid, () => '').answer('btf', 'x', () => true);
  for (const other of [{ ...boot, id: '00000000-0000-4000-8000-000000000000' }, { ...boot, kernel: '6.12.0-test' }]) {
    const look = lookUp(false);
    t.equal(new KernelNames(file, other, uid, () => '').answer('btf', 'x', look.look), false);
    t.equal(look.runs, 1, `looked up again (${other.id} ${other.kernel})`);
  }
  const none = lookUp(true);
  t.equal(new KernelNames(file, undefined, uid, () => '').answer('btf', 'x', none.look), true, 'no boot id readable: always looked up');
  t.equal(new KernelNames(undefined, boot, uid, () => '').answer('btf', 'x', none.look), true, 'no runtime directory: always looked up');
  t.equal(none.runs, 2);
});

t.test('unreadable, or not ours alone: nothing known, never an error', async (t) => {
  const { dir, file } = fresh();
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(file, '{"boot_id": ', { mode: 0o600 });
  const cut = lookUp(true);
  t.equal(new KernelNames(file, boot, uid, () => '').answer('btf', 'x', cut.look), true);
  t.equal(cut.runs, 1, 'a record cut short: looked up');
  writeFileSync(file, JSON.stringify({ boot_id: boot.id, kernel: boot.kernel, modules: '', btf: { x: 'yes', y: false }, functions: [] }), { mode: 0o600 });
  const wrong = lookUp(true);
  t.equal(new KernelNames(file, boot, uid, () => '').answer('btf', 'x', wrong.look), true, 'an answer that is not a boolean is not one');
  t.equal(wrong.runs, 1);
  t.equal(new KernelNames(file, boot, uid, () => '').answer('btf', 'y', lookUp(true).look), false, 'the good ones are kept');
  chmodSync(file, 0o666);
  const shared = lookUp(true);
  t.equal(new KernelNames(file, boot, uid, () => '').answer('btf', 'y', shared.look), true, 'a record others may write: not trusted');
  t.equal(shared.runs, 1);
  chmodSync(dir, 0o777);
  const open = lookUp(false);
  t.equal(new KernelNames(file, boot, uid, () => '').answer('btf', 'y', open.look), false, 'a directory others may write: not trusted');
  t.equal(open.runs, 1);
});

t.test("the kernel BTF's type count: kept for the boot whatever modules come and go, and only a count is one", async (t) => {
  const { file } = fresh();
  let counted = 0;
  const count = (n: number) => (): number => ((counted += 1), n);
  t.equal(new KernelNames(file, boot, uid, () => 'jbd2').kernelBtfTypeCount(count(130000)), 130000);
  t.equal(new KernelNames(file, boot, uid, () => 'ext4 jbd2').kernelBtfTypeCount(count(1)), 130000, 'recorded, with other modules loaded since');
  t.equal(counted, 1, 'counted once');
  t.equal(new KernelNames(file, { ...boot, id: '00000000-0000-4000-8000-000000000000' }, uid, () => '').kernelBtfTypeCount(count(99)), 99, 'another boot: counted again');
  writeFileSync(file, JSON.stringify({ boot_id: boot.id, kernel: boot.kernel, modules: '', btf: {}, functions: {}, btf_types: -5 }), { mode: 0o600 });
  t.equal(new KernelNames(file, boot, uid, () => '').kernelBtfTypeCount(count(7)), 7, 'a stored count that is not one: counted again');
  t.equal(new KernelNames(file, boot, uid, () => '').answer('btf', 'x', () => true), true);
  t.equal(new KernelNames(file, boot, uid, () => '').kernelBtfTypeCount(count(8)), 7, 'an answer recorded later keeps the count');
});

t.test("a module's BTF object and its functions' ids: kept for the boot per module, the ids only with their object, and only ids are ones", async (t) => {
  const { file } = fresh();
  const names = (modules = 'ext4') => new KernelNames(file, boot, uid, () => modules);
  t.equal(names().moduleBtf('ext4'), undefined, 'none yet');
  names().rememberModuleBtf('ext4', 21, {});
  names().rememberModuleBtf('ext4', 21, { ext4_file_open: 9000 });
  names().rememberModuleBtf('ext4', 21, { ext4_sync_file: 9001 });
  names().rememberModuleBtf('xfs', 30, { xfs_file_open: 500 });
  t.same(names('ext4 xfs').moduleBtf('ext4'), { object: 21, functions: { ext4_file_open: 9000, ext4_sync_file: 9001 } }, 'recorded and added to, with other modules loaded since');
  t.same(names().moduleBtf('xfs'), { object: 30, functions: { xfs_file_open: 500 } }, 'each module its own');
  names().rememberModuleBtf('ext4', 40, {});
  t.same(names().moduleBtf('ext4'), { object: 40, functions: {} }, "found in another object: the old object's ids go with it");
  t.equal(new KernelNames(file, { ...boot, id: '00000000-0000-4000-8000-000000000000' }, uid, () => '').moduleBtf('ext4'), undefined, 'another boot: none');
  writeFileSync(file, JSON.stringify({
    boot_id: boot.id, kernel: boot.kernel, modules: '', btf: {}, functions: {},
    btf_modules: { ext4: { object: 'x', functions: {} }, xfs: { object: 0 }, btrfs: { object: 7, functions: { a: 1, b: -1, c: '2' } }, nfs: 3 },
  }), { mode: 0o600 });
  t.same([names().moduleBtf('ext4'), names().moduleBtf('xfs'), names().moduleBtf('btrfs'), names().moduleBtf('nfs')],
    [undefined, undefined, { object: 7, functions: { a: 1 } }, undefined], 'a stored object or id that is not one: none');
});
