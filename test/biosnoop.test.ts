import t from 'tap';
import { cgroup2Root, usageError } from './helpers.js';
import { BpfObject } from '../common/bpfobject.js';
import { RequestFlags } from '../common/bio.js';
import { describeCgroup } from '../common/cgroups.js';
import { mkdev } from '../common/disks.js';
import {
  decodeEvent, eventDecoder, header, kernelConfig, millisecondsOption, parseOptions, renderJson, renderLine,
  sectorText, timestampText, type BioEvent, type Options,
} from '../tools/biosnoop.js';

const b = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s));

// The numbers of Linux 6.18 (enum req_op, enum req_flag_bits in bpf/vmlinux.h).
const OPS_6_18 = new Map(Object.entries({
  REQ_OP_READ: 0, REQ_OP_WRITE: 1, REQ_OP_FLUSH: 2, REQ_OP_DISCARD: 3, REQ_OP_SECURE_ERASE: 5,
  REQ_OP_ZONE_APPEND: 7, REQ_OP_WRITE_ZEROES: 9, REQ_OP_ZONE_OPEN: 11, REQ_OP_ZONE_CLOSE: 13,
  REQ_OP_ZONE_FINISH: 15, REQ_OP_ZONE_RESET: 17, REQ_OP_ZONE_RESET_ALL: 19, REQ_OP_DRV_IN: 34, REQ_OP_DRV_OUT: 35,
}));
const BITS_6_18 = new Map(Object.entries({
  __REQ_FAILFAST_DEV: 8, __REQ_FAILFAST_TRANSPORT: 9, __REQ_FAILFAST_DRIVER: 10, __REQ_SYNC: 11, __REQ_META: 12,
  __REQ_PRIO: 13, __REQ_NOMERGE: 14, __REQ_IDLE: 15, __REQ_INTEGRITY: 16, __REQ_FUA: 17, __REQ_PREFLUSH: 18,
  __REQ_RAHEAD: 19, __REQ_BACKGROUND: 20, __REQ_NOWAIT: 21, __REQ_POLLED: 22, __REQ_ALLOC_CACHE: 23,
  __REQ_SWAP: 24, __REQ_DRV: 25, __REQ_FS_PRIVATE: 26, __REQ_ATOMIC: 27, __REQ_NOUNMAP: 29,
}));
const flags618 = new RequestFlags(OPS_6_18, BITS_6_18);
const bit = (name: string): number => 2 ** BITS_6_18.get(`__REQ_${name}`)!;

function options(overrides: Partial<Options> = {}): Options {
  return { queued: false, minMs: 0, timestamp: false, pattern: false, verbose: false, json: false, ...overrides };
}

function event(overrides: Partial<BioEvent> = {}): BioEvent {
  return {
    tsNs: 10_000_000_000 + 1_500_000_000, cgroupId: 77, latencyNs: 123_456.7, queuedNs: 17_000, sector: 123456n, bytes: 65536,
    pid: 1234, comm: b('dd'), disk: 'vda', rwbs: 'WS', flags: 'Idle-Sync-Write', pattern: 'sequential',
    ...overrides,
  };
}

t.test('options: defaults, every flag, duration and kernel config', async (t) => {
  const o = parseOptions([]);
  t.same([o.duration, o.queued, o.dev, o.minMs, o.timestamp, o.pattern, o.json], [undefined, false, undefined, 0, false, false, false]);
  t.same(kernelConfig(o), { min_ns: 0n, filter_dev: false, targ_dev: 0 });
  const all = parseOptions(['-Q', '-d', 'sdc', '-m', '2.5', '-t', '-P', '--json', '-v', '10'], [{ name: 'sdc', dev: mkdev(8, 32) }]);
  t.same([all.duration, all.queued, all.dev, all.minMs, all.timestamp, all.pattern, all.json, all.verbose],
    [10, true, mkdev(8, 32), 2.5, true, true, true, true]);
  t.same(kernelConfig(all), { min_ns: 2_500_000n, filter_dev: true, targ_dev: mkdev(8, 32) });
  t.equal(parseOptions(['--queued', '--pattern', '--timestamp', '--min', '1']).minMs, 1, 'long names');
  t.equal(parseOptions(['-c', cgroup2Root()]).cgroup, cgroup2Root());
});

t.test('options: every mistake is a UsageError naming what was typed', async (t) => {
  const cases: [string[], RegExp][] = [
    [['0'], /^invalid duration '0'/],
    [['-1'], /^invalid duration '-1'/],
    [['x'], /^invalid duration 'x'/],
    [['1', '2'], /^unknown argument '2'/],
    [['-m', 'x'], /^invalid --min 'x': expected milliseconds from 0 to 9007199254$/],
    [['-m', '-1'], /^invalid --min '-1'/],
    [['-m', '1e3'], /^invalid --min '1e3'/],
    [['-m'], /-m/],
    [['-d'], /-d/],
    [['--nope'], /^unknown option --nope$/],
  ];
  for (const [argv, message] of cases) t.match(usageError(() => parseOptions(argv)), message, argv.join(' '));
  t.equal(millisecondsOption('--min', '0.001'), 0.001);
});

// The expected lines are what libbpf-tools' printf formats give for the same values:
// "%-11s " / "%-12s ", "%-14s %-7s %-7s %-4s %-10s %-7s ", "%7s " (QUE), "%7s" (LAT).
t.test('header as libbpf-tools, with P between BYTES and QUE as bcc', async (t) => {
  t.equal(header(options()), 'TIME(s)     COMM           PID     DISK    T    SECTOR     BYTES   LAT(ms)');
  t.equal(header(options({ timestamp: true, queued: true })),
    'TIMESTAMP    COMM           PID     DISK    T    SECTOR     BYTES   QUE(ms) LAT(ms)');
  t.equal(header(options({ pattern: true, queued: true })),
    'TIME(s)     COMM           PID     DISK    T    SECTOR     BYTES   P QUE(ms) LAT(ms)');
});

t.test('lines as libbpf-tools prints them', async (t) => {
  t.equal(renderLine(event(), options(), 10_000_000_000),
    '1.500000    dd             1234    vda     WS   123456     65536     0.123');
  t.equal(
    renderLine(event({ comm: b('kworker/u16:2-flush'), pid: 98765, disk: 'nvme0n1', rwbs: 'FWFS', sector: (1n << 64n) - 1n, bytes: 0, queuedNs: undefined, latencyNs: 1_234_567_800 }),
      options({ queued: true }), 11_500_000_000),
    '0.000000    kworker/u16:2- 98765   nvme0n1 FWFS -1         0        -1.000 1234.568',
    'COMM cut to 14 bytes, unknown queued time -1, no sector -1',
  );
  t.equal(renderLine(event(), options({ pattern: true, queued: true }), 10_000_000_000),
    '1.500000    dd             1234    vda     WS   123456     65536   S   0.017   0.123');
  t.equal(renderLine(event({ pattern: 'unknown' }), options({ pattern: true }), 10_000_000_000),
    '1.500000    dd             1234    vda     WS   123456     65536   ?   0.123');
  t.equal(renderLine(event({ pattern: 'random' }), options({ pattern: true }), 10_000_000_000),
    '1.500000    dd             1234    vda     WS   123456     65536   R   0.123');
  t.match(renderLine(event(), options({ timestamp: true }), 0), /^\d\d:\d\d:\d\d\.\d{3} dd {13}1234 /);
  t.match(timestampText(event().tsNs), /^\d\d:\d\d:\d\d\.\d{3}$/);
});

t.test('hostile command names are escaped, and cut before escaping', async (t) => {
  const line = renderLine(event({ comm: b('\x1b[2Jevil\nname') }), options(), 10_000_000_000);
  t.equal(line, '1.500000    \\x1b[2Jevil\\nname 1234    vda     WS   123456     65536     0.123');
  t.equal(renderLine(event({ comm: b('abcdefghijklmn\x07') }), options(), 10_000_000_000),
    '1.500000    abcdefghijklmn 1234    vda     WS   123456     65536     0.123', 'the 15th byte is not shown');
  t.equal(sectorText(42n), '42');
});

t.test('JSON: every field, exact strings, null for what is unknown', async (t) => {
  const json = JSON.parse(renderJson(event({ comm: Uint8Array.from([0x64, 0xff]) }), 10_000_000_000));
  t.same(Object.keys(json), ['time', 'ts', 'comm', 'pid', 'disk', 'rwbs', 'flags', 'sector', 'bytes', 'pattern', 'que_ms', 'lat_ms', 'cgroup_id']);
  t.match(json, {
    ts: 1.5, comm: 'd\udcff', pid: 1234, disk: 'vda', rwbs: 'WS', flags: 'Idle-Sync-Write', sector: 123456,
    bytes: 65536, pattern: 'sequential', que_ms: 0.017, lat_ms: 0.1234567,
  });
  t.match(json.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const unknown = JSON.parse(renderJson(event({ sector: (1n << 64n) - 1n, queuedNs: undefined }), 10_000_000_000));
  t.equal(unknown.sector, null);
  t.equal(unknown.que_ms, null);
});

t.test('--print-cgroup: CGROUP (CONTAINER) as the last column, unpadded; cgroup in JSON after cgroup_id', async (t) => {
  const id = '0123456789abcdef'.repeat(4);
  const docker = `/system.slice/docker-${id}.scope`;
  t.equal(header(options({ printCgroup: 'path' })), 'TIME(s)     COMM           PID     DISK    T    SECTOR     BYTES   LAT(ms) CGROUP');
  t.equal(header(options({ printCgroup: 'container', queued: true })),
    'TIME(s)     COMM           PID     DISK    T    SECTOR     BYTES   QUE(ms) LAT(ms) CONTAINER');
  const line = (path: Uint8Array | undefined, o: Partial<Options>): string =>
    renderLine(event(), options(o), 10_000_000_000, describeCgroup(77, path, o.printCgroup!));
  t.equal(line(Buffer.from('/a/b/c'), { printCgroup: 'path' }), '1.500000    dd             1234    vda     WS   123456     65536     0.123 /a/b/c');
  t.equal(line(Buffer.from(docker), { printCgroup: 'path' }), `1.500000    dd             1234    vda     WS   123456     65536     0.123 ${docker}`);
  t.equal(line(Buffer.from(docker), { printCgroup: 'container', pattern: true }),
    `1.500000    dd             1234    vda     WS   123456     65536   S   0.123 ${id.slice(0, 12)}`);
  t.equal(line(Buffer.from('/user.slice'), { printCgroup: 'container' }),
    '1.500000    dd             1234    vda     WS   123456     65536     0.123 /user.slice', 'no container: the path');
  t.equal(line(Buffer.concat([Buffer.from('/ev\x1b[2Jil'), Buffer.from([0xff])]), { printCgroup: 'path' }),
    '1.500000    dd             1234    vda     WS   123456     65536     0.123 /ev\\x1b[2Jil\\xff', 'escaped');
  t.equal(line(undefined, { printCgroup: 'path' }), '1.500000    dd             1234    vda     WS   123456     65536     0.123 ?', 'not known');
  const json = JSON.parse(renderJson(event(), 10_000_000_000, describeCgroup(77, Buffer.from(docker), 'container'))) as Record<string, unknown>;
  t.same(Object.keys(json).slice(-2), ['cgroup_id', 'cgroup']);
  t.same([json.cgroup_id, json.cgroup], [77, docker], 'the full path, whatever the column shows');
  const hostile = JSON.parse(renderJson(event(), 10_000_000_000, describeCgroup(77, Buffer.concat([Buffer.from('/ev\x1b'), Buffer.from([0xff])]), 'path')));
  t.equal(hostile.cgroup, '/ev\x1b\udcff', 'exact bytes');
  t.equal(JSON.parse(renderJson(event(), 10_000_000_000, describeCgroup(77, undefined, 'path'))).cgroup, null);
});

t.test('rwbs as the kernel\'s blk_fill_rwbs()', async (t) => {
  t.equal(flags618.rwbs(0), 'R');
  t.equal(flags618.rwbs(bit('SYNC') + bit('IDLE')), 'RS');
  t.equal(flags618.rwbs(1 + bit('SYNC') + bit('IDLE')), 'WS');
  t.equal(flags618.rwbs(1 + bit('SYNC') + bit('META') + bit('PRIO')), 'WSM');
  t.equal(flags618.rwbs(1 + bit('PREFLUSH') + bit('FUA') + bit('SYNC')), 'FWFS');
  t.equal(flags618.rwbs(bit('RAHEAD')), 'RA');
  t.equal(flags618.rwbs(2 + bit('PREFLUSH')), 'FF');
  t.equal(flags618.rwbs(3), 'D');
  t.equal(flags618.rwbs(5), 'DE');
  t.equal(flags618.rwbs(9), 'N', 'write zeroes');
  t.equal(flags618.rwbs(1 + bit('ATOMIC')), 'WU');
  t.equal(flags618.rwbs(0xff), 'N', 'an operation the kernel does not have');
});

t.test('events decode with the layout from the object\'s BTF', async (t) => {
  const obj = BpfObject.openUnchecked('biosnoop');
  const decoder = eventDecoder(obj.struct('event'));
  obj.close();
  const view = new DataView(new ArrayBuffer(decoder.size + 8));
  const at = 8;
  const u64 = (field: keyof typeof decoder.offsets, v: bigint): void => view.setBigUint64(at + decoder.offsets[field], v, true);
  const u32 = (field: keyof typeof decoder.offsets, v: number): void => view.setUint32(at + decoder.offsets[field], v, true);
  u64('ts_ns', 5_000_000_000n);
  u64('cgroup_id', 4321n);
  u64('latency_ns', 250_000n);
  u64('queued_ns', (1n << 64n) - 1n);
  u64('sector', (1n << 64n) - 1n);
  u32('bytes', 4096);
  u32('pid', 77);
  u32('cmd_flags', 1 + bit('SYNC'));
  u32('dev', 254 * 2 ** 20);
  u32('pattern', 2);
  new Uint8Array(view.buffer, at + decoder.offsets.comm, 16).set(b('jbd2/vda-8\0junk'));
  const e = decodeEvent(decoder, view, at, { disks: { name: (dev) => (dev === 254 * 2 ** 20 ? 'vda' : '?') }, flags: flags618 });
  t.same(e, {
    tsNs: 5_000_000_000, cgroupId: 4321, latencyNs: 250_000, queuedNs: undefined, sector: (1n << 64n) - 1n, bytes: 4096, pid: 77,
    comm: b('jbd2/vda-8'), disk: 'vda', rwbs: 'WS', flags: 'Sync-Write', pattern: 'random',
  });
  u64('queued_ns', 3000n);
  t.equal(decodeEvent(decoder, view, at, { disks: { name: () => 'x' }, flags: flags618 }).queuedNs, 3000);
});
