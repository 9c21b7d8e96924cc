import t from 'tap';
import { usageError } from './helpers.js';
import {
  argsText, header, kernelConfig, parseOptions, renderJson, renderLine, selected, splitArgs, type ExecEvent,
} from '../tools/execsnoop.js';
import { START_NS } from '../common/clock.js';

const b = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s));

function event(overrides: Partial<ExecEvent> = {}): ExecEvent {
  return {
    tsNs: START_NS + 1_500_000_000, cgroupId: 77,
    pid: 4242, ppid: 1, uid: 1000, cpu: 1, retval: 0,
    comm: b('ls'), pcomm: b('bash'), args: [b('/usr/bin/ls'), b('-la')], truncated: false,
    ...overrides,
  };
}

t.test('options: defaults, flags and kernel config', async (t) => {
  const o = parseOptions([]);
  t.same([o.time, o.timestamp, o.fails, o.quote, o.printUid, o.json, o.maxArgs], [false, false, false, false, false, false, 20]);
  t.same(kernelConfig(o), { targ_uid: 0xffffffff, targ_ppid: 0 });
  const all = parseOptions(['-T', '-t', '-x', '-q', '-U', '-C', '-M', '-u', '0', '-P', '7', '--max-args', '3', '--json']);
  t.same(kernelConfig(all), { targ_uid: 0, targ_ppid: 7 });
  t.equal(all.maxArgs, 3);
  t.ok(all.time && all.timestamp && all.fails && all.quote && all.printUid && all.printCpu && all.printPcomm && all.json);
  t.equal(parseOptions(['-u', 'root']).uid, 0, 'user names are looked up');
  t.equal(parseOptions(['--time']).time, true, 'long names work');
});

t.test('options: every mistake is a UsageError naming the option', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--max-args', '0'], /--max-args '0'/],
    [['--max-args', '99999'], /--max-args/],
    [['--max-args', 'x'], /--max-args 'x'/],
    [['-u', 'no-such-user-here'], /--uid 'no-such-user-here'/],
    [['-u', '-5'], /--uid/],
    [['-P', '0'], /--ppid '0'/],
    [['-P', 'abc'], /--ppid 'abc'/],
    [['-n', '(['], /--name/],
    [['-l', '*'], /--line/],
    [['--bogus'], /unknown option --bogus/],
    [['stray'], /unknown argument 'stray'/],
    [['-u'], /-u|uid/],
  ];
  for (const [argv, message] of cases) t.match(usageError(() => parseOptions(argv)), message, argv.join(' '));
});

t.test('splitArgs puts the file name first and marks what was left out', async (t) => {
  const text = (list: Uint8Array[] | undefined) => list?.map((a) => Buffer.from(a).toString());
  const binary = (area: Uint8Array, areaCut = false) => ({ area, areaCut, interpreted: false, argc: 0 });
  const area = b('ls\0-la\0/tmp\0');
  let r = splitArgs(b('/usr/bin/ls'), binary(area), 20);
  t.same(text(r.args), ['/usr/bin/ls', '-la', '/tmp']);
  t.equal(r.truncated, false);
  t.equal(r.interpreter, undefined, 'a binary has no interpreter');
  r = splitArgs(b('/usr/bin/ls'), binary(area), 2);
  t.same(text(r.args), ['/usr/bin/ls', '-la']);
  t.equal(r.truncated, true, 'more arguments than --max-args');
  r = splitArgs(b('/bin/x'), binary(b('x\0abc\0de'), true), 20);
  t.same(text(r.args), ['/bin/x', 'abc', 'de']);
  t.equal(r.truncated, true, 'argument area cut in the middle of an argument');
  r = splitArgs(b('/bin/x'), binary(b('')), 20);
  t.same(text(r.args), ['/bin/x'], 'no argv at all');
});

t.test('splitArgs shows a script as typed: the kernel\'s leading interpreter strings go to interpreter', async (t) => {
  const text = (list: Uint8Array[] | undefined) => list?.map((a) => Buffer.from(a).toString());
  const script = (strings: string[], callerArgc?: number) => ({
    area: b(strings.map((s) => `${s}\0`).join('')), areaCut: false, interpreted: true, argc: strings.length, callerArgc,
  });
  // ./s.sh A B with #!/bin/sh -e: the kernel runs /bin/sh -e ./s.sh A B
  let r = splitArgs(b('./s.sh'), script(['/bin/sh', '-e', './s.sh', 'A', 'B'], 3), 20);
  t.same(text(r.args), ['./s.sh', 'A', 'B']);
  t.same(text(r.interpreter), ['/bin/sh', '-e']);
  // nested: ./outer X, whose interpreter /t/inner is a #!/bin/sh script
  r = splitArgs(b('./outer'), script(['/bin/sh', '/t/inner', './outer', 'X'], 2), 20);
  t.same(text(r.args), ['./outer', 'X']);
  t.same(text(r.interpreter), ['/bin/sh', '/t/inner']);
  // an argument that is the script's own name stays an argument
  r = splitArgs(b('./s.sh'), script(['/bin/sh', './s.sh', './s.sh'], 2), 20);
  t.same(text(r.args), ['./s.sh', './s.sh']);
  // --max-args counts what is shown
  r = splitArgs(b('./s.sh'), script(['/bin/sh', './s.sh', 'A', 'B'], 3), 2);
  t.same(text(r.args), ['./s.sh', 'A']);
  t.equal(r.truncated, true);
  // an empty caller argv: the kernel gave it an argv[0] of its own
  r = splitArgs(b('/t/s.sh'), script(['/bin/sh', '/t/s.sh'], 0), 20);
  t.same(text(r.args), ['/t/s.sh']);
  t.same(text(r.interpreter), ['/bin/sh']);
  // not counted (an exec from the kernel): the first string after argv[0] that is the file name
  r = splitArgs(b('./s.sh'), script(['/bin/sh', '-e', './s.sh', 'A'], undefined), 20);
  t.same(text(r.args), ['./s.sh', 'A']);
  t.same(text(r.interpreter), ['/bin/sh', '-e']);
});

t.test('columns as libbpf-tools execsnoop', async (t) => {
  const o = parseOptions([]);
  t.equal(header(o), 'PCOMM            PID    PPID   RET ARGS');
  t.equal(renderLine(event(), o), 'ls               4242   1        0 /usr/bin/ls -la');
  t.equal(renderLine(event({ retval: -2 }), o), 'ls               4242   1       -2 /usr/bin/ls -la');
  const wide = parseOptions(['-T', '-t', '-U', '-M', '-C']);
  t.equal(header(wide), 'TIME     TIME(s)  UID    PCOMM            PID    PPCOMM           PPID   CPU  RET ARGS');
  t.match(renderLine(event(), wide), /^\d\d:\d\d:\d\d 1\.500    1000   ls               4242   bash             1      1      0 \/usr\/bin\/ls -la$/);
});

t.test('ARGS: quoting, escaping, truncation mark', async (t) => {
  t.equal(argsText(event({ args: [b('/bin/echo'), b('a b'), b('say "hi"')] }), true), '"/bin/echo" "a b" "say \\"hi\\""');
  t.equal(argsText(event({ args: [b('/bin/echo'), b('\x1b[2Jboom\nnext')] }), false), '/bin/echo \\x1b[2Jboom\\nnext');
  t.equal(argsText(event({ truncated: true }), false), '/usr/bin/ls -la ...');
  t.equal(renderLine(event({ comm: b('evil\x1b]0;x\x07') }), parseOptions([])).split('\n').length, 1);
});

t.test('JSON: every field, exact bytes', async (t) => {
  const line = renderJson(event({ args: [b('/bin/echo'), Uint8Array.from([0x61, 0xff])], truncated: true }));
  const parsed = JSON.parse(line);
  t.same(Object.keys(parsed), ['time', 'ts', 'pid', 'ppid', 'uid', 'cpu', 'comm', 'pcomm', 'retval', 'args', 'args_truncated', 'interpreter', 'cgroup_id']);
  t.equal(parsed.interpreter, null, 'a binary has no interpreter');
  t.equal(parsed.cgroup_id, 77, 'the cgroup id is always there');
  t.equal(parsed.ts, 1.5);
  t.equal(parsed.pid, 4242);
  t.same(parsed.args, ['/bin/echo', 'a\udcff']);
  t.equal(parsed.args_truncated, true);
  t.match(parsed.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const script = JSON.parse(renderJson(event({ args: [b('./s.sh'), b('A')], interpreter: [b('/bin/sh'), b('-e')] })));
  t.same(script.args, ['./s.sh', 'A']);
  t.same(script.interpreter, ['/bin/sh', '-e']);
});

t.test('-n matches the command name, -l the arguments', async (t) => {
  t.equal(selected(event(), parseOptions(['-n', '^l'])), true);
  t.equal(selected(event(), parseOptions(['-n', 'bash'])), false);
  t.equal(selected(event(), parseOptions(['-l', 'ls -la$'])), true);
  t.equal(selected(event(), parseOptions(['-l', 'tpkg'])), false);
});

t.test('colour: a failed exec\'s RET in red when painted, plain otherwise', async (t) => {
  const { Chalk } = await import('chalk');
  const red = new Chalk({ level: 1 });
  const paint = { error: (s: string) => red.red(s), bar: (s: string) => s, header: (s: string) => s };
  const o = parseOptions([]);
  t.equal(renderLine(event({ retval: -2 }), o, paint), `ls               4242   1      ${red.red(' -2')} /usr/bin/ls -la`);
  t.equal(renderLine(event(), o, paint), renderLine(event(), o), 'successful exec unpainted');
});
