// The cut of the kernel's BTF each object is relocated against
// (common/corebtf.ts) must give every CO-RE relocation of every program
// the same result as the kernel's whole BTF: each object is loaded with all
// its programs both ways, and what libbpf says it patched (every offset,
// size, existence and enum value, and every instruction it poisoned for a
// field this kernel lacks) must be the same, line for line. It runs on
// every kernel of the matrix, where the types differ.
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import t from 'tap';
import { BPF_DIR, BpfObject } from '../common/bpfobject.js';
import { coreBtfPath, FULL_BTF_VARIABLE, kernelTypes, relocationNames } from '../common/corebtf.js';
import { kernelBtf } from '../common/kernelbtf.js';
import { libbpfLog } from '../common/log.js';
import { bpf, koffi, libcCalls } from '../common/native.js';
import { startVerboseAttached } from './helpers.js';

const objects = readdirSync(BPF_DIR).filter((f) => f.endsWith('.bpf.o')).map((f) => f.replace(/\.bpf\.o$/, ''));

/** What libbpf decided for each relocation, as its debug log says it. */
const DECISION = /^libbpf: prog '[^']+': relo #\d+: (patched insn|substituting insn|no matching targets|.*ambiguity)/;

let said: string[] = [];
libbpfLog.install();
const buffer = Buffer.alloc(1 << 20);
const capture = koffi.register((_level: number, format: string, args: unknown): number => {
  const n = libcCalls.vsnprintf(buffer, buffer.length, format, args) as number;
  said.push(...buffer.subarray(0, Math.min(n, buffer.length - 1)).toString().split('\n'));
  return 0;
}, koffi.pointer('libbpf_print_fn'));
bpf.set_print(capture);

/** Loads every program of `tool` relocated against `coreBtf` (the kernel's own if undefined); returns libbpf's decisions. */
function relocations(tool: string, coreBtf: string | undefined): string[] {
  said = [];
  const obj = BpfObject.openUnchecked(tool, coreBtf);
  try {
    for (const p of obj.programs()) obj.setAutoload(p.name, true);
    // every program is relocated before the first is loaded: a program this
    // kernel refuses (fentry here, a function it lacks) ends the load after
    try {
      obj.load();
    } catch {
      // relocated all the same
    }
  } finally {
    obj.close();
  }
  return said.filter((line) => DECISION.test(line));
}

for (const tool of objects) {
  t.test(`${tool}: relocated against its cut of the kernel's BTF as against the whole`, (t) => {
    const cut = coreBtfPath(BpfObject.path(tool), kernelBtf);
    if (relocationNames(readFileSync(BpfObject.path(tool))).size === 0) {
      t.equal(cut, undefined, 'no CO-RE relocation: nothing to cut');
      return t.end();
    }
    t.ok(cut, 'a cut is made (no relocated type is only in a module here)');
    if (!cut) return t.end();
    t.ok(statSync(cut).size < statSync('/sys/kernel/btf/vmlinux').size / 20, `the cut is small (${statSync(cut).size} bytes)`);
    t.equal(
      coreBtfPath(BpfObject.path(tool), () => t.fail('the cut is made once') as never, () => t.fail('the object is not read again') as never),
      cut, 'the next start takes the same cut, without reading the object',
    );
    const whole = relocations(tool, undefined);
    t.ok(whole.length >= relocationNames(readFileSync(BpfObject.path(tool))).size, `libbpf said what it did with each relocation (${whole.length})`);
    t.same(relocations(tool, cut), whole);
    t.end();
  });
}


t.test('a cut that is not ours alone is not used, but made again', (t) => {
  const cut = coreBtfPath(BpfObject.path('opensnoop'), kernelBtf)!;
  chmodSync(cut, 0o666);
  let made = false;
  t.equal(coreBtfPath(BpfObject.path('opensnoop'), () => ((made = true), kernelBtf())), cut);
  t.ok(made, 'made again');
  t.equal(statSync(cut).mode & 0o777, 0o600);
  t.end();
});

t.test('an object file that changed (another package of the same boot) has its cut made again', (t) => {
  const dir = mkdtempSync(`${tmpdir()}/corebtf-`);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const object = `${dir}/opensnoop.bpf.o`;
  copyFileSync(BpfObject.path('opensnoop'), object);
  const first = coreBtfPath(object, kernelBtf);
  t.ok(first, 'a cut');
  let read = false;
  t.equal(coreBtfPath(object, kernelBtf, () => ((read = true), relocationNames(readFileSync(object)))), first, 'the same file: its cut');
  t.notOk(read, 'found without reading the object');
  utimesSync(object, new Date(), new Date(Date.now() + 5000));
  t.ok(coreBtfPath(object, kernelBtf, () => ((read = true), relocationNames(readFileSync(object)))), 'a cut again');
  t.ok(read, 'its relocations read again once it changed');
  t.end();
});

t.test(`${FULL_BTF_VARIABLE}: libbpf gets the kernel's whole BTF`, (t) => {
  process.env[FULL_BTF_VARIABLE] = '1';
  t.teardown(() => delete process.env[FULL_BTF_VARIABLE]);
  t.equal(coreBtfPath(BpfObject.path('opensnoop'), () => t.fail('no cut') as never), undefined);
  t.end();
});

t.test('-v says what the programs were relocated against', async (t) => {
  const tool = await startVerboseAttached('opensnoop', []);
  await tool.stop();
  t.match(tool.stderr, /^opensnoop\.bpf\.o: CO-RE against \/run\/ebpf-tools\/core-btf-[0-9a-f]{16}\.btf$/m);
});

t.test("the request flag enums biosnoop reads, from their cut as from the kernel's BTF", (t) => {
  const names = ['req_op', 'req_opf', 'req_flag_bits'];
  const cut = kernelTypes(names);
  t.not(cut, kernelBtf(), 'from a cut');
  for (const name of names) t.same(cut.enumerators(name), kernelBtf().enumerators(name), name);
  t.ok(cut.enumerators('req_flag_bits')?.has('__REQ_SYNC'), 'the cut has them');
  t.end();
});
