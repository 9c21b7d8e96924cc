#!/usr/bin/env node
// Compiles bpf/*.bpf.c into the CO-RE objects shipped in bpf/, with Debian's
// clang-19. Kernel types come from the committed bpf/vmlinux.h and libbpf's
// headers from Debian's libbpf-dev, never from the running kernel, so the
// same sources give the same bytes on any machine.
// --check: build into a temporary directory and fail if any committed
// object differs from what its source compiles to.
// Tool names as arguments build only those objects.
// clang-19 orders some BTF types (forward declarations) differently with
// another environment or source path, so it runs with one fixed environment
// on a copy of the sources at one fixed path, wherever the checkout is; two
// builds at once (two checkouts on one machine) take turns through a lock.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const clang = process.env.CLANG ?? 'clang-19';
const strip = process.env.LLVM_STRIP ?? 'llvm-strip-19';
const check = process.argv.includes('--check');
const buildRoot = '/tmp/ebpf-tools-bpf-src';

if (!process.env.EBPF_TOOLS_BPF_BUILD_LOCKED) {
  const r = spawnSync('flock', [`${buildRoot}.lock`, process.execPath, ...process.argv.slice(1)],
    { stdio: 'inherit', env: { ...process.env, EBPF_TOOLS_BPF_BUILD_LOCKED: '1' } });
  process.exit(r.status ?? 1);
}

process.chdir(root);
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const sources = readdirSync('bpf')
  .filter((f) => f.endsWith('.bpf.c') && (only.length === 0 || only.includes(f.replace(/\.bpf\.c$/, ''))))
  .sort();
const outDir = check ? mkdtempSync(join(tmpdir(), 'ebpf-tools-bpf-')) : join(root, 'bpf');
const CLANG_ENV = { PATH: '/usr/bin:/bin' };
rmSync(buildRoot, { recursive: true, force: true });
mkdirSync(join(buildRoot, 'bpf'), { recursive: true });
for (const f of readdirSync('bpf').filter((f) => f.endsWith('.c') || f.endsWith('.h'))) copyFileSync(join('bpf', f), join(buildRoot, 'bpf', f));
const stale = [];
for (const source of sources) {
  const object = join(outDir, source.replace(/\.c$/, '.o'));
  execFileSync(clang, [
    '-g', '-O2', '-Wall', '-Werror', '-target', 'bpf', '-D__TARGET_ARCH_x86',
    `-ffile-prefix-map=${buildRoot}=.`, '-Ibpf', '-c', join('bpf', source), '-o', object,
  ], { stdio: 'inherit', cwd: buildRoot, env: CLANG_ENV });
  execFileSync(strip, ['-g', object], { stdio: 'inherit' });
  if (check && !readFileSync(object).equals(readFileSync(join('bpf', source.replace(/\.c$/, '.o'))))) {
    stale.push(source);
  }
  if (!check) console.log(`built ${object}`);
}
rmSync(buildRoot, { recursive: true, force: true });
if (check) {
  rmSync(outDir, { recursive: true, force: true });
  if (stale.length) {
    console.error(`committed objects differ from their sources: ${stale.join(', ')} (run npm run build:bpf)`);
    process.exit(1);
  }
  console.log(`${sources.length} BPF objects match their sources`);
}
