import t from 'tap';
import { bytesOfLosslessString, escapeText, jsonText, losslessString, losslessText, stringEnd, terminalSafeJson, terminalText } from '../common/escape.js';

const bytes = (...parts: (string | number[])[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p)] : p)));

t.test('escapeText keeps printable text as it is', async (t) => {
  t.equal(escapeText(bytes('/usr/bin/ls -la')), '/usr/bin/ls -la');
  t.equal(escapeText(bytes('café ünïcödé 日本')), 'café ünïcödé 日本');
});

t.test('escapeText makes control characters and escapes visible', async (t) => {
  t.equal(escapeText(bytes('a\x1b[31mred\x07')), 'a\\x1b[31mred\\x07');
  t.equal(escapeText(bytes('line1\nline2\tx\r')), 'line1\\nline2\\tx\\r');
  t.equal(escapeText(bytes('back\\slash')), 'back\\\\slash');
  t.equal(escapeText(bytes('del\x7f')), 'del\\x7f');
});

t.test('escapeText shows invalid UTF-8 bytes and hidden code points as escapes', async (t) => {
  t.equal(escapeText(bytes('a', [0xff, 0xc3], 'b')), 'a\\xff\\xc3b');
  t.equal(escapeText(bytes([0xc0, 0x80])), '\\xc0\\x80', 'overlong NUL');
  t.equal(escapeText(bytes([0xed, 0xa0, 0x80])), '\\xed\\xa0\\x80', 'encoded surrogate');
  t.equal(escapeText(bytes('x\u202ey')), 'x\\u{202e}y', 'bidi override');
  t.equal(escapeText(bytes('\u009b31m')), '\\u{009b}31m', 'C1 CSI');
});

t.test('escapeText output never holds a control character', async (t) => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  // eslint-disable-next-line no-control-regex
  t.notMatch(escapeText(all), /[\x00-\x1f\x7f\u0080-\u009f]/);
});

t.test('losslessString round-trips any bytes through JSON', async (t) => {
  const samples = [
    bytes('plain'),
    bytes('café\n\x1b[0m'),
    bytes('bad', [0xff, 0xfe, 0x80], 'utf8 ✓'),
    Uint8Array.from({ length: 256 }, (_, i) => i),
  ];
  for (const sample of samples) {
    const json = JSON.stringify({ s: losslessString(sample) });
    t.same(bytesOfLosslessString(JSON.parse(json).s), sample);
  }
  t.equal(JSON.stringify(losslessString(bytes([0xff]))), '"\\udcff"', 'invalid byte as a lone surrogate escape');
});

t.test('terminalSafeJson: nothing invisible reaches a terminal, and the value parses back the same', async (t) => {
  const hostile = losslessString(bytes('csi', [0xc2, 0x9b], '31m rlo', [0xe2, 0x80, 0xae], 'x', [0xff], 'ls', [0xe2, 0x80, 0xa8], 'bom', [0xef, 0xbb, 0xbf], 'esc\x1b'));
  const json = terminalSafeJson({ path: hostile });
  t.equal(json, '{"path":"csi\\u009b31m rlo\\u202ex\\udcffls\\u2028bom\\ufeffesc\\u001b"}');
  t.notMatch(json, /[^\x20-\x7e]/, 'printable ASCII only');
  t.equal(JSON.parse(json).path, hostile);
  t.equal(terminalSafeJson({ name: 'café 日本' }), '{"name":"café 日本"}', 'visible text stays as it is');
});

t.test('text of a span: plain ASCII as is, anything else escaped (terminal) or exact (JSON)', async (t) => {
  const bytes = Buffer.from([0x61, 0x22, 0x5c, 0x7f, 0xc3, 0xa9, 0xff]); // a " \ DEL é, and a byte that is not UTF-8
  t.equal(terminalText(bytes, 0, 2), 'a"');
  t.equal(terminalText(bytes, 0, 7), 'a"\\\\\\x7fé\\xff');
  t.equal(jsonText(bytes, 0, 1), '"a"');
  t.equal(JSON.parse(jsonText(bytes, 0, 7)), 'a"\\\x7fé\udcff');
  t.equal(jsonText(bytes, 0, 3), JSON.stringify('a"\\'));
  t.equal(losslessText(bytes, 0, 4), 'a"\\\x7f', 'ASCII as is');
  t.equal(losslessText(bytes, 4, 7), 'é\udcff', 'UTF-8 decoded, a byte that is not as its surrogate');
});

t.test('stringEnd: at the NUL, or at the limit without one', async (t) => {
  const bytes = Buffer.from('ab\0cd');
  t.equal(stringEnd(bytes, 0, 5), 2);
  t.equal(stringEnd(bytes, 3, 5), 5);
  t.equal(stringEnd(bytes, 0, 1), 1, 'never past the limit');
});
