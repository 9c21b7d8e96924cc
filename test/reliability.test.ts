// What makes a root tool trustworthy on a production box: clear failures
// when the environment is wrong, hostile strings kept harmless, signals and
// kill -9 leaving nothing behind, two instances side by side.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bytesOfLosslessString } from '../common/escape.js';
import { leftoverPrograms, loadedProgramIds, ROOT, runTool, sleep, startAttached, startTool, toolPath, withoutTapHooks } from './helpers.js';

const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { bin: Record<string, string> };
const tools = Object.keys(pkg.bin);
const oneLine = (text: string): boolean => text.endsWith('\n') && text.indexOf('\n') === text.length - 1;

t.test('environment faults: one line that says what to do, exit 1, nothing loaded', async (t) => {
  const before = loadedProgramIds();
  for (const tool of tools) {
    const noLibbpf = runTool(tool, [], { EBPF_TOOLS_LIBBPF: '/nonexistent/libbpf.so.1' });
    t.equal(noLibbpf.code, 1, `${tool}: libbpf missing exits 1`);
    t.match(noLibbpf.stderr, /^\S+: cannot load \/nonexistent\/libbpf.so.1: install libbpf 1.0 or later \(Debian\/Ubuntu: apt install libbpf1/);
    t.ok(oneLine(noLibbpf.stderr), `${tool}: one line (${noLibbpf.stderr})`);

    const noBtf = runTool(tool, [], { EBPF_TOOLS_VMLINUX_BTF: '/nonexistent/vmlinux' });
    t.equal(noBtf.code, 1, `${tool}: no BTF exits 1`);
    t.match(noBtf.stderr, /kernel BTF not found at \/nonexistent\/vmlinux: needs a kernel built with CONFIG_DEBUG_INFO_BTF=y/);
    t.ok(oneLine(noBtf.stderr));

    const r = spawnSync(...withoutTapHooks('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, toolPath(tool)]), { encoding: 'utf8' });
    t.equal(r.status, 1, `${tool}: not root exits 1`);
    t.match(r.stderr, /must be run as root \(needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN\)/);
    t.ok(oneLine(r.stderr), `one line: ${JSON.stringify(r.stderr)}`);

    const usage = runTool(tool, ['--definitely-not-an-option']);
    t.equal(usage.code, 2, `${tool}: usage error exits 2`);
    t.ok(oneLine(usage.stderr), 'usage error is one line');
    t.notMatch(usage.stderr, /\n\s+at /, 'no stack trace');
  }
  for (const tool of tools) t.same(leftoverPrograms(before, tool), [], `${tool}: nothing loaded`);
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
  // argv as raw bytes: an escape sequence, a newline, invalid UTF-8, a 4 KiB string
  const script = `import os,sys; os.execv(sys.argv[1].encode(), [b'x', b'\\x1b]0;pwned\\x07', b'a\\nb', b'\\xff\\xfe\\xc3', b'${long}'])`;
  const r = spawnSync('python3', ['-c', script, program], { stdio: 'ignore' });
  t.equal(r.status, 0);
  const line = await human.waitForLine((l) => l.startsWith('ev\\x1b'));
  t.equal(line.split('\n').length, 1);
  t.notMatch(line, /[\x00-\x1f\x7f]/, 'no control character reaches the terminal');
  t.ok(line.startsWith('ev\\x1b[31m\\nil '), `comm escaped (${line.slice(0, 40)})`);
  t.ok(line.endsWith(` ${program.replace('\x1b', '\\x1b').replace('\n', '\\n')} \\x1b]0;pwned\\x07 a\\nb \\xff\\xfe\\xc3 ${long}`), 'args escaped');
  const event = JSON.parse(await json.waitForLine((l) => l.includes('"comm":"ev\\u001b')));
  t.equal(event.comm, name);
  t.same(event.args.map((a: string) => Buffer.from(bytesOfLosslessString(a)).toString('latin1')),
    [program, '\x1b]0;pwned\x07', 'a\nb', '\xff\xfe\xc3', long], 'exact bytes round-trip');
  await human.stop();
  await json.stop();
});

t.test('kill -9 leaves nothing loaded; two instances at once both work and clean up', async (t) => {
  const before = loadedProgramIds();
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
  t.same(leftoverPrograms(before, 'execsnoop'), []);
});
