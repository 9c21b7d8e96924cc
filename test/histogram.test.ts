// The log2 histogram, byte for byte against what upstream prints: lines
// captured from Debian's libbpf-tools biolatency, and lines produced by
// libbpf-tools' print_log2_hist (trace_helpers.c) and bcc's table.py
// (_print_log2_hist, _get_json_hist) run on the same counts.
import t from 'tap';
import {
  jsonBuckets, log2HistogramLines, log2Percentile, slotRange, summarize, summaryLine,
} from '../common/histogram.js';

// /usr/sbin/biolatency -D 1 2 on this VM, 50 O_DIRECT 64 KiB writes (after "disk = vda\t")
const CAPTURED_DISK = [
  '     usecs               : count    distribution',
  '         0 -> 1          : 0        |                                        |',
  '         2 -> 3          : 0        |                                        |',
  '         4 -> 7          : 0        |                                        |',
  '         8 -> 15         : 0        |                                        |',
  '        16 -> 31         : 0        |                                        |',
  '        32 -> 63         : 0        |                                        |',
  '        64 -> 127        : 49       |****************************************|',
  '       128 -> 255        : 4        |***                                     |',
];

// /usr/sbin/biolatency -T 1 1: a bar one star short of the largest, and single stars
const CAPTURED_ROUNDING = [
  '     usecs               : count    distribution',
  '         0 -> 1          : 0        |                                        |',
  '         2 -> 3          : 0        |                                        |',
  '         4 -> 7          : 0        |                                        |',
  '         8 -> 15         : 0        |                                        |',
  '        16 -> 31         : 0        |                                        |',
  '        32 -> 63         : 50       |**************************************  |',
  '        64 -> 127        : 52       |****************************************|',
  '       128 -> 255        : 0        |                                        |',
  '       256 -> 511        : 2        |*                                       |',
  '       512 -> 1023       : 2        |*                                       |',
];

// print_log2_hist(vals, 27, "msecs") with counts in slots 0, 1, 3 and the last, 26
const C_MSECS_LAST_SLOT = [
  '     msecs               : count    distribution',
  '         0 -> 1          : 3        |*****************                       |',
  '         2 -> 3          : 1        |*****                                   |',
  '         4 -> 7          : 0        |                                        |',
  '         8 -> 15         : 7        |****************************************|',
  '        16 -> 31         : 0        |                                        |',
  '        32 -> 63         : 0        |                                        |',
  '        64 -> 127        : 0        |                                        |',
  '       128 -> 255        : 0        |                                        |',
  '       256 -> 511        : 0        |                                        |',
  '       512 -> 1023       : 0        |                                        |',
  '      1024 -> 2047       : 0        |                                        |',
  '      2048 -> 4095       : 0        |                                        |',
  '      4096 -> 8191       : 0        |                                        |',
  '      8192 -> 16383      : 0        |                                        |',
  '     16384 -> 32767      : 0        |                                        |',
  '     32768 -> 65535      : 0        |                                        |',
  '     65536 -> 131071     : 0        |                                        |',
  '    131072 -> 262143     : 0        |                                        |',
  '    262144 -> 524287     : 0        |                                        |',
  '    524288 -> 1048575    : 0        |                                        |',
  '   1048576 -> 2097151    : 0        |                                        |',
  '   2097152 -> 4194303    : 0        |                                        |',
  '   4194304 -> 8388607    : 0        |                                        |',
  '   8388608 -> 16777215   : 0        |                                        |',
  '  16777216 -> 33554431   : 0        |                                        |',
  '  33554432 -> 67108863   : 0        |                                        |',
  '  67108864 -> 134217727  : 1        |*****                                   |',
];

// print_log2_hist(vals, 64, "usecs") with counts in slots 0 and 33: past slot 32 the
// labels widen to 20 columns and the bar halves to 20 stars
const C_WIDE = [
  '               usecs                         : count    distribution',
  '                   0 -> 1                    : 5        |********************|',
  '                   2 -> 3                    : 0        |                    |',
  '                   4 -> 7                    : 0        |                    |',
  '                   8 -> 15                   : 0        |                    |',
  '                  16 -> 31                   : 0        |                    |',
  '                  32 -> 63                   : 0        |                    |',
  '                  64 -> 127                  : 0        |                    |',
  '                 128 -> 255                  : 0        |                    |',
  '                 256 -> 511                  : 0        |                    |',
  '                 512 -> 1023                 : 0        |                    |',
  '                1024 -> 2047                 : 0        |                    |',
  '                2048 -> 4095                 : 0        |                    |',
  '                4096 -> 8191                 : 0        |                    |',
  '                8192 -> 16383                : 0        |                    |',
  '               16384 -> 32767                : 0        |                    |',
  '               32768 -> 65535                : 0        |                    |',
  '               65536 -> 131071               : 0        |                    |',
  '              131072 -> 262143               : 0        |                    |',
  '              262144 -> 524287               : 0        |                    |',
  '              524288 -> 1048575              : 0        |                    |',
  '             1048576 -> 2097151              : 0        |                    |',
  '             2097152 -> 4194303              : 0        |                    |',
  '             4194304 -> 8388607              : 0        |                    |',
  '             8388608 -> 16777215             : 0        |                    |',
  '            16777216 -> 33554431             : 0        |                    |',
  '            33554432 -> 67108863             : 0        |                    |',
  '            67108864 -> 134217727            : 0        |                    |',
  '           134217728 -> 268435455            : 0        |                    |',
  '           268435456 -> 536870911            : 0        |                    |',
  '           536870912 -> 1073741823           : 0        |                    |',
  '          1073741824 -> 2147483647           : 0        |                    |',
  '          2147483648 -> 4294967295           : 0        |                    |',
  '          4294967296 -> 8589934591           : 0        |                    |',
  '          8589934592 -> 17179869183          : 2        |********            |',
];

function slots(counts: Record<number, number>, length = 27): number[] {
  return Array.from({ length }, (_, slot) => counts[slot] ?? 0);
}

t.test('rows and header as libbpf-tools prints them', async (t) => {
  t.same(log2HistogramLines(slots({ 6: 49, 7: 4 }), 'usecs'), CAPTURED_DISK);
  t.same(log2HistogramLines(slots({ 5: 50, 6: 52, 8: 2, 9: 2 }), 'usecs'), CAPTURED_ROUNDING);
  t.same(log2HistogramLines(slots({ 0: 3, 1: 1, 3: 7, 26: 1 }), 'msecs'), C_MSECS_LAST_SLOT);
  t.same(log2HistogramLines(slots({ 0: 5, 33: 2 }, 64), 'usecs'), C_WIDE);
});

t.test('empty slots: trailing ones cut, leading ones kept, nothing when all are empty', async (t) => {
  t.same(log2HistogramLines(slots({ 0: 1 }), 'usecs'), [
    '     usecs               : count    distribution',
    '         0 -> 1          : 1        |****************************************|',
  ]);
  t.same(log2HistogramLines(slots({}), 'usecs'), []);
  t.same(log2HistogramLines([], 'usecs'), []);
  t.equal(log2HistogramLines(slots({ 3: 1 }), 'usecs').length, 5, 'slots 0 to 3 after the header');
});

t.test('bcc draws the same rows; its header has one more space before "distribution"', async (t) => {
  // bcc's _print_log2_hist on vals [0, 0, 0, 0, 0, 0, 50, 52, 0, 2, 2] (its slot i is our i - 1)
  const bcc = ['     usecs               : count     distribution', ...CAPTURED_ROUNDING.slice(1)];
  const ours = log2HistogramLines(slots({ 5: 50, 6: 52, 8: 2, 9: 2 }), 'usecs');
  t.same(ours.slice(1), bcc.slice(1));
  t.equal(ours[0].replace('count    ', 'count     '), bcc[0]);
});

t.test('bars use exact arithmetic where C overflows 32 bits', async (t) => {
  const lines = log2HistogramLines(slots({ 0: 300_000_000, 1: 150_000_000 }), 'usecs');
  t.match(lines[2], /\|\*{20} {20}\|$/);
});

t.test('slot labels', async (t) => {
  t.same(slotRange(0), [0n, 1n]);
  t.same(slotRange(1), [2n, 3n]);
  t.same(slotRange(10), [1024n, 2047n]);
  t.same(slotRange(63), [9223372036854775808n, 18446744073709551615n]);
});

t.test('JSON buckets as bcc\'s _get_json_hist', async (t) => {
  // _get_json_hist([0, 3, 1, 0, 7, 0, ...], 'msecs', ('disk', 'vda'))['data']
  t.same(jsonBuckets(slots({ 0: 3, 1: 1, 3: 7 })), [
    { 'interval-start': 0, 'interval-end': 1, count: 3 },
    { 'interval-start': 2, 'interval-end': 3, count: 1 },
    { 'interval-start': 4, 'interval-end': 7, count: 0 },
    { 'interval-start': 8, 'interval-end': 15, count: 7 },
  ]);
  t.same(jsonBuckets(slots({})), []);
});

t.test('percentiles interpolate inside the slot where the rank falls', async (t) => {
  const h = slots({ 5: 12, 6: 37, 11: 1 });
  t.equal(log2Percentile(h, 0.5), 64 + (64 * (25 - 12)) / 37);
  t.equal(log2Percentile(h, 0.2), 32 + (32 * 10) / 12);
  t.equal(log2Percentile(h, 0.99), 2048 + 2048 * ((49.5 - 49) / 1));
  t.equal(log2Percentile(slots({ 0: 4 }), 0.5), 1, 'slot 0 spans 0 to 2');
  t.equal(log2Percentile(slots({}), 0.5), 0);
});

t.test('summary: exact average when the total is known, estimated from midpoints otherwise', async (t) => {
  const h = slots({ 5: 12, 6: 37, 11: 1 });
  const exact = summarize(h, 6394);
  t.equal(exact.count, 50);
  t.equal(exact.average, 6394 / 50);
  t.equal(exact.p50, log2Percentile(h, 0.5));
  t.equal(exact.p90, log2Percentile(h, 0.9));
  t.equal(exact.p99, log2Percentile(h, 0.99));
  t.equal(summarize(slots({ 0: 1, 2: 1 })).average, (1 + 6) / 2);
  t.equal(summarize(slots({})).average, 0);
  t.equal(
    summaryLine(exact, 'usecs'),
    'count 50, avg 127.9 usecs, p50 ~86.5, p90 ~121.1, p99 ~3072.0 usecs',
  );
});
