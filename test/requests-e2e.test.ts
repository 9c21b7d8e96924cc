// How biolatency and biosnoop follow block requests in the kernel
// (bpf/bio.bpf.h), driven step by step: their raw_tp programs are loaded
// and run with BPF_PROG_TEST_RUN on made-up request addresses, in the order
// the block layer would call them, including the orders that mean a
// completion was never seen. The kernel skips a program already running on
// the CPU when an interrupt completes a request, and this project's own
// machine runs no BPF program in its agent's threads: such a request must be
// counted (and reported as not traced), never lost silently, while a
// requeued request, which is dispatched twice, must not be.
import t from 'tap';
import { koffi } from '../common/native.js';
import { BpfObject } from '../common/bpfobject.js';
import { configureBlockPlan } from '../common/bio.js';
import { leftovers, kernelSnapshot } from './helpers.js';

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

  constructor(tool: 'biolatency' | 'biosnoop') {
    this.obj = BpfObject.open(tool);
    const wanted = new Set(Object.values(PROGRAMS));
    for (const p of this.obj.programs()) this.obj.setAutoload(p.name, wanted.has(p.name));
    configureBlockPlan(this.obj, { name: 'by hand', programs: [...wanted] });
    this.obj.load();
    this.bss = this.obj.sectionView('.bss');
    this.unseenOffset = this.obj.btf.datasec('.bss').get('unseen_completions')!.offset;
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

t.test('nothing is left loaded in the kernel', async (t) => {
  t.same(await leftovers(before), []);
});
