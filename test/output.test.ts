import t from 'tap';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Output } from '../common/output.js';

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
