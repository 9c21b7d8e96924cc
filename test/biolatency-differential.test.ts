// biolatency against Debian's libbpf-tools biolatency (/usr/sbin) on the
// same workload, both attached at once: the same I/O counted, and the C
// tool's histogram rows redrawn byte for byte from its own counts.
import t from 'tap';
import { join } from 'node:path';
import { log2HistogramLines } from '../common/histogram.js';
import { ensureTracefs } from '../common/preflight.js';
import { makeLoopFilesystem, parseHistograms, runWorkload, unseenCompletions } from './bio-helpers.js';
import { referenceTool, RunningTool, startAttached } from './helpers.js';

const HEADER = /^Tracing block device I\/O\.\.\. Hit Ctrl-C to end\.$/;
const BLOCKS = 32;
// a disk of its own: what else the machine writes to its disks would be
// counted by whichever tool was attached at that moment
const root = makeLoopFilesystem();
t.teardown(() => root.remove());

t.test('the same I/O count as /usr/sbin/biolatency -D, and the same histogram text', async (t) => {
  ensureTracefs();
  // the C tool writes to a pipe in 4 KiB blocks: line buffering shows when it is attached
  const reference = new RunningTool('stdbuf', ['-oL', referenceTool('biolatency'), '-D']);
  await reference.waitForLine(HEADER);
  const ours = await startAttached('biolatency', ['-D'], HEADER);
  await runWorkload(join(root.dir, 'data'), BLOCKS, 'wr', root);
  // the C tool flushes only on SIGINT; stop both at once
  const [theirs, mine] = await Promise.all([reference.stop('SIGINT'), ours.stop('SIGINT')]);
  t.equal(theirs.code, 0, `${referenceTool('biolatency')} ran: ${theirs.stderr}`);
  t.equal(mine.code, 0);

  const name = `disk = ${root.disk}`;
  const cTool = parseHistograms(theirs.stdout).find((h) => h.section === name);
  const our = parseHistograms(mine.stdout).find((h) => h.section === name);
  t.ok(cTool && our, `both have a histogram for ${root.disk}`);
  const unseen = unseenCompletions('biolatency', mine.stderr).count;
  t.ok(cTool!.total >= 2 * BLOCKS && our!.total + unseen >= 2 * BLOCKS, `both count the workload (${cTool!.total}, ${our!.total}; ${unseen} reported not traced)`);
  // a journal write of the file system in the moment between the two attaching or ending is all they may differ by
  t.ok(Math.abs(cTool!.total - our!.total) <= 4 + our!.total / 20,
    `same count within concurrent I/O: ${cTool!.total} and ${our!.total}`);
  t.same(log2HistogramLines(cTool!.counts, 'usecs'), cTool!.lines, 'the C tool\'s histogram redrawn from its counts');
});
