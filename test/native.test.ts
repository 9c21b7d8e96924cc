// The completion of a koffi async call (common/native.ts nativeCompletion):
// what it throws must reach 'uncaughtException' from plain JavaScript. When
// it escaped through koffi's callback instead, Node-API kept it pending while
// the handler ran, and a garbage collection there that freed a koffi object
// ran JavaScript inside the collector: a V8 fatal error that killed the tool
// ending on a closed stdout (`biosnoop --json | head -1`, seen once in a guest).
// And inThreads, which runs a libbpf function in threads side by side (the
// links of a run are destroyed so, common/bpfobject.ts).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { bpf, inThreads, libcCalls, nativeCompletion } from '../common/native.js';

const NATIVE = new URL('../common/native.js', import.meta.url).href;
const SC_PAGESIZE = 30;

/** Runs `body` as an ES module in a Node of its own, after an 'uncaughtException' handler that collects garbage, as a tool's end does. */
function child(body: string) {
  const script = `
    const { koffi, libcCalls, nativeCompletion } = await import(${JSON.stringify(NATIVE)});
    // Objects with Node-API finalizers, which koffi has run inside the
    // collector: function objects nobody keeps.
    const libc = koffi.load('libc.so.6');
    for (let i = 0; i < 200; i++) libc.func('int getpid(void)');
    process.on('uncaughtException', (err) => {
      const kept = [];
      for (let i = 0; i < 1e6; i++) kept.push({ i }); // collections, as a tool's last drain and close make
      process.stdout.write(err.message + ' (' + kept.length + ')\\n');
      process.exit(3);
    });
    ${body}
  `;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
}

t.test('what a completion throws reaches uncaughtException, and a collection in the handler does not kill Node', async (t) => {
  const run = child(`libcCalls.close.async(-1, nativeCompletion(() => { throw new Error('thrown where the call completed'); }));`);
  t.same({ status: run.status, signal: run.signal }, { status: 3, signal: null }, `exit status 3 from the handler (stderr: ${run.stderr.slice(0, 300)})`);
  t.equal(run.stdout, 'thrown where the call completed (1000000)\n');
  t.equal(run.stderr, '');
});

t.test('a call koffi could not make is thrown where it completes, not ignored', async (t) => {
  const run = child(`libcCalls.close.async('not a descriptor', nativeCompletion(() => { process.stdout.write('completed\\n'); }));`);
  t.same({ status: run.status, signal: run.signal }, { status: 3, signal: null }, `exit status 3 from the handler (stderr: ${run.stderr.slice(0, 300)})`);
  t.match(run.stdout, /^Unexpected String value, expected number \(1000000\)\n$/, "koffi's TypeError, thrown from the completion");
});

t.test('the result of the call is handed over', async (t) => {
  const pageSize = await new Promise<number>((resolve) => libcCalls.sysconf.async(SC_PAGESIZE, nativeCompletion(resolve)));
  t.equal(pageSize, libcCalls.sysconf(SC_PAGESIZE));
});

t.test('inThreads runs a libbpf function once per argument, each in a thread, and says how many it ran', async (t) => {
  t.ok(bpf.set_print, 'libbpf is loaded (inThreads looks in the loaded one only)');
  // bpf_link__destroy(NULL) does nothing and returns 0
  t.equal(inThreads('bpf_link__destroy', [null, null, null]), 3);
  t.equal(inThreads('bpf_link__destroy', []), 0);
  t.equal(inThreads('bpf_no_such_function', [null]), 0, 'none where the function is not found');
});
