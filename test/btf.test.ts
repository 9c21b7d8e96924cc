// A module's BTF is split from the kernel's: its types are numbered after
// the kernel's, its own strings after the kernel's, and a name the kernel's
// strings have is theirs. splitFunctionId() numbers a module's functions as
// the kernel does (moduletargets.ts hands those ids to libbpf); here on BTF
// made by hand, against the kernel's in moduletargets-e2e.
import t from 'tap';
import { Btf, btfHeader, Kind, type SplitBase } from '../common/btf.js';

const HEADER = 24;

/** BTF data of `types` (each a header's name offset, kind, vlen and size/type, then its extra words) and `strings`. */
function btfData(types: { name: number; kind: Kind; vlen?: number; sizeOrType: number; extra?: number[] }[], strings: string): Uint8Array {
  const words = types.flatMap((ty) => [ty.name, (ty.kind << 24) | (ty.vlen ?? 0), ty.sizeOrType, ...(ty.extra ?? [])]);
  const stringBytes = Buffer.from(strings, 'latin1');
  const data = new Uint8Array(HEADER + 4 * words.length + stringBytes.length);
  const view = new DataView(data.buffer);
  view.setUint16(0, 0xeb9f, true);
  view.setUint8(2, 1);
  view.setUint32(4, HEADER, true);
  view.setUint32(8, 0, true);
  view.setUint32(12, 4 * words.length, true);
  view.setUint32(16, 4 * words.length, true);
  view.setUint32(20, stringBytes.length, true);
  words.forEach((w, i) => view.setUint32(HEADER + 4 * i, w, true));
  data.set(stringBytes, HEADER + 4 * words.length);
  return data;
}

// the kernel's: [1] int, [2] a prototype, [3] base_fn, [4] a struct named "shared"
const baseStrings = '\0int\0base_fn\0shared\0';
const at = (strings: string, name: string): number => strings.indexOf(`\0${name}\0`) + 1;
const baseBtf = new Btf(btfData([
  { name: at(baseStrings, 'int'), kind: Kind.Int, sizeOrType: 4, extra: [32] },
  { name: 0, kind: Kind.FuncProto, sizeOrType: 1 },
  { name: at(baseStrings, 'base_fn'), kind: Kind.Func, sizeOrType: 2 },
  { name: at(baseStrings, 'shared'), kind: Kind.Struct, sizeOrType: 0 },
], baseStrings));
let baseRead = 0;
const base: SplitBase = {
  typeCount: baseBtf.typeCount,
  stringLength: baseStrings.length,
  btf: () => {
    baseRead++;
    return baseBtf;
  },
};

// the module's: [5] a prototype, [6] mod_fn (its own string), [7] shared (the kernel's string), [8] a struct named mod_struct
const ownStrings = '\0mod_fn\0mod_struct\0';
const own = (name: string): number => baseStrings.length + at(ownStrings, name);
const moduleBtf = new Btf(btfData([
  { name: 0, kind: Kind.FuncProto, sizeOrType: 1 },
  { name: own('mod_fn'), kind: Kind.Func, sizeOrType: 5 },
  { name: at(baseStrings, 'shared'), kind: Kind.Func, sizeOrType: 5 },
  { name: own('mod_struct'), kind: Kind.Struct, sizeOrType: 0 },
], ownStrings));

t.equal(baseBtf.typeCount, 5, 'the type count has void in it, as btf__type_cnt()');

t.test('a function named by its own string: numbered after the kernel types, the kernel BTF not looked at', async (t) => {
  baseRead = 0;
  t.equal(moduleBtf.splitFunctionId('mod_fn', base), 6);
  t.equal(baseRead, 0);
});

t.test('a function named by one of the kernel strings is found by it', async (t) => {
  t.equal(moduleBtf.splitFunctionId('shared', base), 7);
});

t.test('no function: -1 (a struct of the name, or a function of the kernel only, is not one)', async (t) => {
  t.equal(moduleBtf.splitFunctionId('mod_struct', base), -1);
  t.equal(moduleBtf.splitFunctionId('base_fn', base), -1);
  t.equal(moduleBtf.splitFunctionId('absent', base), -1);
});

t.test('the header gives where the strings are and how long', async (t) => {
  t.match(btfHeader(btfData([], 'ab')), { typeLength: 0, stringOffset: HEADER, stringLength: 2 });
  t.throws(() => btfHeader(new Uint8Array(8)), /not BTF data/);
});
