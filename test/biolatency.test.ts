import t from 'tap';
import { cgroup2Root, usageError } from './helpers.js';
import { BpfObject } from '../common/bpfobject.js';
import { blockAttachPlans, RequestFlags } from '../common/bio.js';
import { devText, DiskNames, mkdev, parseProcPartitions, resolveDisk, type BlockDevice } from '../common/disks.js';
import {
  busiestCgroups, DEFAULT_CGROUPS_MAX, histogramsSince, jsonTime, kernelConfig, needsRequestStart, parseOptions, renderHistogram, renderJson,
  sectionLabel, sortHistograms, type Histogram, type Naming, type Options,
} from '../tools/biolatency.js';

function options(overrides: Partial<Options> = {}): Options {
  return {
    timestamp: false, queued: false, milliseconds: false, perDisk: false, perFlag: false, extension: false,
    json: false, percentiles: false, verbose: false, ...overrides,
  };
}

function histogram(counts: Record<number, number>, overrides: Partial<Histogram> = {}): Histogram {
  const slots = Array.from({ length: 27 }, (_, slot) => counts[slot] ?? 0);
  const count = slots.reduce((s, n) => s + n, 0);
  return { dev: mkdev(254, 0), cmdFlags: 0, slots, totalNs: 0, count, ...overrides };
}

t.test('options: positionals, combined flags, kernel config', async (t) => {
  const o = parseOptions([]);
  t.same([o.interval, o.count, o.timestamp, o.queued, o.milliseconds, o.perDisk, o.perFlag, o.extension, o.json, o.percentiles],
    [undefined, undefined, false, false, false, false, false, false, false, false]);
  t.same(kernelConfig(o), { targ_queued: false, targ_ms: false, targ_per_disk: false, targ_per_flag: false, targ_per_cgroup: false, filter_dev: false, targ_dev: 0 });
  t.notOk(needsRequestStart(o), 'issue and completion are enough');
  const all = parseOptions(['-mT', '-Q', '-D', '-F', '-e', '-j', '-d', 'sdc', '--percentiles', '1', '10'], [{ name: 'sdc', dev: mkdev(8, 32) }]);
  t.same([all.interval, all.count, all.timestamp, all.queued, all.milliseconds, all.perDisk, all.perFlag, all.extension, all.json, all.percentiles, all.dev],
    [1, 10, true, true, true, true, true, true, true, true, mkdev(8, 32)]);
  t.same(kernelConfig(all),
    { targ_queued: true, targ_ms: true, targ_per_disk: true, targ_per_flag: true, targ_per_cgroup: false, filter_dev: true, targ_dev: mkdev(8, 32) });
  t.ok(needsRequestStart(all), '-Q needs request creation');
  t.ok(needsRequestStart(parseOptions(['-c', cgroup2Root()])), 'so does a process filter: creation is where the process is known');
  t.equal(parseOptions(['5']).interval, 5);
  t.equal(parseOptions(['--disks', '--flags', '--extension', '--json', '--milliseconds', '--queued', '--timestamp']).perFlag, true);
});

t.test('options: every mistake is a UsageError naming what was typed', async (t) => {
  const cases: [string[], RegExp][] = [
    [['0'], /^invalid interval '0'/],
    [['x'], /^invalid interval 'x'/],
    [['1', '0'], /^invalid count '0'/],
    [['1', '2', '3'], /^unknown argument '3'/],
    [['-d'], /-d/],
    [['--nope'], /^unknown option --nope$/],
  ];
  for (const [argv, message] of cases) t.match(usageError(() => parseOptions(argv)), message, argv.join(' '));
});

t.test('intervals print what was counted since the last one; empty histograms are left out', async (t) => {
  const first = [histogram({ 3: 2 }, { totalNs: 20_000 }), histogram({ 5: 1 }, { dev: mkdev(8, 0), totalNs: 40_000 })];
  const second = [histogram({ 3: 5, 4: 1 }, { totalNs: 70_000 }), histogram({ 5: 1 }, { dev: mkdev(8, 0), totalNs: 40_000 })];
  t.same(histogramsSince(first, []), first);
  const since = histogramsSince(second, first);
  t.equal(since.length, 1);
  t.same(since[0].slots.slice(0, 6), [0, 0, 0, 3, 1, 0]);
  t.equal(since[0].count, 4);
  t.equal(since[0].totalNs, 50_000);
});

// Upstream prints "\ndisk = %s\t" (libbpf-tools) and "\ndisk = %s" (bcc): the name without the stray tab.
const naming: Naming = {
  disk: (dev) => (dev === mkdev(254, 0) ? 'vda' : devText(dev)),
  flags: (f) => (f === 0x8801 ? 'Idle-Sync-Write' : 'Read'),
};

t.test('text: a blank line, the name, the histogram, and the -e and --percentiles lines', async (t) => {
  const h = histogram({ 5: 12, 6: 37, 11: 1 }, { totalNs: 6_394_900 });
  const rows = [
    '     usecs               : count    distribution',
    '         0 -> 1          : 0        |                                        |',
    '         2 -> 3          : 0        |                                        |',
    '         4 -> 7          : 0        |                                        |',
    '         8 -> 15         : 0        |                                        |',
    '        16 -> 31         : 0        |                                        |',
    '        32 -> 63         : 12       |************                            |',
    '        64 -> 127        : 37       |****************************************|',
    '       128 -> 255        : 0        |                                        |',
    '       256 -> 511        : 0        |                                        |',
    '       512 -> 1023       : 0        |                                        |',
    '      1024 -> 2047       : 0        |                                        |',
    '      2048 -> 4095       : 1        |*                                       |',
  ];
  t.same(renderHistogram(h, options(), {}), ['', ...rows]);
  t.same(renderHistogram(h, options({ perDisk: true }), { disk: naming.disk }), ['', 'disk = vda', ...rows]);
  t.same(renderHistogram(h, options({ perFlag: true }), { flags: naming.flags }), ['', 'flags = Read', ...rows]);
  t.same(renderHistogram({ ...h, cmdFlags: 0x8801 }, options(), naming).slice(0, 2), ['', 'disk = vda\tflags = Idle-Sync-Write']);
  t.same(renderHistogram(h, options({ extension: true }), {}), [
    '', ...rows, '', 'avg = 127 usecs, total: 6394 usecs, count: 50', '',
    'count 50, avg 127.9 usecs, p50 ~86.5, p90 ~121.1, p99 ~3072.0 usecs',
  ]);
  t.same(renderHistogram(h, options({ percentiles: true }), {}), [
    '', ...rows, 'count 50, avg 127.9 usecs, p50 ~86.5, p90 ~121.1, p99 ~3072.0 usecs',
  ]);
  const ms = renderHistogram(histogram({ 0: 3 }, { totalNs: 2_500_000 }), options({ milliseconds: true, extension: true }), {});
  t.same(ms, [
    '', '     msecs               : count    distribution',
    '         0 -> 1          : 3        |****************************************|',
    '', 'avg = 0 msecs, total: 2 msecs, count: 3', '', 'count 3, avg 0.8 msecs, p50 ~1.0, p90 ~1.8, p99 ~2.0 msecs',
  ]);
});

t.test('histograms in a stable order, by their names', async (t) => {
  const list = [
    histogram({ 1: 1 }, { dev: mkdev(259, 0) }), histogram({ 1: 1 }, { dev: mkdev(254, 0) }), histogram({ 1: 1 }, { dev: mkdev(8, 16) }),
  ];
  const names: Naming = { disk: (dev) => ({ [mkdev(259, 0)]: 'nvme0n1', [mkdev(254, 0)]: 'vda', [mkdev(8, 16)]: 'sdb' })[dev]! };
  t.same(sortHistograms(list, names).map((h) => sectionLabel(h, names)), ['disk = nvme0n1', 'disk = sdb', 'disk = vda']);
});

t.test('JSON: bcc\'s shape, with the summary when asked', async (t) => {
  const now = new Date(2026, 0, 2, 3, 4, 5);
  t.equal(jsonTime(now), '2026-01-02 03:04:05');
  const h = histogram({ 0: 3, 1: 1, 3: 7 }, { totalNs: 90_000, cmdFlags: 0x8801 });
  t.same(JSON.parse(renderJson(h, options({ milliseconds: true }), {}, now)), {
    ts: '2026-01-02 03:04:05', val_type: 'msecs',
    data: [
      { 'interval-start': 0, 'interval-end': 1, count: 3 },
      { 'interval-start': 2, 'interval-end': 3, count: 1 },
      { 'interval-start': 4, 'interval-end': 7, count: 0 },
      { 'interval-start': 8, 'interval-end': 15, count: 7 },
    ],
  });
  const both = JSON.parse(renderJson(h, options({ perDisk: true, perFlag: true, percentiles: true }), naming, now));
  t.same(Object.keys(both), ['ts', 'val_type', 'data', 'disk', 'flags', 'total', 'count', 'avg', 'p50', 'p90', 'p99']);
  t.match(both, { disk: 'vda', flags: 'Idle-Sync-Write', total: 90, count: 11, avg: 90 / 11 });
});

// The numbers of Linux 6.18 (bpf/vmlinux.h) and of 5.10, where operations and flag bits differ.
const OPS_6_18 = new Map(Object.entries({ REQ_OP_READ: 0, REQ_OP_WRITE: 1, REQ_OP_FLUSH: 2, REQ_OP_DISCARD: 3, REQ_OP_ZONE_APPEND: 7, REQ_OP_ZONE_RESET: 17, REQ_OP_DRV_IN: 34 }));
const BITS_6_18 = new Map(Object.entries({
  __REQ_FAILFAST_DEV: 8, __REQ_SYNC: 11, __REQ_META: 12, __REQ_PRIO: 13, __REQ_NOMERGE: 14, __REQ_IDLE: 15,
  __REQ_INTEGRITY: 16, __REQ_FUA: 17, __REQ_PREFLUSH: 18, __REQ_RAHEAD: 19, __REQ_BACKGROUND: 20, __REQ_NOWAIT: 21,
}));
const OPS_5_10 = new Map(Object.entries({ REQ_OP_READ: 0, REQ_OP_WRITE: 1, REQ_OP_ZONE_RESET: 6, REQ_OP_WRITE_SAME: 7, REQ_OP_SCSI_IN: 32 }));
const BITS_5_10 = new Map(Object.entries({ __REQ_FAILFAST_DEV: 8, __REQ_SYNC: 11, __REQ_NOWAIT: 21, __REQ_HIPRI: 25 }));

t.test('-F names as libbpf-tools, numbered as the running kernel numbers them', async (t) => {
  const flags = new RequestFlags(OPS_6_18, BITS_6_18);
  // what Debian's biolatency -F printed on this 6.18 VM for O_DIRECT reads and writes and ext4's discards
  t.equal(flags.describe(0 + 2 ** 11 + 2 ** 15), 'Idle-Sync-Read');
  t.equal(flags.describe(1 + 2 ** 11 + 2 ** 15), 'Idle-Sync-Write');
  t.equal(flags.describe(3 + 2 ** 11), 'Sync-Discard');
  t.equal(flags.describe(1 + 2 ** 21 + 2 ** 20 + 2 ** 19 + 2 ** 18 + 2 ** 17 + 2 ** 16 + 2 ** 14 + 2 ** 13 + 2 ** 12),
    'NoWait-Background-ReadAhead-PreFlush-FUA-Integrity-NoMerge-Priority-Metadata-Write', 'upstream\'s order');
  t.equal(flags.describe(17), 'ZoneReset', 'an operation that moved in 6.x');
  t.equal(flags.describe(7), 'ZoneAppend', 'one upstream has no name for');
  t.equal(flags.describe(34), 'DrvIn');
  t.equal(flags.describe(0x55), 'Unknown');
  const old = new RequestFlags(OPS_5_10, BITS_5_10);
  t.equal(old.describe(6), 'ZoneReset');
  t.equal(old.describe(7 + 2 ** 11), 'Sync-WriteSame');
  t.equal(old.describe(32), 'SCSIIn');
  t.equal(old.rwbs(7), 'W', 'write same is a write');
  t.equal(new RequestFlags(new Map(), new Map()).describe(1), 'Unknown', 'a kernel BTF without the enums');
});

t.test('the running kernel\'s request flags name reads and writes', async (t) => {
  const flags = RequestFlags.fromKernel();
  t.equal(flags.describe(0), 'Read');
  t.equal(flags.describe(1), 'Write');
  t.equal(flags.rwbs(1), 'W');
});

const DEVICES: BlockDevice[] = [
  { name: 'sda', dev: mkdev(8, 0) }, { name: 'sda1', dev: mkdev(8, 1), disk: 'sda' },
  { name: 'loop10', dev: mkdev(7, 10) }, { name: 'loop2', dev: mkdev(7, 2) }, { name: 'nvme0n1', dev: mkdev(259, 0) },
];

t.test('disks: names to numbers for -d, with errors that help', async (t) => {
  t.equal(resolveDisk('--disk', 'sda', DEVICES), mkdev(8, 0));
  t.equal(resolveDisk('--disk', '/dev/nvme0n1', DEVICES), mkdev(259, 0));
  t.equal(usageError(() => resolveDisk('--disk', 'sdz', DEVICES)),
    "invalid --disk 'sdz': no such disk (disks: loop2, loop10, nvme0n1, sda)");
  t.equal(usageError(() => resolveDisk('--disk', 'sda1', DEVICES)),
    "invalid --disk 'sda1': a partition of sda; block I/O is traced per disk: use sda");
  t.equal(usageError(() => resolveDisk('-d', 'x', [])), "invalid -d 'x': no such disk (disks: none)");
});

t.test('disks: numbers to names, /proc/partitions, and major:minor when unnamed', async (t) => {
  t.equal(mkdev(254, 16), 254 * 2 ** 20 + 16);
  t.equal(devText(mkdev(254, 16)), '254:16');
  const names = new DiskNames(DEVICES);
  t.equal(names.name(mkdev(259, 0)), 'nvme0n1');
  t.equal(names.name(mkdev(4095, 99)), '4095:99');
  t.same(parseProcPartitions([
    'major minor  #blocks  name', '',
    ' 259        0  500107608 nvme0n1', ' 259        1     524288 nvme0n1p1',
    '   8        0  976762584 sda', '   8        1  976761560 sda1', '  65      160  976762584 sdaa',
    ' 254        0  268435456 vda', ' 254       16  268435456 vdb',
  ].join('\n')), [
    { name: 'nvme0n1', dev: mkdev(259, 0) }, { name: 'nvme0n1p1', dev: mkdev(259, 1), disk: 'nvme0n1' },
    { name: 'sda', dev: mkdev(8, 0) }, { name: 'sda1', dev: mkdev(8, 1), disk: 'sda' }, { name: 'sdaa', dev: mkdev(65, 160) },
    { name: 'vda', dev: mkdev(254, 0) }, { name: 'vdb', dev: mkdev(254, 16) },
  ]);
});

t.test('attach plans: best first, and every program they name is in both objects', async (t) => {
  const withStart = blockAttachPlans(true);
  const without = blockAttachPlans(false);
  t.same(without.map((p) => p.programs), [['rq_issue_raw_tp', 'rq_requeue_raw_tp', 'rq_complete_raw_tp']]);
  t.same(withStart[0].programs, ['rq_issue_raw_tp', 'rq_requeue_raw_tp', 'rq_complete_raw_tp', 'io_start_raw_tp']);
  t.same(withStart.map((p) => p.programs.slice(3).join(' ')), [
    'io_start_raw_tp', 'account_start_fentry', 'account_start_kprobe',
    'getrq_raw_tp frontmerge_raw_tp', 'rq_insert_raw_tp',
  ]);
  for (const tool of ['biolatency', 'biosnoop']) {
    const obj = BpfObject.openUnchecked(tool);
    const programs = new Set(obj.programs().map((p) => p.name));
    obj.close();
    const named = new Set([...withStart, ...without].flatMap((p) => p.programs));
    t.same([...named].filter((p) => !programs.has(p)), [], `${tool}.bpf.o has every program`);
    t.same([...programs].filter((p) => !named.has(p)), [], `${tool}.bpf.o has no program no plan loads`);
  }
});

t.test('--cgroups: per cgroup of the issuing process, the busiest --cgroups-max, the others summed', async (t) => {
  t.equal(parseOptions([]).perCgroup, undefined);
  const o = parseOptions(['--cgroups']);
  t.equal(o.perCgroup, DEFAULT_CGROUPS_MAX);
  t.equal(kernelConfig(o).targ_per_cgroup, true);
  t.ok(needsRequestStart(o), 'the cgroup is known where the request is created');
  t.equal(parseOptions(['--cgroups', '--cgroups-max', '3']).perCgroup, 3);
  t.match(usageError(() => parseOptions(['--cgroups-max', '3'])), /^option --cgroups-max needs --cgroups$/);
  t.match(usageError(() => parseOptions(['--cgroups', '--cgroups-max', '0'])), /^invalid --cgroups-max '0'/);
  t.match(usageError(() => parseOptions(['--cgroups', '--prometheus', '9560'])), /--cgroups.* not with --prometheus/);

  const paths: Record<number, string> = { 0: '?', 11: '/a', 12: '/b', 13: '/c\\x1b', 14: '/d' };
  const naming: Naming = { cgroup: (id) => ({ text: paths[id], path: id === 0 ? null : paths[id] }), disk: (d) => (d === mkdev(8, 0) ? 'sda' : 'vda') };
  const list = [
    histogram({ 1: 1 }, { cgroupId: 11 }),
    histogram({ 2: 5 }, { cgroupId: 12 }), histogram({ 2: 1 }, { cgroupId: 12, dev: mkdev(8, 0) }),
    histogram({ 3: 2 }, { cgroupId: 13, totalNs: 10 }), histogram({ 4: 1 }, { cgroupId: 14, totalNs: 5 }),
    histogram({ 5: 1 }, { cgroupId: 14, dev: mkdev(8, 0) }), histogram({ 1: 3 }, { cgroupId: 0 }),
  ];
  const shown = busiestCgroups(list, 2, naming);
  t.same(shown.map((h) => sectionLabel(h, naming)), [
    'cgroup = /b\tdisk = sda', 'cgroup = /b\tdisk = vda', 'cgroup = ?\tdisk = vda',
    'cgroup = (3 other cgroups)\tdisk = sda', 'cgroup = (3 other cgroups)\tdisk = vda',
  ], 'the busiest first (6, 3 requests), then the rest summed per disk');
  const rest = shown.at(-1)!;
  t.same([rest.count, rest.totalNs, rest.slots.slice(0, 5)], [4, 15, [0, 1, 0, 2, 1]], 'the sum of /a, /c and /d on vda');
  t.same(list.length, 7, 'the histograms given are not changed');
  t.same(busiestCgroups(list, 10, naming).length, 7, 'all shown when they fit');
  const now = new Date(2026, 0, 2, 3, 4, 5);
  t.match(JSON.parse(renderJson(shown[0], options({ perDisk: true }), naming, now)), { cgroup: '/b', cgroup_id: 12, disk: 'sda' });
  t.match(JSON.parse(renderJson(rest, options({ perDisk: true }), naming, now)), { cgroup: null, cgroup_id: null, other_cgroups: 3 });
  t.same(renderHistogram(shown[0], options(), { cgroup: naming.cgroup }).slice(0, 2), ['', 'cgroup = /b']);
  const again = histogramsSince([histogram({ 1: 2 }, { cgroupId: 11 }), histogram({ 1: 1 }, { cgroupId: 12 })],
    [histogram({ 1: 1 }, { cgroupId: 11 }), histogram({ 1: 1 }, { cgroupId: 12 })]);
  t.same(again.map((h) => [h.cgroupId, h.count]), [[11, 1]], 'intervals told apart by cgroup too');
});

t.test('--cgroups: the kernel keys histograms by the cgroup id', async (t) => {
  const obj = BpfObject.openUnchecked('biolatency');
  t.teardown(() => obj.close());
  const key = obj.struct('hist_key');
  t.equal(key.fields.get('cgroup_id')?.type.size, 8);
});
