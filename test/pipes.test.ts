// Piped into a reader that stops early (| head -1), every tool ends quietly
// with status 0, in human and in JSON form: the write that finds the pipe
// closed ends the run like Ctrl-C, without EPIPE noise. The one line a
// tool may print on stderr is biolatency's or biosnoop's report of requests
// whose completion the kernel ran no program for (unseenCompletions): under
// load on this machine an interrupt can complete a request in a thread where
// the kernel runs no BPF program (CI, 2026-12-02).
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { unseenCompletions } from './bio-helpers.js';
import { kernelSnapshot, leftovers, sleep, toolArgv } from './helpers.js';

/** Each tool as piped, and what its first line must be. */
const CASES: { tool: string; args: string[]; first: RegExp }[] = [
  { tool: 'execsnoop', args: [], first: /^PCOMM +PID +PPID +RET ARGS$/ },
  { tool: 'execsnoop', args: ['--json'], first: /^\{"time":.*\}$/ },
  { tool: 'opensnoop', args: [], first: /^PID +COMM +FD +ERR PATH$/ },
  { tool: 'opensnoop', args: ['--json'], first: /^\{"time":.*\}$/ },
  { tool: 'ext4slower', args: ['0'], first: /^Tracing ext4 operations\.\.\. Hit Ctrl-C to end\.$/ },
  { tool: 'ext4slower', args: ['0', '--json'], first: /^\{.*\}$/ },
  { tool: 'biosnoop', args: [], first: /^TIME\(s\) +COMM +PID +DISK +T +SECTOR +BYTES +LAT\(ms\)$/ },
  { tool: 'biosnoop', args: ['--json'], first: /^\{.*\}$/ },
  { tool: 'biolatency', args: ['1'], first: /^Tracing block device I\/O\.\.\. Hit Ctrl-C to end\.$/ },
  { tool: 'biolatency', args: ['-j', '1'], first: /^\{.*\}$/ },
];

// On the root file system (not tmpfs), so that writes reach ext4 and the disk.
const work = mkdtempSync('/var/tmp/ebpf-tools-pipes-');
const before = kernelSnapshot();
t.teardown(() => rmSync(work, { recursive: true, force: true }));

/** One of everything the tools trace: an exec, opens, an ext4 write, fsync, and block I/O. */
function workload(): void {
  spawnSync('/bin/true');
  const fd = openSync(join(work, 'data'), 'w');
  writeSync(fd, Buffer.alloc(65536, 1));
  fsyncSync(fd);
  closeSync(fd);
}

for (const { tool, args, first } of CASES) {
  t.test(`${tool} ${args.join(' ')} | head -1: status 0, one line, no EPIPE noise`, async (t) => {
    const command = `${[process.execPath, ...toolArgv(tool, args)].join(' ')} | head -1`;
    const pipeline = spawn('/bin/bash', ['-o', 'pipefail', '-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    pipeline.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    pipeline.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    let status: number | null | undefined;
    const exited = new Promise<number | null>((resolve) => pipeline.on('close', resolve)).then((s) => (status = s));
    // Keep the kernel busy until the pipeline ends: head exits after the
    // first line, and the tool's next write finds the pipe closed.
    for (let i = 0; i < 300 && status === undefined; i++) {
      workload();
      await sleep(30);
    }
    t.equal(await exited, 0, 'pipeline status (pipefail) is 0');
    t.same(unseenCompletions(tool, err).otherLines, [], 'no EPIPE noise: nothing on stderr but requests reported not traced');
    t.ok(out.endsWith('\n') && out.indexOf('\n') === out.length - 1, `one line (${JSON.stringify(out.slice(0, 80))})`);
    t.match(out.trimEnd(), first);
    t.same(await leftovers(before, tool), [], 'nothing left behind in the kernel');
  });
}
