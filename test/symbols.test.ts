import t from 'tap';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { executableMappings, functionAt, readSymbolTable, Symbolizer } from '../common/symbols.js';

const dir = mkdtempSync('/tmp/symbols-test-');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('maps: only executable file mappings, with their file offsets', async (t) => {
  const maps = [
    '55d0c0a00000-55d0c0a01000 r--p 00000000 fe:01 1234  /usr/bin/cat',
    '55d0c0a01000-55d0c0a05000 r-xp 00001000 fe:01 1234  /usr/bin/cat',
    '7f0000000000-7f0000021000 rw-p 00000000 00:00 0 ',
    '7f1000028000-7f100019d000 r-xp 00028000 fe:01 99   /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0    [vdso]',
    '7f2000000000-7f2000001000 r-xp 00000000 fe:01 7    /tmp/a file (deleted)',
  ].join('\n');
  t.same(executableMappings(0, maps), [
    { start: 0x55d0c0a01000, end: 0x55d0c0a05000, offset: 0x1000, path: '/usr/bin/cat' },
    { start: 0x7f1000028000, end: 0x7f100019d000, offset: 0x28000, path: '/usr/lib/x86_64-linux-gnu/libc.so.6' },
    { start: 0x7f2000000000, end: 0x7f2000001000, offset: 0, path: '/tmp/a file (deleted)' },
  ]);
  t.same(executableMappings(0x7fffffff), [], 'a process that is gone has none');
});

t.test('functionAt: the function whose range covers the address', async (t) => {
  const table = {
    loads: [],
    functions: [{ value: 0x100, size: 0x10, name: 'a' }, { value: 0x110, size: 0, name: 'b' }, { value: 0x200, size: 0x20, name: 'c' }],
  };
  t.equal(functionAt(table, 0x100)?.name, 'a');
  t.equal(functionAt(table, 0x10f)?.name, 'a');
  t.equal(functionAt(table, 0x150)?.name, 'b', 'a symbol without a size reaches the next');
  t.equal(functionAt(table, 0x21f)?.name, 'c');
  t.equal(functionAt(table, 0x220), undefined, 'past the last one');
  t.equal(functionAt(table, 0xff), undefined, 'before the first one');
});

t.test('ELF tables: a file that is not ELF has none', async (t) => {
  const notElf = join(dir, 'text');
  writeFileSync(notElf, 'hello, this is not an ELF file at all, but long enough for a header: '.repeat(4));
  t.equal(readSymbolTable(notElf), undefined);
  t.equal(readSymbolTable(join(dir, 'missing')), undefined);
});

t.test('a running process: a C library function named from its address, through /proc/PID/root', async (t) => {
  const libc = executableMappings(process.pid).find((m) => /\/libc\.so\.6$/.test(m.path));
  t.ok(libc, 'node runs with the C library mapped');
  const table = readSymbolTable(libc!.path)!;
  const open64 = table.functions.find((f) => f.name === 'open64');
  t.ok(open64, 'the C library exports open64');
  const load = table.loads.find((l) => open64!.value >= l.vaddr && open64!.value < l.vaddr + l.size)!;
  const address = libc!.start - libc!.offset + (open64!.value - load.vaddr + load.offset) + 4;
  const [name] = new Symbolizer().names(process.pid, [address, 0]);
  const aliases = table.functions.filter((f) => f.value === open64!.value).map((f) => f.name);
  t.ok(aliases.includes(name), `${name}: one of the names at open64's address (${aliases.join(', ')})`);
  t.same(new Symbolizer().names(process.pid, [0, 0]), [], 'no frame, no name');
  t.same(new Symbolizer().names(process.pid, [0x10]), ['0x10'], 'outside any mapping: the address');
  t.same(new Symbolizer().names(0x7fffffff, [address]), [`0x${address.toString(16)}`], 'a process that is gone: the address');
});
