// The exposition text as Prometheus reads it: promtool's checks, and ours
// that promtool does not make (cumulative buckets, +Inf = _count, the
// slot -> le table, hostile comm bytes, the comm limit). Also the
// --prometheus options and their usage errors.
import t from 'tap';
import {
  CgroupLabels, CommLabels, Counters, exposition, Histograms, labelValueOf, log2Buckets, log2Slot, LOG2_SLOTS, microsecondHistogram,
  OTHER_CGROUPS, OTHER_COMMS, UNNAMED_CGROUP, type Family,
} from '../common/exposition.js';
import { parseListenAddress, prometheusFromArgs } from '../common/prometheus.js';
import { bioLatencyFamily } from '../tools/biolatency.js';
import { checkHistograms, parseExposition, promtool } from './exposition-check.js';
import { usageError } from './helpers.js';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

t.test('slot -> le: slot n [2^n, 2^(n+1)) us is le 2^(n+1) us in seconds; the clamped last slot only in +Inf', async (t) => {
  const slots = Array.from({ length: LOG2_SLOTS }, (_, n) => n + 1);
  const { buckets, count } = log2Buckets(slots, 1e6);
  t.equal(buckets.length, LOG2_SLOTS - 1, 'no bucket for the last slot');
  t.same(buckets.slice(0, 4), [{ le: 0.000002, count: 1 }, { le: 0.000004, count: 3 }, { le: 0.000008, count: 6 }, { le: 0.000016, count: 10 }]);
  t.equal(buckets.at(-1)!.le, 2 ** 26 / 1e6, 'the last bound: 2^26 us');
  t.equal(count, (LOG2_SLOTS * (LOG2_SLOTS + 1)) / 2, 'count: every slot, the last included');
  for (const [us, slot] of [[0, 0], [1, 0], [2, 1], [3, 1], [4, 2], [1023, 9], [1024, 10], [2 ** 32, 32], [2 ** 40 + 5, 40]]) {
    t.equal(log2Slot(us), slot, `${us} us in slot ${slot}`);
    if (slot < LOG2_SLOTS - 1) t.ok(us < 2 ** (slot + 1) && (slot === 0 || us >= 2 ** slot), `${us} us is below its le`);
  }
  const h = new Histograms();
  h.observe({ op: 'read' }, 1500); // 1 us: slot 0
  h.observe({ op: 'read' }, 3000); // 3 us: slot 1
  h.observe({ op: 'read' }, 1e12); // 1000 s: clamped
  const [series] = h.series();
  t.equal(series.buckets[0].count, 1);
  t.equal(series.buckets[1].count, 2);
  t.equal(series.buckets.at(-1)!.count, 2, 'the clamped one is in no bounded bucket');
  t.equal(series.count, 3);
  t.equal(series.sum, (1500 + 3000 + 1e12) / 1e9, '_sum in seconds');
});

t.test('hostile comm bytes: valid UTF-8, injective, and promtool accepts them', async (t) => {
  const hostile = [
    bytes(0x22, 0x5c, 0x6e), // "\n as text
    bytes(0x0a), bytes(0x5c, 0x6e), // a newline, and backslash-n
    bytes(0xff), bytes(0x5c, 0x78, 0x66, 0x66), // an invalid byte, and the text \xff
    bytes(0xed, 0xa0, 0x80), // an encoded surrogate
    bytes(0xc3), bytes(0xc3, 0xa9), // a cut sequence, and é
    bytes(0x1b, 0x5b, 0x33, 0x31, 0x6d), bytes(0xe2, 0x80, 0xae), bytes(0), bytes(),
    Uint8Array.from(Buffer.from(OTHER_COMMS.slice(0, 15))),
  ];
  const values = hostile.map(labelValueOf);
  t.equal(new Set(values).size, values.length, 'two different comms never share a value');
  for (const v of values) t.ok(Buffer.from(v, 'utf8').toString('utf8') === v && !/[\ud800-\udfff]/.test(v), `${JSON.stringify(v)}: valid UTF-8`);
  t.notOk(values.includes(OTHER_COMMS), 'no comm is the overflow value');
  const comms = new CommLabels(1000);
  const counters = new Counters();
  hostile.forEach((c, i) => counters.add(comms.of(c), i + 1));
  const text = exposition([{ name: 'ebpf_tools_execs_total', help: 'test "hostile" \\ help\nline', type: 'counter', samples: counters.samples() }]);
  const check = promtool(text);
  t.equal(check.status, 0, `promtool accepts it: ${check.output}`);
  const parsed = parseExposition(text);
  t.equal(parsed.length, hostile.length, 'one series per comm');
  t.same(parsed.map((s) => s.labels.comm), values, 'label values read back as written');
});

t.test('the comm limit: the first N keep their value, the rest under one that no comm can be; 0 drops the label', async (t) => {
  const comms = new CommLabels(2);
  const counters = new Counters();
  for (const name of ['a', 'b', 'c', 'a', 'd', 'c']) counters.add(comms.of(Uint8Array.from(Buffer.from(name))));
  t.same(counters.samples(), [
    { labels: { comm: 'a' }, value: 2 }, { labels: { comm: 'b' }, value: 1 }, { labels: { comm: OTHER_COMMS }, value: 3 },
  ]);
  t.ok(OTHER_COMMS.length > 15 && !OTHER_COMMS.includes('\\'), 'longer than a comm, without the backslash of an escaped one');
  const none = new CommLabels(0);
  t.same(none.of(Uint8Array.from(Buffer.from('a'))), {}, 'limit 0: no comm label');
});

t.test('a whole family set passes promtool and our checks; monotonic across scrapes', async (t) => {
  const slots = new Array<number>(LOG2_SLOTS).fill(0);
  slots[3] = 5;
  slots[LOG2_SLOTS - 1] = 2;
  const histograms = [
    { dev: 1, cmdFlags: 0, slots: [...slots], totalNs: 1000, count: 7 },
    { dev: 1, cmdFlags: 0x800, slots: [...slots], totalNs: 500, count: 7 },
    { dev: 2, cmdFlags: 1, slots: [...slots], totalNs: 9, count: 7 },
  ];
  const family = (): Family => bioLatencyFamily(histograms, (d) => `vd${'xab'[d]}`, (f) => (f & 1 ? 'write' : 'read'), false);
  const families: Family[] = [
    { name: 'ebpf_tools_build_info', help: 'b', type: 'gauge', samples: [{ labels: { tool: 't', version: '1', attach_plan: 'x, y' }, value: 1 }] },
    { name: 'ebpf_tools_lost_events_total', help: 'l', type: 'counter', samples: [{ labels: {}, value: 0 }] },
    family(),
    { name: 'ebpf_tools_ext4_operation_latency_seconds', help: 'e', type: 'histogram', series: [microsecondHistogram({ op: 'read' }, slots, 12345)] },
  ];
  const text = exposition(families);
  const check = promtool(text);
  t.equal(check.status, 0, `promtool accepts it: ${check.output}`);
  checkHistograms(t, text);
  const merged = parseExposition(text).find((s) => s.name === 'ebpf_tools_bio_latency_seconds_count' && s.labels.disk === 'vda');
  t.equal(merged?.value, 14, 'the flag sets of one operation on one disk are summed');
  t.match(text, /ebpf_tools_bio_latency_seconds_bucket\{disk="vda",op="read",le="0.000016"\} 10\n/, 'slot 3 is le 16 us');
  t.match(text, /ebpf_tools_bio_latency_seconds_bucket\{disk="vda",op="read",le="67.108864"\} 10\n/, 'the clamped slot is in no bounded bucket');
  t.match(text, /ebpf_tools_bio_latency_seconds_bucket\{disk="vda",op="read",le="\+Inf"\} 14\n/);
  const before = parseExposition(exposition([family()]));
  histograms[0].slots[0] += 3;
  histograms[0].totalNs += 10;
  const after = parseExposition(exposition([family()]));
  before.forEach((s, i) => t.ok(after[i].value >= s.value, `${s.name} ${JSON.stringify(s.labels)} never decreases`));
});

t.test('--prometheus [ADDR:]PORT and its usage errors', async (t) => {
  t.same(parseListenAddress('9560'), { host: undefined, port: 9560 }, 'PORT alone: every interface');
  t.same(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  t.same(parseListenAddress('[::1]:9560'), { host: '::1', port: 9560 });
  t.same(parseListenAddress('localhost:80'), { host: 'localhost', port: 80 });
  for (const bad of ['', 'abc', '65536', '::1:80', '[::1]', '[1.2.3.4]:5', 'a b:1', ':80', '1.2.3.4:']) {
    t.match(usageError(() => parseListenAddress(bad)), /^invalid --prometheus/, `${JSON.stringify(bad)} refused`);
  }
  t.match(usageError(() => prometheusFromArgs({ prometheus: '1' }, { '-T': true, '--json': false, interval: '1' })),
    /^-T, interval only shape printed output: not with --prometheus$/, 'terminal-only options named');
  t.match(usageError(() => prometheusFromArgs({ prometheusComms: '5' }, {})), /needs --prometheus/);
  t.same(prometheusFromArgs({ prometheus: '1' }, { '-T': false }), { listen: { host: undefined, port: 1 }, comms: 200, cgroups: 0 },
    'default comm limit 200, no cgroup label');
  t.equal(prometheusFromArgs({ prometheus: '1', prometheusCgroups: '7' }, {})?.cgroups, 7);
  t.match(usageError(() => prometheusFromArgs({ prometheusCgroups: '5' }, {})), /^option --prometheus-cgroups needs --prometheus$/);
  t.match(usageError(() => prometheusFromArgs({ prometheus: '1', prometheusCgroups: '-1' }, {})), /--prometheus-cgroups/);
  t.match(usageError(() => prometheusFromArgs({ prometheus: '1', printCgroup: '' }, {})),
    /^--print-cgroup only shapes printed output: not with --prometheus \(--prometheus-cgroups N labels the counters by cgroup\)$/,
    '--print-cgroup is a column: a usage error, pointing at the label');
  t.equal(prometheusFromArgs({ prometheus: '1', prometheusComms: '0' }, {})?.comms, 0);
});

t.test('the cgroup label: paths as the kernel named them, bounded as comm, unnamed ones apart; 0 drops it', async (t) => {
  const paths = new Map<number, Uint8Array>([
    [1, Buffer.from('/system.slice/a.service')], [2, Buffer.from('/b')], [3, Buffer.from('/c')],
    [4, Buffer.concat([Buffer.from('/ev\x1b[31mil'), Buffer.from([0xff])])], [5, Buffer.from('/b')],
  ]);
  const lookups: number[] = [];
  const cgroups = new CgroupLabels(2, (id) => {
    lookups.push(id);
    return paths.get(id);
  });
  t.same(cgroups.of(1), { cgroup: '/system.slice/a.service' });
  t.same(cgroups.of(2), { cgroup: '/b' });
  t.same(cgroups.of(5), { cgroup: '/b' }, 'another id of the same path (a cgroup made again): the same value, not a new one');
  t.same(cgroups.of(3), { cgroup: OTHER_CGROUPS }, 'beyond the limit');
  t.same(cgroups.of(9), { cgroup: UNNAMED_CGROUP }, 'not named by the kernel');
  t.same(cgroups.of(9), { cgroup: UNNAMED_CGROUP });
  t.same(cgroups.of(1), { cgroup: '/system.slice/a.service' });
  t.same(lookups, [1, 2, 5, 3, 9, 9], 'each id named once, an unnamed one asked again');
  const hostile = new CgroupLabels(10, (id) => paths.get(id)).of(4).cgroup;
  t.equal(hostile, '/ev\\x1b[31mil\\xff', 'escaped as comm: valid UTF-8');
  t.ok(!OTHER_CGROUPS.startsWith('/') && !UNNAMED_CGROUP.startsWith('/') && !OTHER_CGROUPS.startsWith('...'), 'no path is either value');
  t.same(new CgroupLabels(0, () => Buffer.from('/x')).of(1), {}, 'limit 0: no cgroup label');
  const counters = new Counters();
  counters.add({ comm: 'a', cgroup: hostile });
  const check = promtool(exposition([{ name: 'ebpf_tools_execs_total', help: 'h', type: 'counter', samples: counters.samples() }]));
  t.equal(check.status, 0, `promtool accepts it: ${check.output}`);
});
