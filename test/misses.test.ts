// The runs of a program the kernel skipped, as its fdinfo says (common/misses.ts).
import t from 'tap';
import { openSync, closeSync } from 'node:fs';
import { missesInFdinfo, recursionMisses } from '../common/misses.js';

const FDINFO = 'pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\nprog_type:\t17\nprog_jited:\t1\nprog_tag:\tbd025842ab3b1631\n' +
  'memlock:\t4096\nprog_id:\t36442\nrun_time_ns:\t0\nrun_cnt:\t0\nrecursion_misses:\t7\nverified_insns:\t61\n';

t.test('recursion_misses from a program fd\'s fdinfo, 0 where the kernel does not show it', async (t) => {
  t.equal(missesInFdinfo(FDINFO), 7);
  t.equal(missesInFdinfo(FDINFO.replace('recursion_misses:\t7\n', '')), 0, 'a kernel before 5.12');
  const fd = openSync('/proc/self/status', 'r');
  t.teardown(() => closeSync(fd));
  t.equal(recursionMisses([fd, fd]), 0, 'a file that is not a program\'s fdinfo, read twice from its start');
});
