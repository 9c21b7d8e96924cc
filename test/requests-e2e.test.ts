// How biolatency and biosnoop follow block requests in the kernel
// (bpf/bio.bpf.h), driven step by step: their raw_tp programs are loaded
// and run with BPF_PROG_TEST_RUN on made-up request addresses, in the order
// the block layer would call them, including the orders that mean a
// completion was never seen. The kernel skips a program already running on
// the CPU when an interrupt completes a request, and this project's own
// machine runs no BPF program in its agent's threads: such a request must be
// counted (and reported as not traced), never lost silently, while a
// requeued request, which is dispatched twice, must not be. Then the real
// tools, ended while a request they saw dispatched is held in flight (its
// loop disk's backing file on a frozen filesystem): it is reported too.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { koffi } from '../common/native.js';
import { BpfObject } from '../common/bpfobject.js';
import { configureBlockPlan, END_SETTLE_MS, UntrackedRequests } from '../common/bio.js';
import { makeLoopDisk } from './bio-helpers.js';
import { leftovers, kernelSnapshot, sleep, SLOWDOWN, startAttached } from './helpers.js';

/** libbpf's struct bpf_test_run_opts (bpf/bpf.h). */
const TestRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'const void *',
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'const void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});
const testRun = koffi.load('libbpf.so.1').func('int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)');

type Hook = 'start' | 'insert' | 'issue' | 'requeue' | 'complete';
const PROGRAMS: Record<Hook, string> = {
  start: 'io_start_raw_tp', insert: 'rq_insert_raw_tp', issue: 'rq_issue_raw_tp',
  requeue: 'rq_requeue_raw_tp', complete: 'rq_complete_raw_tp',
};

/** A tool's block programs, loaded (not attached), run by hand; its unseen_completions counter read live. */
class Requests {
  private readonly obj: BpfObject;
  private readonly bss: DataView;
  private readonly unseenOffset: number;

  readonly untracked: UntrackedRequests;

  constructor(tool: 'biolatency' | 'biosnoop') {
    this.obj = BpfObject.open(tool);
    const wanted = new Set(Object.values(PROGRAMS));
    for (const p of this.obj.programs()) this.obj.setAutoload(p.name, wanted.has(p.name));
    configureBlockPlan(this.obj, { name: 'by hand', programs: [...wanted] });
    this.obj.load();
    this.bss = this.obj.sectionView('.bss');
    this.unseenOffset = this.obj.btf.datasec('.bss').get('unseen_completions')!.offset;
    this.untracked = new UntrackedRequests(this.obj);
  }

  /**
   * Runs the hook's program for the request at `address`. Every hook gets
   * the request as its first two arguments: kernels before 5.11 pass the
   * queue first, and the programs read the place their kernel has it.
   */
  run(hook: Hook, address: bigint): void {
    const args = new BigUint64Array([address, address, 0n]);
    const opts = { sz: koffi.sizeof(TestRunOpts), ctx_in: args, ctx_size_in: args.byteLength, repeat: 0 };
    const err = testRun(this.obj.programFd(PROGRAMS[hook]), opts) as number;
    if (err) throw new Error(`BPF_PROG_TEST_RUN of ${PROGRAMS[hook]}: ${err}`);
  }

  get unseen(): number {
    return Number(this.bss.getBigUint64(this.unseenOffset, true));
  }

  close(): void {
    this.obj.close();
  }
}

/** Orders of calls for one request address, and how many completions they must count as not seen. */
const CASES: { what: string; steps: Hook[]; unseen: number }[] = [
  { what: 'created, dispatched, completed', steps: ['start', 'issue', 'complete'], unseen: 0 },
  { what: 'dispatched, then the address created again with no completion between', steps: ['start', 'issue', 'start', 'issue', 'complete'], unseen: 1 },
  { what: 'not seen created, dispatched, then dispatched again with no requeue or completion between', steps: ['issue', 'issue', 'complete'], unseen: 1 },
  { what: 'requeued and dispatched again', steps: ['start', 'issue', 'requeue', 'issue', 'complete'], unseen: 0 },
  { what: 'requeued twice', steps: ['start', 'issue', 'requeue', 'issue', 'requeue', 'issue', 'complete'], unseen: 0 },
  { what: 'created and never dispatched (merged into another request), then the address created again', steps: ['start', 'start', 'issue', 'complete'], unseen: 0 },
  { what: 'inserted, requeued and inserted again (the insert plan)', steps: ['insert', 'issue', 'requeue', 'insert', 'issue', 'complete'], unseen: 0 },
  { what: 'inserted, dispatched, then the address inserted again with no completion between', steps: ['insert', 'issue', 'insert', 'issue', 'complete'], unseen: 1 },
  { what: 'dispatched twice and never completed', steps: ['start', 'issue', 'start', 'issue', 'start', 'issue'], unseen: 2 },
];

const before = kernelSnapshot();
for (const tool of ['biosnoop', 'biolatency'] as const) {
  t.test(`${tool}: a completion no program saw is counted, a requeue is not`, async (t) => {
    const requests = new Requests(tool);
    t.teardown(() => requests.close());
    // user-space addresses: no kernel request is ever at one, and reading one from BPF fails harmlessly
    let address = 0x10000n;
    for (const c of CASES) {
      const was = requests.unseen;
      address += 0x1000n;
      for (const hook of c.steps) requests.run(hook, address);
      t.equal(requests.unseen - was, c.unseen, `${c.what}: ${c.steps.join(', ')}`);
    }
  });
}

for (const tool of ['biosnoop', 'biolatency'] as const) {
  t.test(`${tool}: at the end, a request dispatched before it and not seen to complete is counted`, async (t) => {
    const requests = new Requests(tool);
    t.teardown(() => requests.close());
    const started = process.hrtime.bigint();
    const steps: [bigint, Hook[]][] = [
      [0x20000n, ['start', 'issue']],
      [0x21000n, ['start', 'issue', 'complete']],
      [0x22000n, ['start']],
      [0x23000n, ['issue']],
    ];
    for (const [address, hooks] of steps) for (const hook of hooks) requests.run(hook, address);
    const now = process.hrtime.bigint();
    t.equal(requests.untracked.unfinished(started), 0, 'none dispatched before the first');
    t.equal(requests.untracked.unfinished(now), 2, 'the two dispatched: not the completed one, nor the one never dispatched');
    requests.run('requeue', 0x23000n);
    t.equal(requests.untracked.unfinished(now), 1, 'a requeued request waits to be dispatched again: not counted');
  });
}

function run(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * A loop disk whose requests can be held in flight: its backing file is on
 * ext4 on another loop disk, frozen by hold() (the loop driver's write to
 * the file then waits for release()). At the test's end it is released,
 * `users` waited for, and everything removed, in that order.
 */
function holdingDisk(t: Test): { disk: string; users: Promise<unknown>[]; hold(): void; release(): void } {
  const dir = mkdtempSync('/var/tmp/ebpf-tools-held-');
  const lower = makeLoopDisk();
  let upper: string | undefined;
  let held = false;
  const disk = {
    disk: '',
    users: [] as Promise<unknown>[],
    hold(): void {
      run('fsfreeze', ['-f', dir]);
      held = true;
    },
    release(): void {
      if (held) run('fsfreeze', ['-u', dir]);
      held = false;
    },
  };
  t.teardown(async () => {
    disk.release();
    await Promise.all(disk.users);
    if (upper) spawnSync('losetup', ['-d', upper]);
    spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
    lower.remove();
  });
  run('mkfs.ext4', ['-q', `/dev/${lower.disk}`]);
  run('mount', [`/dev/${lower.disk}`, dir]);
  const file = join(dir, 'disk');
  writeFileSync(file, '');
  truncateSync(file, 16 << 20);
  upper = run('losetup', ['--find', '--show', file]).trim();
  disk.disk = basename(upper);
  return disk;
}

const HEADERS = { biolatency: /^Tracing block device I\/O\.\.\. Hit Ctrl-C to end\.$/, biosnoop: /^TIME\(s\) +COMM +PID +DISK +T +SECTOR +BYTES +LAT\(ms\)$/ };

for (const tool of ['biosnoop', 'biolatency'] as const) {
  t.test(`${tool}: a request still in flight ${END_SETTLE_MS} ms after the end is reported, not dropped silently`, async (t) => {
    const held = holdingDisk(t);
    const running = await startAttached(tool, ['-d', held.disk], HEADERS[tool]);
    held.hold();
    const dd = spawn('dd', ['if=/dev/zero', `of=/dev/${held.disk}`, 'bs=4096', 'count=1', 'oflag=direct'], { stdio: 'ignore' });
    const ddDone = new Promise((resolve) => dd.on('close', resolve));
    held.users.push(ddDone);
    // /sys/block/<disk>/inflight: requests the driver has, reads then writes
    const inflight = (): number[] => readFileSync(`/sys/block/${held.disk}/inflight`, 'utf8').trim().split(/\s+/).map(Number);
    for (let waited = 0; inflight()[1] === 0; waited += 20) {
      if (waited > 20000 * SLOWDOWN) throw new Error(`dd's write to ${held.disk} never reached its driver`);
      await sleep(20);
    }
    const done = await running.stop();
    t.equal(done.code, 0);
    t.equal(done.stderr, `${tool}: 1 request not traced: dispatched before the end and not seen to complete within ${END_SETTLE_MS} ms of it (1 in all)\n`);
    t.same(done.stdout.split('\n').filter((l) => l !== '').slice(1), [], 'nothing but the header: the request never completed');
    held.release();
    t.equal(await ddDone, 0, 'dd ends once the file system thaws');
  });
}

t.test('nothing is left loaded in the kernel', async (t) => {
  t.same(await leftovers(before), []);
});
