// The targets moduletargets.ts hands to libbpf for fentry and fexit
// programs on a module's functions must be the kernel's own: each
// function's id, and the module's BTF object, as bpftool reads them from
// the kernel. It runs on every kernel of the matrix: in the guests ext4 is
// a module (the scratch disk's file system), its BTF split from the
// kernel's (before 5.11 modules have no BTF, and there is no fentry plan);
// on this machine it is built in, and the fentry plan leaves its targets to
// libbpf, whose search of the kernel's BTF alone is one pass.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { kernelBtf, kernelBtfHasName } from '../common/kernelbtf.js';
import { kernelNames } from '../common/kernelnames.js';
import { moduleBtfObject, moduleFunctionIds } from '../common/moduletargets.js';
import { attachPlans, parseOptions } from '../tools/fsslower.js';

const options = parseOptions(['0'], 'ext4slower');
const { name: module, functions } = options.fs;
const fentry = attachPlans(options).find((p) => p.name === 'fentry');

function bpftool(args: string[]): string {
  const run = spawnSync('bpftool', args, { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (run.status !== 0) throw new Error(`bpftool ${args.join(' ')}: ${run.error?.message ?? run.stderr}`);
  return run.stdout;
}

/** bpftool's "[id] KIND 'name'" lines of a BTF dump, as [id, kind, name]. */
function dumped(text: string): [number, string, string][] {
  return [...text.matchAll(/^\[(\d+)\] (\w+) '([^']*)'/gm)].map((m) => [Number(m[1]), m[2], m[3]]);
}

if (existsSync(`/sys/kernel/btf/${module}`)) {
  t.test(`${module} is a module here: its functions' ids and BTF object are the kernel's`, async (t) => {
    t.equal(fentry?.btfModule, module, 'the fentry plan finds its targets itself');
    const listed = /^(\d+): name \[(\S+)\]/gm;
    const objectId = [...bpftool(['btf', 'list']).matchAll(listed)].find((m) => m[2] === module)?.[1];
    t.ok(objectId, `bpftool lists the BTF object of ${module}`);
    const types = dumped(bpftool(['btf', 'dump', 'id', String(objectId)]));
    // what this test keeps for the module is not left to the tools run after it this boot
    t.teardown(() => kernelNames().rememberModuleBtf(module, 1, {}));
    const object = moduleBtfObject(module);
    closeSync(object.fd);
    t.equal(String(object.id), objectId, "the BTF object handed over is the module's");
    // found now: what was kept for another object is not taken
    kernelNames().rememberModuleBtf(module, 1, {});
    const ids = moduleFunctionIds(module, functions, object.id);
    for (const fn of functions) {
      t.equal(ids.get(fn), types.find(([, kind, name]) => kind === 'FUNC' && name === fn)?.[0], `${fn}: the id bpftool gives`);
    }
    t.equal(kernelBtf().typeCount, types[0][0], "the module's own types are numbered from the kernel's type count");
    t.equal(kernelNames().kernelBtfTypeCount(() => -1), types[0][0], 'which is kept for the boot');
    t.same(kernelNames().moduleBtf(module), { object: object.id, functions: Object.fromEntries(ids) }, 'the object and the ids kept for the boot');
    kernelNames().rememberModuleBtf(module, object.id, { [functions[0]]: 7 });
    t.equal(moduleFunctionIds(module, functions, object.id).get(functions[0]), 7, 'and taken from there while the object is the same');
    // a module loaded again has another object: the one kept is a hint, checked
    kernelNames().rememberModuleBtf(module, 1, {});
    const again = moduleBtfObject(module);
    closeSync(again.fd);
    t.equal(again.id, object.id, "a kept object that is no longer the module's: found again");
    t.equal(kernelNames().moduleBtf(module)?.object, object.id, 'and kept');
    t.throws(() => moduleFunctionIds(module, ['ebpf_tools_no_such_function'], object.id), /module ext4's BTF has no function ebpf_tools_no_such_function/);
  });
} else if (functions.every(kernelBtfHasName)) {
  t.test(`${module} is built in here: the fentry plan leaves its targets to libbpf`, async (t) => {
    t.ok(readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.split('\t')[1] === module), `${module} is in the kernel`);
    t.equal(fentry?.btfModule, undefined, 'no module named');
    t.equal(fentry?.unavailable?.(), null, 'the plan is tried');
    const types = dumped(bpftool(['btf', 'dump', 'file', '/sys/kernel/btf/vmlinux']));
    t.equal(kernelBtf().typeCount, types.at(-1)![0] + 1, "the kernel's type count, void's included, is bpftool's last id + 1");
  });
} else {
  // 5.10: modules have no BTF before 5.11
  t.test(`${module} is a module without BTF here: no fentry plan`, async (t) => {
    t.ok(readFileSync('/proc/modules', 'utf8').split('\n').some((l) => l.startsWith(`${module} `)), `${module} is a loaded module`);
    t.equal(fentry?.btfModule, undefined, 'no module named');
    t.match(fentry?.unavailable?.(), /^kernel BTF has no ext4_file_read_iter/, 'the plan is passed over, saying why');
  });
}
