// fsslower's pure parts: options and the file system each name traces,
// attach plans against the shipped object, decoding from the object's own
// layout, and every output format. Upstream's C fsslower cannot run on
// this machine, so the expected lines are written
// out here from its printf formats ("%-8s %-16s %-7d %c %-7zd %-8lld %7.2f %s").
import t from 'tap';
import { usageError } from './helpers.js';
import { BpfObject } from '../common/bpfobject.js';
import { describeCgroup } from '../common/cgroups.js';
import { START_NS } from '../common/clock.js';
import {
  attachPlans, csvField, decodeEvent, eventDecoder, FILE_SYSTEMS, fentryPrograms, header, kernelConfig, kprobePrograms,
  MAX_DURATION_S, MAX_MIN_MS, parseOptions as parseFsslower, RAW_SYSCALL_PROGRAMS, render, renderCsv, renderJson, renderLine, SYSCALLS,
  type SlowOperation,
} from '../tools/fsslower.js';

/** As ext4slower parses them (fsslower -t ext4). */
const parseOptions = (argv: string[]) => parseFsslower(argv, 'ext4slower');

const b = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));

function op(overrides: Partial<SlowOperation> = {}): SlowOperation {
  return {
    endNs: BigInt(START_NS) + 2_000_000_000n,
    latencyNs: 12_345_678,
    offset: 12288,
    bytes: 5000,
    wholeFile: false,
    cgroupId: 1234,
    pid: 4242,
    type: 'W',
    comm: b('postgres'),
    file: b('000000010000000000000001'),
    ...overrides,
  };
}

t.test('options: defaults, threshold forms, formats, kernel config', async (t) => {
  const o = parseOptions([]);
  t.same(o, { command: 'ext4slower', fs: FILE_SYSTEMS.ext4, minMs: 10, pid: undefined, duration: undefined, format: 'table', printCgroup: undefined, prometheus: undefined, verbose: false, cgroup: undefined });
  const ext4Filter = { fs_magic: 0xef53, fs_type_name: new TextEncoder().encode('ext4') };
  t.same(kernelConfig(o, 77), { min_lat_ns: 10_000_000n, targ_tgid: 0, self_tgid: 77, targ_histograms: false, ...ext4Filter });
  t.equal(parseOptions(['0']).minMs, 0, '0 traces everything');
  t.same(kernelConfig(parseOptions(['0']), 1).min_lat_ns, 0n);
  t.equal(parseOptions(['-m', '3']).minMs, 3, 'libbpf-tools -m');
  t.equal(parseOptions(['--min', '4']).minMs, 4);
  t.equal(parseOptions(['-p', '185', '1']).pid, 185);
  t.same(kernelConfig(parseOptions(['-p', '185', '1']), 1), { min_lat_ns: 1_000_000n, targ_tgid: 185, self_tgid: 1, targ_histograms: false, ...ext4Filter });
  t.equal(parseOptions(['-d', '5']).duration, 5);
  t.equal(parseOptions(['-j']).format, 'bcc-csv', 'bcc -j');
  t.equal(parseOptions(['-c']).format, 'csv', 'libbpf-tools -c');
  t.equal(parseOptions(['--csv']).format, 'csv');
  t.equal(parseOptions(['--json']).format, 'json');
  t.equal(parseOptions(['-v']).verbose, true);
  t.equal(parseOptions([String(MAX_MIN_MS)]).minMs, MAX_MIN_MS);
  t.equal(kernelConfig(parseOptions([String(MAX_MIN_MS)]), 1).min_lat_ns, BigInt(MAX_MIN_MS) * 1_000_000n);
});

t.test('the file system: from the name run, or -t; fsslower needs -t', async (t) => {
  t.equal(parseFsslower([], 'ext4slower').fs.name, 'ext4');
  t.equal(parseFsslower([], 'xfsslower').fs.name, 'xfs');
  t.equal(parseFsslower([], 'btrfsslower').fs.name, 'btrfs');
  t.equal(parseFsslower([], 'nfsslower').fs.name, 'nfs');
  for (const fs of ['btrfs', 'ext4', 'fuse', 'nfs', 'xfs']) {
    t.equal(parseFsslower(['-t', fs], 'fsslower').fs.name, fs, `-t ${fs}`);
    t.equal(parseFsslower([`--type=${fs}`], 'fsslower').fs.name, fs);
  }
  t.equal(parseFsslower(['-t', 'xfs'], 'ext4slower').fs.name, 'xfs', '-t wins over the name, as libbpf-tools');
  t.match(usageError(() => parseFsslower([], 'fsslower')), /^give the file system to trace: -t btrfs, -t ext4, -t fuse, -t nfs, -t xfs$/);
  t.match(usageError(() => parseFsslower(['-t', 'vfat'], 'fsslower')), /^-t 'vfat': not a file system fsslower traces \(btrfs, ext4, fuse, nfs, xfs\)$/);
  // libbpf-tools' fsslower takes these: refused, each with why
  for (const fs of ['f2fs', 'bcachefs', 'zfs']) {
    t.match(usageError(() => parseFsslower(['-t', fs], 'fsslower')), new RegExp(`^-t ${fs}: refused as untested \\(libbpf-tools' fsslower takes it\\): .+$`), `-t ${fs}`);
  }
  t.match(usageError(() => parseFsslower(['-t', 'bcachefs'], 'fsslower')), /left the mainline kernel/);
  // the syscall programs' filter: the magic, and the name only where the magic is shared
  const filter = (fs: string) => {
    const c = kernelConfig(parseFsslower(['-t', fs], 'fsslower'), 1);
    return [c.fs_magic, Buffer.from(c.fs_type_name as Uint8Array).toString()];
  };
  t.same(filter('ext4'), [0xef53, 'ext4'], 'ext4: not ext2 or ext3, which share its magic');
  t.same(filter('xfs'), [0x58465342, '']);
  t.same(filter('btrfs'), [0x9123683e, '']);
  t.same(filter('nfs'), [0x6969, ''], 'nfs and nfs4 alike');
  t.same(filter('fuse'), [0x65735546, ''], 'fuse and fuseblk alike');
  t.same(header(parseFsslower(['-t', 'xfs', '1'], 'fsslower'))[0], 'Tracing xfs operations slower than 1 ms... Hit Ctrl-C to end.');
  t.same(header(parseFsslower(['0'], 'btrfsslower'))[0], 'Tracing btrfs operations... Hit Ctrl-C to end.');
});

t.test('options: every mistake is a UsageError naming what is wrong', async (t) => {
  const cases: [string[], RegExp][] = [
    [['x'], /min_ms 'x'/],
    [['-1'], /min_ms '-1'/],
    [['1.5'], /min_ms '1\.5'/],
    [[String(MAX_MIN_MS + 1)], /min_ms/],
    [['5', '6'], /unknown argument.*6/i],
    [['5', '-m', '6'], /threshold once/],
    [['-m', 'abc'], /--min 'abc'/],
    [['-p', '0'], /--pid '0'/],
    [['-p', 'abc'], /--pid 'abc'/],
    [['-p'], /-p|pid/],
    [['-d', '0'], /--duration '0'/],
    [['-d', String(MAX_DURATION_S + 1)], /--duration/],
    [['-j', '-c'], /-j and --csv/],
    [['-c', '--json'], /--csv and --json/],
    [['--bogus'], /--bogus/],
  ];
  for (const [argv, message] of cases) {
    const text = usageError(() => parseOptions(argv));
    t.match(text, message, argv.join(' '));
    t.notMatch(text, /\n/, 'one line');
  }
});

t.test('header lines as the upstream tools print them', async (t) => {
  const columns = 'TIME     COMM             PID     T BYTES   OFF_KB   LAT(ms) FILENAME';
  t.same(header(parseOptions([])), ['Tracing ext4 operations slower than 10 ms... Hit Ctrl-C to end.', columns]);
  t.same(header(parseOptions(['0'])), ['Tracing ext4 operations... Hit Ctrl-C to end.', columns]);
  t.same(header(parseOptions(['1', '-d', '5'])), ['Tracing ext4 operations slower than 1 ms for 5 secs.', columns]);
  t.same(header(parseOptions(['-c'])), ['ENDTIME_ns,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE']);
  t.same(header(parseOptions(['-j'])), ['ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE']);
  t.same(header(parseOptions(['--json'])), []);
});

t.test('columns: widths, LL_MAX, offsets in KiB, latency in ms', async (t) => {
  const time = '\\d\\d:\\d\\d:\\d\\d';
  t.match(renderLine(op()), new RegExp(`^${time} postgres         4242    W 5000    12         12\\.35 000000010000000000000001$`));
  t.match(renderLine(op({ type: 'S', wholeFile: true, bytes: 2 ** 63, offset: 0, latencyNs: 700_219_999 })),
    new RegExp(`^${time} postgres         4242    S LL_MAX  0         700\\.22 000000010000000000000001$`));
  t.match(renderLine(op({ type: 'O', bytes: 0, offset: 0, latencyNs: 9_999 })),
    new RegExp(`^${time} postgres         4242    O 0       0           0\\.01 000000010000000000000001$`));
  t.match(renderLine(op({ type: 'R', bytes: 1, offset: 2047, latencyNs: 123_456_789_000 })),
    new RegExp(`^${time} postgres         4242    R 1       1        123456\\.79 000000010000000000000001$`), 'wider than 7: not cut');
  t.match(renderLine(op({ latencyNs: 125_999 })), / {8}0\.12 /, 'an exact tie rounds to even, as printf');
  t.match(renderLine(op({ latencyNs: 375_000 })), / {8}0\.38 /);
  t.match(renderLine(op({ type: 'R', bytes: -5, pid: 12345678 })), new RegExp(`^${time} postgres         12345678 R -5      12 `), 'an error, a wide pid');
  t.match(renderLine(op({ bytes: 123456789012 })), / W 123456789012 12 /, 'a large count is not cut');
});

t.test('names are escaped: one line, no terminal control', async (t) => {
  const line = renderLine(op({ comm: b('evil\x1b]0;x\x07'), file: b('a\nb\x1b[2J\xff') }));
  t.equal(line.split('\n').length, 1);
  t.notMatch(line, /\x1b/);
  t.match(line, /evil\\x1b\]0;x\\x07 .* a\\nb\\x1b\[2J\\xff$/);
});

t.test('CSV: libbpf-tools (-c, ns) and bcc (-j, us), exact 64-bit times, quoting', async (t) => {
  const big = op({ endNs: 18446744073709551615n, latencyNs: 1_234_999 });
  t.equal(renderCsv(big, 'csv'), '18446744073709551615,postgres,4242,W,5000,12288,1234,000000010000000000000001');
  t.equal(renderCsv(big, 'bcc-csv'), '18446744073709551,postgres,4242,W,5000,12288,1234,000000010000000000000001');
  t.equal(renderCsv(op({ type: 'S', wholeFile: true, bytes: 2 ** 63, offset: 0, endNs: 5n }), 'csv'),
    '5,postgres,4242,S,LL_MAX,0,12345,000000010000000000000001');
  t.equal(csvField(b('a,b')), '"a,b"');
  t.equal(csvField(b('say "hi"')), '"say ""hi"""');
  t.equal(csvField(b('tab\there')), 'tab\\there');
  t.equal(render(op(), 'csv'), renderCsv(op(), 'csv'));
  t.equal(render(op(), 'table'), renderLine(op()));
});

t.test('JSON: every documented field, exact bytes', async (t) => {
  const parsed = JSON.parse(renderJson(op({ file: Uint8Array.from([0x61, 0xff]), latencyNs: 1_500_001 })));
  t.same(Object.keys(parsed), ['time', 'ts', 'comm', 'pid', 'type', 'bytes', 'offset', 'latency_ms', 'file', 'cgroup_id']);
  t.equal(parsed.cgroup_id, 1234, 'cgroup_id always');
  t.match(parsed.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.equal(parsed.ts, 2);
  t.equal(parsed.comm, 'postgres');
  t.equal(parsed.pid, 4242);
  t.equal(parsed.type, 'W');
  t.equal(parsed.bytes, 5000);
  t.equal(parsed.offset, 12288);
  t.equal(parsed.latency_ms, 1.500001);
  t.equal(parsed.file, 'a\udcff');
  t.equal(JSON.parse(renderJson(op({ type: 'S', wholeFile: true, bytes: 2 ** 63 }))).bytes, null, 'whole-file fsync');
  t.equal(render(op(), 'json'), renderJson(op()));
});

t.test('--print-cgroup: CGROUP (CONTAINER) before FILENAME and FILE, the path in JSON', async (t) => {
  const columns = 'TIME     COMM             PID     T BYTES   OFF_KB   LAT(ms) CGROUP                           FILENAME';
  t.same(header(parseOptions(['--print-cgroup'])), ['Tracing ext4 operations slower than 10 ms... Hit Ctrl-C to end.', columns]);
  t.equal(header(parseOptions(['--print-cgroup=container']))[1],
    'TIME     COMM             PID     T BYTES   OFF_KB   LAT(ms) CONTAINER    FILENAME');
  t.same(header(parseOptions(['-c', '--print-cgroup'])), ['ENDTIME_ns,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,CGROUP,FILE']);
  t.same(header(parseOptions(['-j', '--print-cgroup=container'])), ['ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,CONTAINER,FILE']);
  t.equal(parseOptions(['--print-cgroup']).printCgroup, 'path');
  t.equal(parseOptions(['--print-cgroup=container']).printCgroup, 'container');
  const id = 'ab12cd34ef56'.padEnd(64, '0');
  const service = describeCgroup(1234, b('/system.slice/a,"b".service'), 'path');
  const docker = describeCgroup(1234, b(`/system.slice/docker-${id}.scope`), 'container');
  const time = '\\d\\d:\\d\\d:\\d\\d';
  t.match(renderLine(op(), service),
    new RegExp(`^${time} postgres         4242    W 5000    12         12\\.35 /system\\.slice/a,"b"\\.service {6}000000010000000000000001$`));
  t.match(renderLine(op(), docker), new RegExp(`^${time} postgres .* 12\\.35 ab12cd34ef56 000000010000000000000001$`));
  t.equal(renderCsv(op({ endNs: 5n }), 'csv', service), '5,postgres,4242,W,5000,12288,12345,"/system.slice/a,""b"".service",000000010000000000000001');
  t.equal(renderCsv(op({ endNs: 5n }), 'csv', docker), '5,postgres,4242,W,5000,12288,12345,ab12cd34ef56,000000010000000000000001');
  const hostile = describeCgroup(99, Uint8Array.from([...b('/ev\x1b[1mil'), 0xff]), 'path');
  t.match(renderLine(op(), hostile), / \/ev\\x1b\[1mil\\xff +000000010000000000000001$/, 'escaped in the column');
  const parsed = JSON.parse(renderJson(op(), docker));
  t.same([parsed.cgroup_id, parsed.cgroup], [1234, `/system.slice/docker-${id}.scope`], 'JSON: the full path');
  t.equal(JSON.parse(renderJson(op(), hostile)).cgroup, '/ev\x1b[1mil\udcff', 'JSON: exact bytes');
  t.equal(render(op(), 'table', service), renderLine(op(), service));
});

t.test('decoding a record laid out as the shipped object says', async (t) => {
  const obj = BpfObject.openUnchecked('fsslower');
  t.teardown(() => obj.close());
  const decoder = eventDecoder(obj.struct('event'));
  const view = new DataView(new ArrayBuffer(decoder.size + 16));
  const base = 16;
  const o = decoder.offsets;
  view.setBigUint64(base + o.end_ns, 0xfedcba9876543210n, true);
  view.setBigUint64(base + o.delta_ns, 700_210_000n, true);
  view.setBigInt64(base + o.offset, 40960n, true);
  view.setBigInt64(base + o.size, 0x7fffffffffffffffn, true);
  view.setUint32(base + o.pid, 31337, true);
  view.setBigUint64(base + o.cgroup_id, 2n ** 40n + 7n, true);
  view.setUint32(base + o.op, 3, true);
  new Uint8Array(view.buffer, base + o.comm, 16).set(b('e4ops\0junk'));
  new Uint8Array(view.buffer, base + o.file, 8).set(b('f1.dat\0x'));
  const e = decodeEvent(decoder, view, base);
  t.equal(e.endNs, 0xfedcba9876543210n, 'end stamp exact');
  t.equal(e.latencyNs, 700_210_000);
  t.equal(e.offset, 40960);
  t.equal(e.wholeFile, true, 'LLONG_MAX told exactly');
  t.equal(e.pid, 31337);
  t.equal(e.cgroupId, 2 ** 40 + 7, 'cgroup_id, 64-bit');
  t.equal(e.type, 'S');
  t.same(Buffer.from(e.comm).toString(), 'e4ops');
  t.same(Buffer.from(e.file).toString(), 'f1.dat');
  view.setBigInt64(base + o.size, 0x7ffffffffffffffen, true);
  view.setUint32(base + o.op, 0, true);
  const read = decodeEvent(decoder, view, base);
  t.equal(read.wholeFile, false, 'LLONG_MAX - 1 is not the whole file');
  t.equal(read.type, 'R');
  t.equal(decoder.sizes.file, 256, 'a whole path component fits');
});

/** Each program of object `name`, by name: its section. */
function programSections(name: string): Map<string, string> {
  const obj = BpfObject.openUnchecked(name);
  try {
    return new Map(obj.programs().map((p) => [p.name, p.section]));
  } finally {
    obj.close();
  }
}

t.test('attach plans: fentry, kprobe, raw syscall tracepoints, syscall tracepoints, each naming programs its object has', async (t) => {
  const sections = programSections('fsslower');
  for (const fs of Object.values(FILE_SYSTEMS)) {
    const plans = attachPlans(parseFsslower(['-t', fs.name], 'fsslower'));
    t.same(plans.map((p) => p.name), ['fentry', 'kprobe', 'raw syscall tracepoints', 'syscall tracepoints']);
    t.same(plans.map((p) => p.object), [`fsslower-${fs.name}`, `fsslower-${fs.name}`, undefined, undefined], "the file operations' plans in the file system's object, the syscalls' in fsslower's");
    const operations = programSections(`fsslower-${fs.name}`);
    t.same([...operations.keys()].sort(), [...fentryPrograms(fs), ...kprobePrograms(fs)].sort(), `fsslower-${fs.name}.bpf.o: its fentry and kprobe programs, no others`);
    t.same(plans[0].programs, fentryPrograms(fs));
    t.same(plans[1].programs, kprobePrograms(fs));
    t.same(plans[2].programs, RAW_SYSCALL_PROGRAMS);
    // read_iter, write_iter, open, fsync: each program on its function, entry and exit
    const ops = ['read', 'write', 'open', 'fsync'];
    t.same(fentryPrograms(fs).map((name) => operations.get(name)),
      fs.functions.flatMap((f) => [`fentry/${f}`, `fexit/${f}`]), `${fs.name}: fentry on ${fs.functions.join(', ')}`);
    t.same(kprobePrograms(fs).map((name) => operations.get(name)),
      fs.functions.flatMap((f) => [`kprobe/${f}`, `kretprobe/${f}`]), `${fs.name}: kprobes on the same`);
    t.same(fentryPrograms(fs), ops.flatMap((op) => [`${fs.name}_fentry_${op}`, `${fs.name}_fexit_${op}`]));
  }
  t.same(FILE_SYSTEMS.xfs.functions, ['xfs_file_read_iter', 'xfs_file_write_iter', 'xfs_file_open', 'xfs_file_fsync']);
  t.same(FILE_SYSTEMS.btrfs.functions, ['btrfs_file_read_iter', 'btrfs_file_write_iter', 'btrfs_file_open', 'btrfs_sync_file']);
  t.same(FILE_SYSTEMS.nfs.functions, ['nfs_file_read', 'nfs_file_write', 'nfs_file_open', 'nfs_file_fsync']);
  t.same(FILE_SYSTEMS.fuse.functions, ['fuse_file_read_iter', 'fuse_file_write_iter', 'fuse_open', 'fuse_fsync']);
  const plans = attachPlans(parseOptions([]));
  t.same(RAW_SYSCALL_PROGRAMS.map((name) => sections.get(name)), ['raw_tp/sys_enter', 'raw_tp/sys_exit'], 'two raw tracepoints for all the syscalls');
  t.equal(plans[2].unavailable?.(), null, 'x86-64: the raw tracepoints know its syscall numbers');
  for (const syscall of SYSCALLS) {
    t.equal(sections.get(`fs_enter_${syscall}`), `tracepoint/syscalls/sys_enter_${syscall}`);
    t.equal(sections.get(`fs_exit_${syscall}`), `tracepoint/syscalls/sys_exit_${syscall}`);
  }
  t.equal(sections.size, RAW_SYSCALL_PROGRAMS.length + 2 * SYSCALLS.length, 'fsslower.bpf.o: the syscall programs, no others');
  const tracepoints = plans[3];
  t.same(tracepoints.programs, [], 'no programs chosen before the plan is tried');
  t.equal(tracepoints.unavailable?.(), null, 'this x86-64 kernel has syscall tracepoints');
  t.same(tracepoints.programs, SYSCALLS.flatMap((s) => [`fs_enter_${s}`, `fs_exit_${s}`]), 'x86-64 has every one of them');
});
