import t from 'tap';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineText, Output, type LineSink } from '../common/output.js';

const dir = mkdtempSync(join(tmpdir(), 'ebpf-tools-output-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** What an Output writing `batches` (each flushed) leaves in a file. */
function written(batches: string[][]): string {
  const file = join(dir, `out-${Math.random()}`);
  const fd = openSync(file, 'w');
  const out = new Output(fd);
  for (const batch of batches) {
    for (const line of batch) out.line(line);
    out.flush();
  }
  closeSync(fd);
  return readFileSync(file, 'utf8');
}

t.test('every byte of every batch, whatever its size and wherever a multibyte character falls', async (t) => {
  const small = ['PID COMM', '1 é'];
  t.equal(written([small]), 'PID COMM\n1 é\n');
  // a batch past the kept buffer (128 KiB), then small ones again in the grown buffer
  const big = Array.from({ length: 3000 }, (_, i) => `${i} ${'x'.repeat(40)} 日本 é`);
  t.equal(written([small, big, small]), [...small, ...big, ...small].map((l) => `${l}\n`).join(''));
  // a 3-byte character across the kept buffer's end: 131071 bytes of ASCII and the newline before it
  for (const pad of [131069, 131070, 131071, 131072]) {
    const line = `${'a'.repeat(pad)}日`;
    t.equal(written([[line], ['z']]), `${line}\nz\n`, `${pad} bytes before the character`);
  }
});

t.test('a line made part by part: text as it is, spans from the kernel as terminal text, as LineText makes it', async (t) => {
  const file = join(dir, 'parts');
  const fd = openSync(file, 'w');
  const out = new Output(fd);
  const record = Buffer.from('xx/etc/passwd\0yy/tmp/a\x1b[31m\xffb\0', 'latin1');
  const lines: string[] = [];
  const render = (sink: LineSink, start: number, end: number) => {
    sink.text('1234   cat              3   0 ');
    sink.span(record, start, end);
  };
  for (const [start, end] of [[2, 13], [16, 29], [2, 2]]) {
    render(out, start, end);
    out.end();
    const text = new LineText();
    render(text, start, end);
    lines.push(text.value);
  }
  // a line longer than the kept buffer, in parts: the buffer grows with the part begun in it
  const long = 'é'.repeat(100000);
  out.text('> ');
  out.text(long);
  out.end();
  out.flush();
  closeSync(fd);
  t.same(lines, ['1234   cat              3   0 /etc/passwd', '1234   cat              3   0 /tmp/a\\x1b[31m\\xffb', '1234   cat              3   0 ']);
  t.equal(readFileSync(file, 'utf8'), `${lines.join('\n')}\n> ${long}\n`);
});
