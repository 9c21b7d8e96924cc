// The runtime's agreement with the BPF objects: layouts and configuration
// come from each object's BTF, and this checks that what the tools expect
// is what the compiled C declares.
import t from 'tap';
import { readdirSync } from 'node:fs';
import { BPF_DIR, BpfObject } from '../common/bpfobject.js';
import { ringBufferBytes } from '../common/events.js';
import { structDecoder } from '../common/layout.js';
import { kallsymsHasFunction, skippedPlans } from '../common/plan.js';
import { eventDecoder, kernelConfig, parseOptions } from '../tools/execsnoop.js';

t.test('every shipped object has the ring buffer, loss counter and filter variables the runtime uses', async (t) => {
  const objects = readdirSync(BPF_DIR).filter((f) => f.endsWith('.bpf.o'));
  t.ok(objects.includes('execsnoop.bpf.o'));
  for (const file of objects) {
    const obj = BpfObject.openUnchecked(file.replace(/\.bpf\.o$/, ''));
    const bss = obj.btf.datasec('.bss');
    t.equal(bss.get('lost_events')?.type.size, 8, `${file}: lost_events is 64-bit`);
    const rodata = obj.btf.datasec('.rodata');
    for (const flag of ['filter_cgroup', 'filter_cgroupset', 'filter_mntnsset']) {
      t.ok(rodata.has(flag), `${file}: has ${flag}`);
    }
    obj.close();
  }
});

t.test('execsnoop event layout matches the decoder and config lands at the BTF offsets', async (t) => {
  const obj = BpfObject.openUnchecked('execsnoop');
  const decoder = eventDecoder(obj.struct('event'));
  t.equal(decoder.offsets.ts_ns, 0);
  t.ok(decoder.sizes.args >= 8192, 'argument area of at least 8 KiB');
  t.equal(decoder.sizes.comm, 16);

  obj.setConfig(kernelConfig(parseOptions(['-u', '1234', '-P', '42'])));
  const rodata = obj.btf.datasec('.rodata');
  const view = obj.sectionView('.rodata');
  t.equal(view.getUint32(rodata.get('targ_uid')!.offset, true), 1234);
  t.equal(view.getUint32(rodata.get('targ_ppid')!.offset, true), 42);
  t.throws(() => obj.setConfig({ targ_uid: -1 }), /does not fit/);
  t.throws(() => obj.setConfig({ no_such_variable: 1 }), /no const volatile/);
  obj.close();
});

t.test('a decoder refuses a field whose BTF type differs from what the tool declares', async (t) => {
  const obj = BpfObject.openUnchecked('execsnoop');
  const layout = obj.struct('event');
  t.throws(() => structDecoder(layout, { comm: 'u32' }), /is not u32/);
  t.throws(() => structDecoder(layout, { retval: 'chars' }), /is not chars/);
  t.throws(() => structDecoder(layout, { ppid: 's32' }), /is not s32/, 'unsigned never read as signed');
  t.throws(() => structDecoder(layout, { nope: 'u32' }), /no field nope/);
  obj.close();
});

t.test('ring buffer sizes round up to a power of two of at least a page', async (t) => {
  t.equal(ringBufferBytes(1), 4096);
  t.equal(ringBufferBytes(4096), 4096);
  t.equal(ringBufferBytes(5000), 8192);
  t.equal(ringBufferBytes(16 << 20), 16 << 20);
});

t.test('EBPF_TOOLS_SKIP_PLANS: the named plans of this tool only; an unknown name is refused', async (t) => {
  const plans = [{ name: 'fentry', programs: [] }, { name: 'kprobe', programs: [] }, { name: 'start at block_getrq', programs: [] }];
  const saved = process.env.EBPF_TOOLS_SKIP_PLANS;
  t.teardown(() => {
    if (saved === undefined) delete process.env.EBPF_TOOLS_SKIP_PLANS;
    else process.env.EBPF_TOOLS_SKIP_PLANS = saved;
  });
  process.env.EBPF_TOOLS_SKIP_PLANS = 'ext4slower:fentry,biosnoop:kprobe, ext4slower:start at block_getrq';
  t.same([...skippedPlans('ext4slower', plans)], ['fentry', 'start at block_getrq']);
  t.same([...skippedPlans('opensnoop', plans)], []);
  process.env.EBPF_TOOLS_SKIP_PLANS = 'ext4slower:fentyr';
  t.throws(() => skippedPlans('ext4slower', plans), { exitCode: 2, message: /ext4slower has no plan 'fentyr' \(plans: fentry; kprobe; start at block_getrq\)/ });
  delete process.env.EBPF_TOOLS_SKIP_PLANS;
  t.same([...skippedPlans('ext4slower', plans)], []);
});

t.test('kprobe targets are found in the kernel and in loaded modules, by whole name only', async (t) => {
  const kallsyms = [
    'ffffffff81234560 T vfs_read',
    'ffffffffc0a01230 t ext4_file_read_iter\t[ext4]',
    'ffffffffc0a01290 d ext4_data_symbol\t[ext4]',
    'ffffffffc0a012f0 t ext4_file_write_iter.cold\t[ext4]',
  ].join('\n');
  t.ok(kallsymsHasFunction(kallsyms, 'vfs_read'));
  t.ok(kallsymsHasFunction(kallsyms, 'ext4_file_read_iter'), 'a function of a module');
  t.notOk(kallsymsHasFunction(kallsyms, 'ext4_data_symbol'), 'data is no kprobe target');
  t.notOk(kallsymsHasFunction(kallsyms, 'ext4_file_write_iter'), 'a .cold part is not the function');
  t.notOk(kallsymsHasFunction(kallsyms, 'vfs_rea'), 'a prefix is not the function');
});
