import t from 'tap';
import { cgroup2Root, usageError } from './helpers.js';
import { BpfObject } from '../common/bpfobject.js';
import { START_NS } from '../common/clock.js';
import { errnoName } from '../common/errno.js';
import { terminalText } from '../common/escape.js';
import { PAGE_SIZE } from '../common/ringbuf.js';
import {
  decodeInto, DirStatus, emptyEvent, eventDecoder, eventOf, FullPaths, header, JsonRenderer,
  kernelConfig, LineRenderer, modeText, parseFlagFilter, parseOptions, ringBytes, tracepointPlan,
} from '../tools/opensnoop.js';

const b = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s));

type Fields = Parameters<typeof eventOf>[0];

function event(overrides: Partial<Fields> = {}) {
  return eventOf({
    tsNs: START_NS + 1_500_000_000, cgroupId: 77,
    pid: 4242, tid: 4243, uid: 1000, ret: 3, flags: 0o2000000, mode: 0, dirStatus: DirStatus.None,
    comm: b('cat'), path: b('/etc/passwd'),
    ...overrides,
  });
}

const renderJson = (fields: Partial<Fields>, argv: string[] = ['--json']): Record<string, unknown> =>
  JSON.parse(new JsonRenderer(parseOptions(argv)).line(event(fields)));

t.test('options: defaults and the kernel config they ask for', async (t) => {
  const o = parseOptions([]);
  t.same([o.timestamp, o.printUid, o.failed, o.extended, o.errnoNames, o.fullPath, o.json], [false, false, false, false, false, false, false]);
  t.equal(ringBytes(o), 4 << 20, '4 MiB ring buffer by default');
  const config = kernelConfig(o);
  t.same({ ...config, targ_comm: undefined, targ_paths: undefined }, {
    targ_tgid: 0, targ_tid: 0, targ_uid: 0xffffffff, targ_failed: false, filter_flags: false,
    targ_flag_bits: 0, targ_access_modes: 0, targ_comm: undefined, targ_comm_len: 0, full_path: false,
    targ_path_count: 0, targ_paths: undefined, targ_callers: false,
  });
  const all = parseOptions(['-T', '-U', '-x', '-p', '12', '-t', '13', '-u', 'root', '-d', '5', '-n', 'main', '-e', '-E',
    '-f', 'O_WRONLY', '-f', 'o_creat,O_RDONLY', '-F', '-b', '64', '--json']);
  t.ok(all.timestamp && all.printUid && all.failed && all.extended && all.errnoNames && all.fullPath && all.json);
  t.equal(all.duration, 5);
  t.equal(ringBytes(all), 64 * PAGE_SIZE);
  t.equal(ringBytes(parseOptions(['-b', '3'])), 4 * PAGE_SIZE, 'rounded up to a power of two');
  const c = kernelConfig(all);
  t.equal(c.targ_tgid, 12);
  t.equal(c.targ_tid, 13);
  t.equal(c.targ_uid, 0, 'user names are looked up');
  t.equal(c.targ_failed, true);
  t.equal(c.filter_flags, true);
  t.equal(c.targ_flag_bits, 0o100, 'O_CREAT');
  t.equal(c.targ_access_modes, 0b011, 'O_RDONLY and O_WRONLY');
  t.same(c.targ_comm, b('main'));
  t.equal(c.targ_comm_len, 4);
  t.equal(c.full_path, true);
  t.same(parseOptions(['--failed', '--full-path', '--print-uid']).failed, true, 'long names work');
  t.equal(parseOptions(['--extended_fields']).extended, true, 'bcc\'s --extended_fields');
  t.same(parseOptions(['--flag_filter', 'O_WRONLY']).flags, { bits: 0, accessModes: 0b010 }, 'bcc\'s --flag_filter');
  const paths = kernelConfig(parseOptions(['--path', '/etc/', '--path', '/usr/lib']));
  t.equal(paths.targ_path_count, 2);
  const slots = paths.targ_paths as Uint8Array;
  t.equal(slots.length, 2 * 256, 'one 256-byte slot per prefix');
  t.same(Buffer.from(slots.subarray(0, 6)), Buffer.from('/etc/\0'));
  t.same(Buffer.from(slots.subarray(256, 265)), Buffer.from('/usr/lib\0'));
  t.same(parseOptions(['-x', '--exec', 'ls', '-l', '--path', '/x']).exec, ['ls', '-l', '--path', '/x'], '--exec takes the rest of the line');
});

t.test('--path and --exec mistakes are usage errors', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--path', 'x'.repeat(256)], /a prefix is 1 to 255 bytes/],
    [Array.from({ length: 9 }, (_, i) => ['--path', `/p${i}`]).flat(), /at most 8 prefixes/],
    [['--exec'], /--exec needs a command/],
    [['--exec', 'no-such-command-here'], /command not found in PATH/],
    [['--exec', '/etc/passwd'], /not an executable file/],
    [['-p', '1', '--exec', 'true'], /--exec cannot be combined with -p/],
    [['--prometheus', '9560', '--exec', 'true'], /--exec cannot be combined with --prometheus/],
  ];
  for (const [argv, message] of cases) t.match(usageError(() => parseOptions(argv)), message, argv.slice(0, 3).join(' '));
});

t.test('options: every mistake is a UsageError naming the option', async (t) => {
  const cases: [string[], RegExp][] = [
    [['-p', '0'], /--pid '0'/],
    [['-p', 'abc'], /--pid 'abc'/],
    [['-t', '-1'], /--tid/],
    [['-u', 'no-such-user-here'], /--uid 'no-such-user-here'/],
    [['-d', '0'], /--duration '0'/],
    [['-d', '1.5'], /--duration '1.5'/],
    [['-n', 'a-name-of-16-chr'], /--name 'a-name-of-16-chr'.*15 bytes/],
    [['-n', ''], /^option -n needs a value$/],
    [['-f', 'O_BOGUS'], /--flag 'O_BOGUS'/],
    [['-f', 'WRONLY'], /--flag 'WRONLY'/],
    [['-b', '0'], /--buffer-pages '0'/],
    [['-b', String((1 << 30) / PAGE_SIZE + 1)], /--buffer-pages/],
    [['--bogus'], /unknown option --bogus/],
    [['stray'], /unknown argument 'stray'/],
    [['-p'], /-p needs a value/],
    [['-p', '1', '-p', 'x'], /--pid 'x'/],
  ];
  for (const [argv, message] of cases) {
    t.match(usageError(() => parseOptions(argv)), message, argv.join(' '));
  }
});

t.test('-f: access modes compare the mode, other flags their bits, per architecture', async (t) => {
  t.same(parseFlagFilter(['O_RDONLY']), { bits: 0, accessModes: 1 }, 'O_RDONLY (0) is a mode, not a bit');
  t.same(parseFlagFilter(['O_WRONLY', 'O_RDWR']), { bits: 0, accessModes: 0b110 });
  t.same(parseFlagFilter(['O_DIRECTORY'], 'x64'), { bits: 0o200000, accessModes: 0 });
  t.same(parseFlagFilter(['O_DIRECTORY'], 'arm64'), { bits: 0o40000, accessModes: 0 }, 'arm64 numbers it differently');
  t.same(parseFlagFilter(['O_SYNC'], 'x64'), { bits: 0o4000000, accessModes: 0 }, 'O_SYNC by the bit O_DSYNC lacks');
  t.same(parseFlagFilter(['O_TMPFILE'], 'x64'), { bits: 0o20000000, accessModes: 0 });
  t.same(parseFlagFilter(['O_WRONLY'], 'mips'), { bits: 0, accessModes: 2 }, 'access modes are the same everywhere');
  t.throws(() => parseFlagFilter(['O_CREAT'], 'mips'), /open flags of mips are not known/, 'flags of an unknown architecture are refused');
  t.throws(() => parseFlagFilter(['o_bogus']), /--flag 'o_bogus'/, 'named as typed');
});

t.test('tracepoints: a syscall without them is left out; without openat nothing works', async (t) => {
  const everything = tracepointPlan(() => true);
  t.same(everything.programs, ['enter_open', 'enter_openat', 'enter_openat2', 'exit_open_calls']);
  t.same(everything.alsoAttached, { exit_open_calls: ['syscalls/sys_exit_open', 'syscalls/sys_exit_openat2'] }, 'one exit program, attached to each exit');
  t.equal(everything.unavailable?.(), null);
  const arm64 = tracepointPlan((s) => s !== 'open');
  t.same(arm64.programs, ['enter_openat', 'enter_openat2', 'exit_open_calls'], 'no open() on arm64');
  t.same(arm64.alsoAttached, { exit_open_calls: ['syscalls/sys_exit_openat2'] });
  t.equal(arm64.unavailable?.(), null);
  const old = tracepointPlan((s) => s !== 'openat2');
  t.same(old.programs, ['enter_open', 'enter_openat', 'exit_open_calls'], 'no openat2() before 5.6');
  t.same(old.alsoAttached, { exit_open_calls: ['syscalls/sys_exit_open'] });
  const none = tracepointPlan(() => false);
  t.match(none.unavailable?.(), /CONFIG_FTRACE_SYSCALLS/);
});

t.test('the object: event layout, programs, and config written at the BTF offsets', async (t) => {
  const obj = BpfObject.openUnchecked('opensnoop');
  t.teardown(() => obj.close());
  const decoder = eventDecoder(obj.struct('event'));
  t.equal(decoder.offsets.ts_ns, 0);
  t.equal(decoder.sizes.comm, 16);
  t.ok(decoder.size <= 80, `the fixed part of a record is small (${decoder.size} bytes, -c's two addresses included)`);
  t.equal(decoder.sizes.callers, 16, '-c: two return addresses');
  t.same(obj.programs().map((p) => p.name).sort(),
    ['enter_open', 'enter_openat', 'enter_openat2', 'exit_open_calls']);
  obj.setConfig(kernelConfig(parseOptions(['-n', 'bash', '-p', '77', '-f', 'O_CREAT'])));
  const rodata = obj.btf.datasec('.rodata');
  const view = obj.sectionView('.rodata');
  const comm = rodata.get('targ_comm')!;
  t.same(new Uint8Array(view.buffer, view.byteOffset + comm.offset, 16), Uint8Array.from([...b('bash'), ...new Array(12).fill(0)]));
  t.equal(view.getUint32(rodata.get('targ_comm_len')!.offset, true), 4);
  t.equal(view.getUint32(rodata.get('targ_tgid')!.offset, true), 77);
  t.equal(view.getUint32(rodata.get('targ_flag_bits')!.offset, true), 0o100);
  t.throws(() => obj.setConfig({ targ_comm: new Uint8Array(17) }), /holds 16 bytes/);
  t.throws(() => obj.setConfig({ targ_tgid: new Uint8Array(1) }), /not a byte array/);
});

t.test('decodeInto reads a variable-length record: header, path, directory names', async (t) => {
  const obj = BpfObject.openUnchecked('opensnoop');
  const decoder = eventDecoder(obj.struct('event'));
  obj.close();
  const path = b('f.txt\0');
  const dirs = b('d2\0d1\0');
  const at = decoder.offsets;
  const base = 8; // where the record starts in the view, as after a ring buffer header
  const record = new DataView(new ArrayBuffer(base + decoder.size + path.length + dirs.length + 16));
  record.setUint32(base + at.ts_ns, 0x89abcdef, true);
  record.setUint32(base + at.ts_ns + 4, 0x12345, true);
  record.setUint32(base + at.pid, 100, true);
  record.setUint32(base + at.tid, 101, true);
  record.setUint32(base + at.uid, 1000, true);
  record.setInt32(base + at.ret, -13, true);
  record.setUint32(base + at.flags, 0o101, true);
  record.setUint32(base + at.mode, 0o644, true);
  record.setUint16(base + at.path_size, path.length, true);
  record.setUint16(base + at.dir_size, dirs.length, true);
  record.setUint8(base + at.dir_status, DirStatus.Complete);
  record.setUint32(base + at.callers, 0x401136, true);
  record.setUint32(base + at.callers + 8, 0x52e3_24aa, true);
  record.setUint32(base + at.callers + 12, 0x7fdb, true);
  const bytes = new Uint8Array(record.buffer);
  bytes.set(b('touch\0'), base + at.comm);
  bytes.set(path, base + decoder.size);
  bytes.set(dirs, base + decoder.size + path.length);
  const length = decoder.size + path.length + dirs.length;

  const e = emptyEvent();
  decodeInto(e, decoder, record, base, length);
  t.equal(e.tsNs, 0x12345 * 2 ** 32 + 0x89abcdef);
  t.same([e.pid, e.tid, e.uid, e.ret, e.flags, e.mode, e.dirStatus], [100, 101, 1000, -13, 0o101, 0o644, DirStatus.Complete]);
  t.equal(terminalText(e.bytes, e.commStart, e.commEnd), 'touch');
  t.equal(terminalText(e.bytes, e.pathStart, e.pathEnd), 'f.txt');
  t.equal(new FullPaths(terminalText).of(e), '/d1/d2/f.txt');
  t.equal(e.bytes.buffer, record.buffer, 'the strings are read in place, not copied');
  t.same(e.callers, [0x401136, 0x7fdb * 2 ** 32 + 0x52e324aa], '-c: the return addresses');

  record.setUint16(base + at.dir_size, 60000, true);
  decodeInto(e, decoder, record, base, length);
  t.equal(e.dirsEnd - e.dirsStart, dirs.length, 'sizes past the record are bounded by its length');
  record.setUint16(base + at.path_size, 60000, true);
  bytes.fill(0x41, base + decoder.size, base + length); // no NUL left in the record
  decodeInto(e, decoder, record, base, length);
  t.equal(e.pathEnd, base + length, 'a path without its NUL ends with the record');
});

t.test('-F: directory names outermost first; truncated and unknown directories', async (t) => {
  const paths = new FullPaths(terminalText);
  const full = (fields: Partial<Fields>): string => paths.of(event(fields));
  t.equal(full({ path: b('a/b'), dirs: b('tmp\0'), dirStatus: DirStatus.Complete }), '/tmp/a/b');
  t.equal(full({ path: b('x'), dirStatus: DirStatus.Complete }), '/x', 'cwd is the root');
  t.equal(full({ path: b('x'), dirs: b('c\0b\0'), dirStatus: DirStatus.Truncated }), '.../b/c/x');
  t.equal(full({ path: b('x'), dirStatus: DirStatus.Unknown }), 'x', 'unresolved: as given');
  t.equal(full({}), '/etc/passwd', 'absolute: as given');
  t.equal(full({ path: b('\x1b'), dirs: b('new\nline\0'), dirStatus: DirStatus.Complete }), '/new\\nline/\\x1b', 'each name escaped');
  t.equal(full({ path: b('y'), dirs: b('new\nline\0'), dirStatus: DirStatus.Complete }), '/new\\nline/y', 'the same directory again');
  t.equal(full({ path: b('y'), dirs: b('new\nline\0'), dirStatus: DirStatus.Truncated }), '.../new\\nline/y', 'same names, now truncated');
  t.equal(full({ path: b('y'), dirs: b('c\0a\0'), dirStatus: DirStatus.Complete }), '/a/c/y', 'another directory');
});

t.test('columns as libbpf-tools opensnoop', async (t) => {
  const o = parseOptions([]);
  t.equal(header(o), 'PID    COMM              FD ERR PATH');
  const r = new LineRenderer(o);
  t.equal(r.line(event()), '4242   cat                3   0 /etc/passwd');
  t.equal(r.line(event({ pid: 17 })), '17     cat                3   0 /etc/passwd', 'a new pid with the same name');
  t.equal(r.line(event({ ret: -2, comm: b('ls') })), '4242   ls                -1   2 /etc/passwd');
  t.equal(r.line(event({ ret: 1234 })), '4242   cat              1234   0 /etc/passwd', 'wide values push, as printf');

  const wide = parseOptions(['-T', '-U', '-e']);
  t.equal(header(wide), 'TIME     UID     PID    COMM              FD ERR FLAGS    MODE  PATH');
  const w = new LineRenderer(wide);
  t.match(w.line(event()), /^\d\d:\d\d:\d\d 1000    4242   cat                3   0 02000000 n\/a   \/etc\/passwd$/);
  t.match(w.line(event({ flags: 0o101, mode: 0o644 })), / 00000101 0644  \/etc\/passwd$/, 'MODE aligned under its header');

  const named = parseOptions(['-E']);
  t.equal(header(named), 'PID    COMM              FD ERR     PATH');
  const n = new LineRenderer(named);
  t.equal(n.line(event({ ret: -2 })), '4242   cat               -1 ENOENT  /etc/passwd');
  t.equal(n.line(event()), '4242   cat                3 0       /etc/passwd');
  t.equal(n.line(event({ ret: -4000 })), '4242   cat               -1 4000    /etc/passwd', 'an unnamed errno as its number');
});

t.test('kept column texts follow the values from event to event', async (t) => {
  const r = new LineRenderer(parseOptions(['-U', '-e']));
  const e = event({ comm: b('aaaa') });
  t.match(r.line(e), /^1000 {4}4242 {3}aaaa /);
  e.bytes[e.commStart] = 0x62; // the same bytes with other contents, as the ring buffer's are
  e.uid = 0;
  e.flags = 0o101;
  e.mode = 0o600;
  t.match(r.line(e), /^0 {7}4242 {3}baaa {13} {2}3 {3}0 00000101 0600  \/etc\/passwd$/);
  t.match(r.line(event({ comm: b('baa') })), /^1000 {4}4242 {3}baa {14}/);
});

t.test('hostile strings are escaped on a terminal line', async (t) => {
  const r = new LineRenderer(parseOptions([]));
  const line = r.line(event({ comm: b('ev\x1b]0;x\x07'), path: b('/tmp/a\nb\x1b[2J') }));
  t.equal(line.split('\n').length, 1);
  t.notMatch(line, /\x1b/);
  t.match(line, /\/tmp\/a\\nb\\x1b\[2J$/);
});

t.test('a failed open\'s ERR is painted when colour is on', async (t) => {
  const paint = { error: (s: string) => `<${s}>`, bar: (s: string) => s, header: (s: string) => s };
  const r = new LineRenderer(parseOptions([]), paint);
  t.equal(r.line(event({ ret: -2 })), '4242   cat               -1 <  2> /etc/passwd');
  t.equal(r.line(event()), '4242   cat                3   0 /etc/passwd');
});

t.test('MODE is n/a unless O_CREAT or O_TMPFILE make it count', async (t) => {
  t.equal(modeText(0, 0), 'n/a');
  t.equal(modeText(0o100, 0), '0000');
  t.equal(modeText(0o20200000, 0o600), '0600');
});

t.test('errno names', async (t) => {
  t.equal(errnoName(2), 'ENOENT');
  t.equal(errnoName(11), 'EAGAIN');
  t.equal(errnoName(95), 'EOPNOTSUPP');
  t.equal(errnoName(9999), undefined);
});

t.test('JSON: every field, exact bytes', async (t) => {
  const parsed = renderJson({ ret: -13, flags: 0o101, mode: 0o644, comm: b('a"b'), path: Uint8Array.from([0x2f, 0x61, 0xff]) });
  t.same(Object.keys(parsed), ['time', 'ts', 'pid', 'tid', 'uid', 'comm', 'fd', 'err', 'errno', 'flags', 'mode', 'path', 'cgroup_id']);
  t.equal(parsed.ts, 1.5);
  t.same([parsed.pid, parsed.tid, parsed.uid, parsed.fd, parsed.err, parsed.errno], [4242, 4243, 1000, -1, 13, 'EACCES']);
  t.same([parsed.flags, parsed.mode], [0o101, 0o644]);
  t.equal(parsed.comm, 'a"b');
  t.equal(parsed.path, '/a\udcff');
  t.match(parsed.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.equal(parsed.time, new Date(Date.parse(String(parsed.time))).toISOString());
  const ok = renderJson({});
  t.same([ok.fd, ok.err, ok.errno, ok.mode], [3, 0, null, null]);
  t.equal(renderJson({ ret: -4000 }).errno, null, 'an errno without a name');
  const full = renderJson({ path: b('x'), dirs: b('tmp\0'), dirStatus: DirStatus.Complete }, ['--json', '-F']);
  t.same([full.path, full.full_path], ['x', '/tmp/x']);
});

t.test('-c: libbpf-tools\' --callers, each caller on a line under PATH; the cgroup filter is --cgroup only', async (t) => {
  const o = parseOptions(['-c']);
  t.equal(o.callers, true);
  t.equal(parseOptions(['--callers']).callers, true);
  t.equal(kernelConfig(o).targ_callers, true);
  t.equal(parseOptions(['--cgroup', cgroup2Root()]).cgroup, cgroup2Root());
  t.not(usageError(() => parseOptions(['-c', cgroup2Root()])), 'no error', '-c takes no value');
  t.equal(header(o), 'PID    COMM              FD ERR PATH/CALLER');
  const asked: [number, number[]][] = [];
  const names = { names: (pid: number, addresses: number[]) => (asked.push([pid, addresses]), ['main', 'libc.so.6+0x2724a', '\x1b[31mred']) };
  const e = event({ callers: [0x1136, 0x7f00] });
  const indent = ' '.repeat(32);
  t.equal(new LineRenderer(o, undefined, undefined, names).line(e),
    `4242   cat                3   0 /etc/passwd\n${indent}main\n${indent}libc.so.6+0x2724a\n${indent}\\x1b[31mred`);
  t.same(asked, [[4242, [0x1136, 0x7f00]]], 'named for the process that opened');
  const wide = parseOptions(['-c', '-T', '-U', '-e']);
  const lines = new LineRenderer(wide, undefined, undefined, names).line(e).split('\n');
  t.equal(lines[1], `${' '.repeat(header(wide).length - 'PATH/CALLER'.length)}main`, 'aligned with PATH whatever the columns');
  const json = JSON.parse(new JsonRenderer(parseOptions(['-c', '--json']), undefined, names).line(e)) as { callers: string[] };
  t.same(json.callers, ['main', 'libc.so.6+0x2724a', '\x1b[31mred']);
  t.notOk('callers' in renderJson({}), 'no callers field without -c');
  t.equal(new LineRenderer(parseOptions([]), undefined, undefined, names).line(e).includes('\n'), false, 'no caller lines without -c');
  t.match(usageError(() => parseOptions(['-c', '--prometheus', '9560'])), /-c/, 'terminal only');
});
