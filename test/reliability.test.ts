// What makes a root tool trustworthy on a production box: clear failures
// when the environment is wrong, hostile strings kept harmless, signals and
// kill -9 leaving nothing behind, two instances side by side.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesOfLosslessString } from '../common/escape.js';
import { left, right } from '../common/format.js';
import { removeDir, rootDisk } from './bio-helpers.js';
import {
  kernelSnapshot, leftovers, runTool, sleep, startAttached, startTool, toolArgv, TOOLS, withoutTapHooks, baseArgs, type RunningTool,
} from './helpers.js';

const tools = TOOLS;
const oneLine = (text: string): boolean => text.endsWith('\n') && text.indexOf('\n') === text.length - 1;

t.test('environment faults: one line that says what to do, exit 1, nothing loaded', async (t) => {
  const before = kernelSnapshot();
  for (const tool of tools) {
    const noLibbpf = runTool(tool, baseArgs(tool), { EBPF_TOOLS_LIBBPF: '/nonexistent/libbpf.so.1' });
    t.equal(noLibbpf.code, 1, `${tool}: libbpf missing exits 1`);
    t.match(noLibbpf.stderr, /^\S+: cannot load \/nonexistent\/libbpf.so.1: install libbpf 1.0 or later \(Debian\/Ubuntu: apt install libbpf1/);
    t.ok(oneLine(noLibbpf.stderr), `${tool}: one line (${noLibbpf.stderr})`);

    const noBtf = runTool(tool, baseArgs(tool), { EBPF_TOOLS_VMLINUX_BTF: '/nonexistent/vmlinux' });
    t.equal(noBtf.code, 1, `${tool}: no BTF exits 1`);
    t.match(noBtf.stderr, /kernel BTF not found at \/nonexistent\/vmlinux: needs a kernel built with CONFIG_DEBUG_INFO_BTF=y/);
    t.ok(oneLine(noBtf.stderr));

    const r = spawnSync(...withoutTapHooks('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, ...toolArgv(tool, baseArgs(tool))]), { encoding: 'utf8' });
    t.equal(r.status, 1, `${tool}: not root exits 1`);
    t.match(r.stderr, /must be run as root \(needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN\)/);
    t.ok(oneLine(r.stderr), `one line: ${JSON.stringify(r.stderr)}`);

    const usage = runTool(tool, ['--definitely-not-an-option']);
    t.equal(usage.code, 2, `${tool}: usage error exits 2`);
    t.ok(oneLine(usage.stderr), 'usage error is one line');
    t.notMatch(usage.stderr, /\n\s+at /, 'no stack trace');
  }
  for (const tool of tools) t.same(await leftovers(before, tool), [], `${tool}: nothing loaded`);
});

t.test('execsnoop works with tracefs unmounted (it mounts it)', async (t) => {
  spawnSync('umount', ['/sys/kernel/tracing']);
  const tool = await startAttached('execsnoop', ['-x'], /^PCOMM/);
  const m = `/nonexistent-tracefs-${process.pid}`;
  spawnSync('/bin/sh', ['-c', m], { stdio: 'ignore' });
  await tool.waitForLine((l) => l.endsWith(` -2 ${m}`));
  t.equal((await tool.stop()).code, 0);
});

t.test('hostile names and arguments: escaped on one line, exact bytes in JSON', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ebpf-tools-hostile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const name = 'ev\x1b[31m\nil';
  const program = join(dir, name);
  symlinkSync('/bin/echo', program);
  chmodSync(dir, 0o755);
  const human = await startAttached('execsnoop', [], /^PCOMM/);
  const json = startTool('execsnoop', ['--json']);
  await sleep(1500);
  const long = 'L'.repeat(4096);
  // argv as raw bytes: an escape sequence, a newline, invalid UTF-8, a C1 CSI and a bidi override (valid UTF-8), a 4 KiB string
  const script = `import os,sys; os.execv(sys.argv[1].encode(), [b'x', b'\\x1b]0;pwned\\x07', b'a\\nb', b'\\xff\\xfe\\xc3', b'\\xc2\\x9b31m\\xe2\\x80\\xae', b'${long}'])`;
  const r = spawnSync('python3', ['-c', script, program], { stdio: 'ignore' });
  t.equal(r.status, 0);
  const line = await human.waitForLine((l) => l.startsWith('ev\\x1b'));
  t.equal(line.split('\n').length, 1);
  t.notMatch(line, /[\x00-\x1f\x7f-\x9f\u202e]/, 'no control or invisible character reaches the terminal');
  t.ok(line.startsWith('ev\\x1b[31m\\nil '), `comm escaped (${line.slice(0, 40)})`);
  t.ok(line.endsWith(` ${program.replace('\x1b', '\\x1b').replace('\n', '\\n')} \\x1b]0;pwned\\x07 a\\nb \\xff\\xfe\\xc3 \\u{009b}31m\\u{202e} ${long}`), 'args escaped');
  const jsonLine = await json.waitForLine((l) => l.includes('"comm":"ev\\u001b'));
  t.notMatch(jsonLine, /[^\x20-\x7e]/, 'the JSON line is printable ASCII: nothing invisible reaches a terminal');
  const event = JSON.parse(jsonLine);
  t.equal(event.comm, name);
  t.same(event.args.map((a: string) => Buffer.from(bytesOfLosslessString(a)).toString('latin1')),
    [program, '\x1b]0;pwned\x07', 'a\nb', '\xff\xfe\xc3', '\xc2\x9b31m\xe2\x80\xae', long], 'exact bytes round-trip');
  await human.stop();
  await json.stop();
});

t.test('a hostile file name (escape sequence, newline, invalid UTF-8, 255 bytes): escaped on one line by opensnoop and ext4slower, exact bytes in JSON', async (t) => {
  const before = kernelSnapshot();
  // on the ext4 root filesystem, so that ext4slower sees the file's operations
  const dir = rootDisk().dir;
  t.teardown(() => removeDir(dir));
  // an escape sequence, a newline, invalid UTF-8, and 'L's up to NAME_MAX (255 bytes)
  const head = Buffer.from('ev\x1b[31m\nil\xff\xfe', 'latin1');
  const name = Buffer.concat([head, Buffer.alloc(255 - head.length, 'L')]);
  const path = Buffer.concat([Buffer.from(`${dir}/`), name]);
  const shownName = `ev\\x1b[31m\\nil\\xff\\xfe${'L'.repeat(255 - head.length)}`;
  const shownPath = `${dir}/${shownName}`;

  const opens = await startAttached('opensnoop', [], /^PID {4}COMM {14}FD ERR PATH$/);
  const opensJson = startTool('opensnoop', ['--json']);
  const ext4 = await startAttached('ext4slower', ['0'], /^Tracing ext4 operations\.\.\. Hit Ctrl-C to end\.$/);
  const ext4Json = startTool('ext4slower', ['--json', '0']);
  // JSON has no header: a file written over and over until both show it says they are attached
  const probe = join(dir, 'attach-probe');
  for (let waited = 0; !(opensJson.stdout.includes(probe) && ext4Json.stdout.includes('"attach-probe"')); waited += 100) {
    if (waited > 15000) throw new Error(`--json not attached: ${opensJson.stderr}${ext4Json.stderr}`);
    writeFileSync(probe, 'x');
    await sleep(100);
  }

  // python3 with a bytes path: creates the file, writes 5000 bytes, fsyncs, reads 3000, then opens it again
  const script = 'import os,sys\n' +
    'p = bytes.fromhex(sys.argv[1])\n' +
    'fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)\n' +
    "os.write(fd, b'x' * 5000)\n" +
    'os.fsync(fd)\n' +
    'os.pread(fd, 3000, 0)\n' +
    'os.close(fd)\n' +
    'os.close(os.open(p, os.O_RDONLY))\n';
  const python = spawn('python3', ['-c', script, path.toString('hex')], { stdio: 'ignore' });
  const status = await new Promise<number | null>((resolve) => python.on('close', resolve));
  t.equal(status, 0, 'python3 did it');
  const pid = python.pid!;

  // the columns as each tool prints them (the fd is 3 both times: python3 has only 0-2 open)
  const opensLine = `${left(pid, 6)} ${left('python3', 16)} ${right(3, 3)} ${right(0, 3)} ${shownPath}`;
  // ext4slower names the file by its own name (the dentry), not the path; LAT(ms) is the one value not known
  const ext4Line = (type: string, bytes: string): RegExp => new RegExp(
    `^\\d\\d:\\d\\d:\\d\\d ${left('python3', 16)} ${left(pid, 7)} ${type} ${left(bytes, 7)} ${left(0, 8)} [ \\d]{3}\\d\\.\\d\\d ` +
    `${shownName.replace(/[\\[\]]/g, '\\$&')}$`,
  );
  const ext4Rows = [ext4Line('O', '0'), ext4Line('W', '5000'), ext4Line('S', 'LL_MAX'), ext4Line('R', '3000'), ext4Line('O', '0')];
  const seen = (text: string): boolean => text.includes('L'.repeat(200));
  const ofPid = (tool: RunningTool): Record<string, unknown>[] =>
    tool.lines.filter(seen).map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.pid === pid);
  await opens.waitForLine(() => opens.lines.filter((l) => l === opensLine).length === 2);
  await ext4.waitForLine(() => ext4.lines.filter(seen).length === ext4Rows.length);
  await opensJson.waitForLine(() => ofPid(opensJson).length === 2);
  await ext4Json.waitForLine(() => ofPid(ext4Json).length === ext4Rows.length);
  const finished = await Promise.all([opens, opensJson, ext4, ext4Json].map((tool) => tool.stop()));
  for (const done of finished) t.equal(done.code, 0);

  // Human output: every line that shows the name is whole, with nothing a terminal would act on.
  const opensMine = opens.lines.filter(seen);
  t.same(opensMine, [opensLine, opensLine], 'opensnoop: each open on one line, path escaped');
  const ext4Mine = ext4.lines.filter(seen);
  t.equal(ext4Mine.length, ext4Rows.length, `ext4slower: one line per operation:\n${ext4Mine.join('\n')}`);
  ext4Mine.forEach((line, i) => t.match(line, ext4Rows[i], 'ext4slower: the exact line, name escaped'));
  for (const line of [...opensMine, ...ext4Mine]) t.notMatch(line, /[\x00-\x1f\x7f]/, 'no control character reaches the terminal');
  t.notOk([...opens.lines, ...ext4.lines].some((l) => l.startsWith('il')), 'the newline did not split a line');

  // JSON: the exact bytes
  const opensEvents = ofPid(opensJson);
  t.equal(opensEvents.length, 2, 'opensnoop --json: both opens');
  for (const e of opensEvents) t.same(Buffer.from(bytesOfLosslessString(e.path as string)), path, 'opensnoop --json: path round-trips to the exact bytes');
  const ext4Events = ofPid(ext4Json);
  t.same(ext4Events.map((e) => e.type), ['O', 'W', 'S', 'R', 'O'], 'ext4slower --json: every operation');
  for (const e of ext4Events) t.same(Buffer.from(bytesOfLosslessString(e.file as string)), name, 'ext4slower --json: file round-trips to the exact bytes');

  t.same(await leftovers(before, 'opensnoop'), [], 'opensnoop: nothing left loaded');
  t.same(await leftovers(before, 'ext4slower'), [], 'ext4slower: nothing left loaded');
});

t.test('kill -9 leaves nothing loaded; two instances at once both work and clean up', async (t) => {
  const before = kernelSnapshot();
  const killed = await startAttached('execsnoop', [], /^PCOMM/);
  killed.proc.kill('SIGKILL');
  await killed.finished();
  const first = await startAttached('execsnoop', [], /^PCOMM/);
  const second = await startAttached('execsnoop', ['-x'], /^PCOMM/);
  const m = `both-${process.pid}`;
  spawnSync('/bin/echo', [m]);
  await first.waitForLine((l) => l.includes(m));
  await second.waitForLine((l) => l.includes(m));
  t.equal((await first.stop()).code, 0);
  t.equal((await second.stop()).code, 0);
  await sleep(300);
  t.same(await leftovers(before, 'execsnoop'), []);
});
