// What a sysadmin gets from `npm install -g`: the packed tarball holds only
// what runs (compiled JS, BPF objects, man pages), installs on a clean
// prefix, and every installed command works.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAUNCHER_NODE_OPTIONS, toolOf } from '../common/commands.js';
import { RunningTool, ROOT, sleep, withoutTapHooks } from './helpers.js';

const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { bin: Record<string, string>; version: string };
const work = mkdtempSync(join(tmpdir(), 'ebpf-tools-pack-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(...withoutTapHooks(file, args), { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 300000 });
}

const packed = run('npm', ['pack', '--json', '--pack-destination', work]);
const tarball = join(work, (JSON.parse(packed.stdout) as { filename: string }[])[0].filename);
const prefix = join(work, 'prefix');

t.test('the tarball holds what runs and nothing of the build or tests', async (t) => {
  t.equal(packed.status, 0, packed.stderr);
  const files = (JSON.parse(packed.stdout) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
  for (const tool of Object.keys(pkg.bin)) {
    t.ok(files.includes(`bin/${tool}.js`), `bin/${tool}.js`);
    t.equal(readFileSync(`${ROOT}bin/${tool}.js`, 'utf8').split('\n')[0], `#!/usr/bin/env -S node ${LAUNCHER_NODE_OPTIONS.join(' ')}`, `bin/${tool}.js starts node with the launchers' options`);
    t.ok(files.includes(`bpf/${toolOf(tool)}.bpf.o`), `bpf/${toolOf(tool)}.bpf.o`);
    t.ok(files.includes(`dist/bundle/${toolOf(tool)}.cjs`), `dist/bundle/${toolOf(tool)}.cjs`);
    t.ok(files.includes(`man/man8/${tool}.8`), `man/man8/${tool}.8`);
  }
  t.ok(files.includes('bin/package.json') && files.includes('dist/bundle/compilecache.cjs'), 'the launchers are CommonJS, with the compile cache bundled');
  const unwanted = files.filter((f) => /^(test|dist\/test|bench|dist\/bench|scripts|tools|common|\.ci)\/|\.bpf\.c$|\.h$|\.ts$/.test(f));
  t.same(unwanted, [], 'no tests, sources or build scripts');
});

t.test('npm install -g on a clean prefix puts working commands on PATH', async (t) => {
  const install = run('npm', ['install', '-g', '--no-audit', '--no-fund', '--prefix', prefix, tarball]);
  t.equal(install.status, 0, install.stderr);
  const installed = readdirSync(join(prefix, 'bin'));
  for (const tool of Object.keys(pkg.bin)) {
    t.ok(installed.includes(tool), `${tool} installed`);
    const help = run(join(prefix, 'bin', tool), ['--help']);
    t.equal(help.status, 0, `${tool} --help exits 0`);
    t.match(help.stdout, /EXAMPLES:/);
    const version = run(join(prefix, 'bin', tool), ['--version']);
    t.equal(version.stdout.trim(), pkg.version, `${tool} --version`);
    const bad = run(join(prefix, 'bin', tool), ['--no-such-option']);
    t.equal(bad.status, 2, `${tool}: unknown option exits 2`);
    t.match(bad.stderr, new RegExp(`^${tool}: .*no-such-option.*--help.*\\n$`), 'one line naming the option');
  }
});

t.test('the installed man pages are found and render without warnings', async (t) => {
  const manpath = join(prefix, 'share', 'man');
  for (const tool of Object.keys(pkg.bin)) {
    const where = run('man', ['-w', tool], { MANPATH: manpath });
    t.equal(where.status, 0, `man -w ${tool}`);
    t.match(where.stdout.trim(), new RegExp(`(${tool}|${toolOf(tool)})\\.8$`), `${tool}.8, or the page its .so link names`);
    // as the user reads it: man follows a further name's .so link to the tool's page
    const page = run('man', ['--warnings', '-P', 'cat', tool], { MANPATH: manpath, MANWIDTH: '80' });
    t.equal(page.status, 0, `man ${tool}`);
    t.equal(page.stderr, '', `${tool}.8 renders cleanly`);
    t.match(page.stdout, new RegExp(`^NAME\\n.*\\b${tool}\\b`, 'm'), `man ${tool} shows a page naming ${tool}`);
  }
});

t.test('the installed execsnoop traces for real', async (t) => {
  const tool = new RunningTool(join(prefix, 'bin', 'execsnoop'), []);
  await tool.waitForLine(/^PCOMM/);
  const argv = readFileSync(`/proc/${tool.proc.pid}/cmdline`, 'utf8').split('\0');
  t.same(argv.slice(1, 1 + LAUNCHER_NODE_OPTIONS.length), LAUNCHER_NODE_OPTIONS, `node runs it with its shebang's options: ${argv.join(' ')}`);
  const marker = `installed-${process.pid}`;
  for (let i = 0; i < 50 && !tool.lines.some((l) => l.includes(marker)); i++) {
    spawnSync('/bin/echo', [marker], { stdio: 'ignore' });
    await sleep(100);
  }
  await tool.waitForLine((l) => l.includes(marker));
  t.equal((await tool.stop()).code, 0);
});
