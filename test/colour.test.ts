import t from 'tap';
import { spawnSync } from 'node:child_process';
import { colourLevel } from '../common/colour.js';

t.test('colour only on a terminal, NO_COLOR turns it off, FORCE_COLOR wins', async (t) => {
  t.equal(colourLevel({}, true), 1);
  t.equal(colourLevel({}, false), 0, 'pipe or file: plain');
  t.equal(colourLevel({ TERM: 'dumb' }, true), 0);
  t.equal(colourLevel({ NO_COLOR: '1' }, true), 0);
  t.equal(colourLevel({ NO_COLOR: '' }, true), 1, 'empty NO_COLOR is ignored');
  t.equal(colourLevel({ FORCE_COLOR: '1' }, false), 1);
  t.equal(colourLevel({ FORCE_COLOR: '3', NO_COLOR: '1' }, false), 3);
  t.equal(colourLevel({ FORCE_COLOR: '0' }, true), 0);
  t.equal(colourLevel({ FORCE_COLOR: '' }, false), 1);
});

t.test('stdoutPaint: coloured on a terminal (script(1) gives the child one), plain in a pipe', async (t) => {
  const module = new URL('../common/colour.js', import.meta.url).href;
  const code = `const { stdoutPaint, plain } = await import(${JSON.stringify(module)}); const paint = await stdoutPaint(true); console.log(paint === plain ? 'plain' : paint.header('h'))`;
  const env = { ...process.env, NO_COLOR: '', FORCE_COLOR: undefined, TERM: 'xterm' };
  const piped = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env });
  t.equal(piped.stdout, 'plain\n', 'stdout a pipe');
  const command = [process.execPath, '--input-type=module', '-e', code].map((w) => `'${w.replace(/'/g, "'\\''")}'`).join(' ');
  const terminal = spawnSync('script', ['-qec', command, '/dev/null'], { encoding: 'utf8', env });
  t.equal(terminal.status, 0, terminal.stderr);
  t.equal(terminal.stdout.replace(/\r/g, ''), '\u001b[1mh\u001b[22m\n', 'stdout a terminal: bold header');
});
