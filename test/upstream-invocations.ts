// Every command line that bcc (tools/*.py usage, man/man8/*.8, tools/*_example.txt,
// tests/python/test_tools_smoke.py) and libbpf-tools (argp tables and usage examples)
// document for our five tools (and argp's own options, which every
// libbpf-tools tool takes), and what it must do here. Read from bcc at
// 6d0a964c (2026-08-20). test/upstream-invocations.test.ts runs each one for real.

/** What makes an event the entry must show (see workloads in the test). */
export type Workload =
  | 'exec' | 'exec-as-1000' | 'exec-named-main' | 'exec-named-mount' | 'exec-tpkg' | 'exec-failing'
  | 'open' | 'open-as-1000' | 'open-named-main' | 'open-named-ed' | 'open-missing' | 'open-relative'
  | 'block-io'
  /** a write and fsync on the file system (for threshold 0) */
  | 'ext4-write' | 'xfs-write' | 'btrfs-write'
  /** a write made to take 100 ms (its source page served late by userfaultfd): over any threshold used here */
  | 'ext4-slow-write' | 'xfs-slow-write' | 'btrfs-slow-write' | 'fuse-slow-write';

export type Expectation =
  /** attaches, and shows the event of this workload (for the histogram tools: a histogram with a count) */
  | { traces: Workload }
  /** attaches and says so (its header), exits 0 when stopped; the filter admits nothing we can make here */
  | { attaches: true }
  /** exit 2, one line saying why, nothing loaded (upstream refuses it for the same reason, unless `from` says otherwise) */
  | { refused: RegExp }
  /** prints the usage, exit 0 */
  | { help: true }
  /** prints this on stdout (--usage, --version), exit 0 */
  | { prints: RegExp };

export interface Invocation {
  tool: string;
  argv: string[];
  /** where upstream documents it */
  from: string;
  expect: Expectation;
  /** the tool ends by itself (a duration or a count of intervals), with status 0 */
  ends?: boolean;
  /** the command it runs (opensnoop --exec) makes its events */
  selfTracing?: boolean;
  /** prints nothing until it ends (a JSON histogram): no header says it is attached */
  silent?: boolean;
}

const bcc = (file: string): string => `bcc ${file}`;
const libbpf = (file: string): string => `libbpf-tools ${file}`;

const NO_CGROUP = /CG|cgroup/;
const NO_MAP = /test01|mappath|map/;
const NO_DISK = /sdc/;
/** --version: ours prints the package's version, libbpf-tools' "TOOL 0.1" */
const VERSION = /^\d+\.\d+\.\d+\n$/;
/** argp's options, which every libbpf-tools tool takes (its --help lists them) */
const argp = (tool: string): Invocation[] => [
  { tool, argv: ['-?'], from: libbpf(`${tool}.c (argp: -?, --help)`), expect: { help: true } },
  { tool, argv: ['--usage'], from: libbpf(`${tool}.c (argp: --usage)`), expect: { prints: new RegExp(`^USAGE: ${tool} `) } },
  { tool, argv: ['-V'], from: libbpf(`${tool}.c (argp: -V, --version)`), expect: { prints: VERSION } },
  { tool, argv: ['--version'], from: libbpf(`${tool}.c (argp)`), expect: { prints: VERSION } },
];

export const INVOCATIONS: Invocation[] = [
  // execsnoop
  { tool: 'execsnoop', argv: [], from: bcc('tools/execsnoop.py, man, example, smoke test; libbpf-tools execsnoop.c'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['-x'], from: bcc('execsnoop.py, man, example; libbpf-tools'), expect: { traces: 'exec-failing' } },
  { tool: 'execsnoop', argv: ['--fails'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec-failing' } },
  { tool: 'execsnoop', argv: ['-T'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['--time'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['-P', '181'], from: bcc('execsnoop.py'), expect: { attaches: true } },
  { tool: 'execsnoop', argv: ['--ppid', '181'], from: bcc('execsnoop.py'), expect: { attaches: true } },
  { tool: 'execsnoop', argv: ['-U'], from: bcc('execsnoop.py, man, example; libbpf-tools'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['--print-uid'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['-C'], from: bcc('execsnoop.py'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['--print-cpu'], from: bcc('execsnoop.py'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['-M'], from: bcc('execsnoop.py'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['--print-pcomm'], from: bcc('execsnoop.py'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['-u', '1000'], from: bcc('execsnoop.py, man; libbpf-tools'), expect: { traces: 'exec-as-1000' } },
  { tool: 'execsnoop', argv: ['--uid', '1000'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec-as-1000' } },
  { tool: 'execsnoop', argv: ['-u', 'user'], from: bcc('execsnoop.py ("get user UID")'), expect: { refused: /user/ } },
  { tool: 'execsnoop', argv: ['-Uu', '1000'], from: bcc('execsnoop_example.txt'), expect: { traces: 'exec-as-1000' } },
  { tool: 'execsnoop', argv: ['-Uu', 'root'], from: bcc('man/man8/execsnoop.8'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['-t'], from: bcc('execsnoop.py, man; libbpf-tools'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['--timestamp'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['-q'], from: bcc('execsnoop.py, man; libbpf-tools'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['--quote'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['-n', 'main'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec-named-main' } },
  { tool: 'execsnoop', argv: ['--name', 'main'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec-named-main' } },
  { tool: 'execsnoop', argv: ['-n', 'mount'], from: bcc('man/man8/execsnoop.8'), expect: { traces: 'exec-named-mount' } },
  { tool: 'execsnoop', argv: ['-Ttn', 'mount'], from: bcc('execsnoop_example.txt'), expect: { traces: 'exec-named-mount' } },
  { tool: 'execsnoop', argv: ['-l', 'tpkg'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec-tpkg' } },
  { tool: 'execsnoop', argv: ['--line', 'tpkg'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec-tpkg' } },
  { tool: 'execsnoop', argv: ['-l', 'testpkg'], from: bcc('man/man8/execsnoop.8'), expect: { attaches: true } },
  { tool: 'execsnoop', argv: ['--max-args', '3'], from: bcc('execsnoop.py; libbpf-tools'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['-c', 'CG'], from: libbpf('execsnoop.c usage'), expect: { refused: NO_CGROUP } },
  { tool: 'execsnoop', argv: ['--cgroup', 'CG'], from: libbpf('execsnoop.c argp'), expect: { refused: NO_CGROUP } },
  { tool: 'execsnoop', argv: ['--cgroupmap', 'mappath'], from: bcc('execsnoop.py'), expect: { refused: NO_MAP } },
  { tool: 'execsnoop', argv: ['--cgroupmap', '/sys/fs/bpf/test01'], from: bcc('man, example'), expect: { refused: NO_MAP } },
  { tool: 'execsnoop', argv: ['--mntnsmap', 'mappath'], from: bcc('execsnoop.py'), expect: { refused: NO_MAP } },
  { tool: 'execsnoop', argv: ['-v'], from: libbpf('execsnoop.c argp'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['--verbose'], from: libbpf('execsnoop.c argp'), expect: { traces: 'exec' } },
  { tool: 'execsnoop', argv: ['-h'], from: bcc('execsnoop_example.txt; libbpf-tools'), expect: { help: true } },
  { tool: 'execsnoop', argv: ['--help'], from: bcc('argparse; libbpf-tools argp'), expect: { help: true } },
  ...argp('execsnoop'),

  // opensnoop
  { tool: 'opensnoop', argv: [], from: bcc('opensnoop.py, man, example, smoke test; libbpf-tools'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['-T'], from: bcc('opensnoop.py, man; libbpf-tools'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['-Tp', '1956'], from: bcc('opensnoop_example.txt'), expect: { attaches: true } },
  { tool: 'opensnoop', argv: ['--timestamp'], from: bcc('opensnoop.py; libbpf-tools'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['-U'], from: bcc('opensnoop.py, man, example; libbpf-tools'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['--print-uid'], from: bcc('opensnoop.py; libbpf-tools'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['-Uu', '1000'], from: bcc('opensnoop_example.txt'), expect: { traces: 'open-as-1000' } },
  { tool: 'opensnoop', argv: ['-x'], from: bcc('opensnoop.py, man, example; libbpf-tools'), expect: { traces: 'open-missing' } },
  { tool: 'opensnoop', argv: ['--failed'], from: bcc('opensnoop.py; libbpf-tools'), expect: { traces: 'open-missing' } },
  { tool: 'opensnoop', argv: ['-p', '181'], from: bcc('opensnoop.py, man; libbpf-tools'), expect: { attaches: true } },
  { tool: 'opensnoop', argv: ['--pid', '181'], from: bcc('opensnoop.py; libbpf-tools'), expect: { attaches: true } },
  { tool: 'opensnoop', argv: ['-t', '123'], from: bcc('opensnoop.py; libbpf-tools'), expect: { attaches: true } },
  { tool: 'opensnoop', argv: ['--tid', '123'], from: bcc('opensnoop.py; libbpf-tools'), expect: { attaches: true } },
  { tool: 'opensnoop', argv: ['-u', '1000'], from: bcc('opensnoop.py, man; libbpf-tools'), expect: { traces: 'open-as-1000' } },
  { tool: 'opensnoop', argv: ['--uid', '1000'], from: bcc('opensnoop.py; libbpf-tools'), expect: { traces: 'open-as-1000' } },
  { tool: 'opensnoop', argv: ['-d', '2'], from: bcc('opensnoop_example.txt'), expect: { traces: 'open' }, ends: true },
  { tool: 'opensnoop', argv: ['-d', '10'], from: bcc('opensnoop.py, man; libbpf-tools'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['--duration', '2'], from: bcc('opensnoop.py; libbpf-tools'), expect: { traces: 'open' }, ends: true },
  { tool: 'opensnoop', argv: ['-n', 'main'], from: bcc('opensnoop.py; libbpf-tools'), expect: { traces: 'open-named-main' } },
  { tool: 'opensnoop', argv: ['--name', 'main'], from: bcc('opensnoop.py; libbpf-tools'), expect: { traces: 'open-named-main' } },
  { tool: 'opensnoop', argv: ['-n', 'ed'], from: bcc('man, example'), expect: { traces: 'open-named-ed' } },
  { tool: 'opensnoop', argv: ['-e'], from: bcc('opensnoop.py, man; libbpf-tools'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['--extended_fields'], from: bcc('opensnoop.py'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['--extended-fields'], from: libbpf('opensnoop.c argp'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['-f', 'O_WRONLY', '-f', 'O_RDWR'], from: bcc('opensnoop.py, man'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['--flag_filter', 'O_WRONLY'], from: bcc('opensnoop.py'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['-e', '-f', 'O_WRONLY', '-f', 'O_RDWR'], from: bcc('opensnoop_example.txt'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['-F'], from: bcc('opensnoop.py; libbpf-tools'), expect: { traces: 'open-relative' } },
  { tool: 'opensnoop', argv: ['--full-path'], from: bcc('opensnoop.py; libbpf-tools'), expect: { traces: 'open-relative' } },
  { tool: 'opensnoop', argv: ['-b', '64'], from: bcc('opensnoop.py'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['--buffer-pages', '64'], from: bcc('opensnoop.py'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['--exec', 'touch', 'MARKER'], from: bcc('opensnoop.py (--exec ls -l /tmp)'), expect: { traces: 'open' }, ends: true, selfTracing: true },
  { tool: 'opensnoop', argv: ['--cgroupmap', 'mappath'], from: bcc('opensnoop.py'), expect: { refused: NO_MAP } },
  { tool: 'opensnoop', argv: ['--cgroupmap', '/sys/fs/bpf/test01'], from: bcc('man, example'), expect: { refused: NO_MAP } },
  { tool: 'opensnoop', argv: ['--mntnsmap', 'mappath'], from: bcc('opensnoop.py'), expect: { refused: NO_MAP } },
  { tool: 'opensnoop', argv: ['-v'], from: libbpf('opensnoop.c argp'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['-c'], from: libbpf('opensnoop.c usage (with blazesym: show calling functions)'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['--callers'], from: libbpf('opensnoop.c argp'), expect: { traces: 'open' } },
  { tool: 'opensnoop', argv: ['-h'], from: bcc('opensnoop_example.txt; libbpf-tools'), expect: { help: true } },
  ...argp('opensnoop'),

  // biolatency
  { tool: 'biolatency', argv: [], from: bcc('biolatency.py, man, example; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['1', '10'], from: bcc('biolatency.py, man; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['1', '1'], from: bcc('tests/python/test_tools_smoke.py'), expect: { traces: 'block-io' }, ends: true },
  { tool: 'biolatency', argv: ['-mT', '1'], from: bcc('biolatency.py, man; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['-mT', '1', '5'], from: bcc('biolatency_example.txt'), expect: { traces: 'block-io' }, ends: true },
  { tool: 'biolatency', argv: ['-Q'], from: bcc('biolatency.py, man, example; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['--queued'], from: bcc('biolatency.py; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['-D'], from: bcc('biolatency.py, man, example; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['--disks'], from: bcc('biolatency.py'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['--disk'], from: libbpf('biolatency.c argp (-D)'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['-F'], from: bcc('biolatency.py; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['--flags'], from: bcc('biolatency.py'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['--flag'], from: libbpf('biolatency.c argp'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['-Fm'], from: bcc('biolatency_example.txt'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['-m'], from: bcc('biolatency.py; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['--milliseconds'], from: bcc('biolatency.py; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['-T', '1'], from: bcc('biolatency.py; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['--timestamp', '1'], from: bcc('biolatency.py; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['-e'], from: bcc('biolatency.py, man'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['--extension'], from: bcc('biolatency.py'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['-j'], from: bcc('biolatency.py, man'), expect: { traces: 'block-io' }, silent: true },
  { tool: 'biolatency', argv: ['--json'], from: bcc('biolatency.py'), expect: { traces: 'block-io' }, silent: true },
  { tool: 'biolatency', argv: ['-jF'], from: bcc('biolatency_example.txt'), expect: { traces: 'block-io' }, silent: true },
  { tool: 'biolatency', argv: ['-jD'], from: bcc('biolatency_example.txt'), expect: { traces: 'block-io' }, silent: true },
  { tool: 'biolatency', argv: ['-jm'], from: bcc('biolatency_example.txt'), expect: { traces: 'block-io' }, silent: true },
  { tool: 'biolatency', argv: ['-d', 'sdc'], from: bcc('biolatency.py; libbpf-tools'), expect: { refused: NO_DISK } },
  { tool: 'biolatency', argv: ['--disk', 'sdc'], from: bcc('biolatency.py'), expect: { refused: NO_DISK } },
  { tool: 'biolatency', argv: ['-c', 'CG'], from: libbpf('biolatency.c usage'), expect: { refused: NO_CGROUP } },
  { tool: 'biolatency', argv: ['-v'], from: libbpf('biolatency.c argp'), expect: { traces: 'block-io' } },
  { tool: 'biolatency', argv: ['-h'], from: bcc('biolatency_example.txt'), expect: { help: true } },
  { tool: 'biolatency', argv: ['--help'], from: libbpf('biolatency.c usage'), expect: { help: true } },
  ...argp('biolatency'),

  // biosnoop
  { tool: 'biosnoop', argv: [], from: bcc('biosnoop.py, man, example, smoke test; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biosnoop', argv: ['-Q'], from: bcc('biosnoop.py, man; libbpf-tools'), expect: { traces: 'block-io' } },
  { tool: 'biosnoop', argv: ['--queue'], from: bcc('biosnoop.py'), expect: { traces: 'block-io' } },
  { tool: 'biosnoop', argv: ['--queued'], from: libbpf('biosnoop.c argp'), expect: { traces: 'block-io' } },
  { tool: 'biosnoop', argv: ['-P'], from: bcc('biosnoop.py, man'), expect: { traces: 'block-io' } },
  { tool: 'biosnoop', argv: ['--pattern'], from: bcc('biosnoop.py'), expect: { traces: 'block-io' } },
  { tool: 'biosnoop', argv: ['-t'], from: libbpf('biosnoop.c usage'), expect: { traces: 'block-io' } },
  { tool: 'biosnoop', argv: ['--timestamp'], from: libbpf('biosnoop.c argp'), expect: { traces: 'block-io' } },
  { tool: 'biosnoop', argv: ['3'], from: libbpf('biosnoop.c usage (biosnoop 10)'), expect: { traces: 'block-io' }, ends: true },
  { tool: 'biosnoop', argv: ['-m', '1'], from: libbpf('biosnoop.c usage'), expect: { attaches: true } },
  { tool: 'biosnoop', argv: ['--min', '1'], from: libbpf('biosnoop.c argp'), expect: { attaches: true } },
  { tool: 'biosnoop', argv: ['-d', 'sdc'], from: bcc('biosnoop.py; libbpf-tools'), expect: { refused: NO_DISK } },
  { tool: 'biosnoop', argv: ['--disk', 'sdc'], from: bcc('biosnoop.py; libbpf-tools'), expect: { refused: NO_DISK } },
  { tool: 'biosnoop', argv: ['-c', 'CG'], from: libbpf('biosnoop.c usage'), expect: { refused: NO_CGROUP } },
  { tool: 'biosnoop', argv: ['-v'], from: libbpf('biosnoop.c argp'), expect: { traces: 'block-io' } },
  { tool: 'biosnoop', argv: ['-h'], from: bcc('argparse; libbpf-tools'), expect: { help: true } },
  { tool: 'biosnoop', argv: ['--help'], from: libbpf('biosnoop.c usage'), expect: { help: true } },
  ...argp('biosnoop'),

  // ext4slower (libbpf-tools: fsslower -t ext4). A threshold above 0 is shown a 100 ms write.
  { tool: 'ext4slower', argv: [], from: bcc('ext4slower.py, man, example, smoke test'), expect: { traces: 'ext4-slow-write' } },
  { tool: 'ext4slower', argv: ['1'], from: bcc('ext4slower.py, man, example'), expect: { traces: 'ext4-slow-write' } },
  { tool: 'ext4slower', argv: ['0'], from: bcc('ext4slower.py, man, example'), expect: { traces: 'ext4-write' } },
  { tool: 'ext4slower', argv: ['-j', '1'], from: bcc('ext4slower.py, man, example'), expect: { traces: 'ext4-slow-write' } },
  { tool: 'ext4slower', argv: ['-j', '0'], from: bcc('ext4slower.py (-j, --csv)'), expect: { traces: 'ext4-write' } },
  // bcc's --csv is its -j; ours is libbpf-tools' (-c), as fsslower(8) says: CSV either way
  { tool: 'ext4slower', argv: ['--csv', '1'], from: bcc('ext4slower.py (-j, --csv)'), expect: { traces: 'ext4-slow-write' } },
  { tool: 'ext4slower', argv: ['-p', '185'], from: bcc('ext4slower.py'), expect: { attaches: true } },
  { tool: 'ext4slower', argv: ['-p', '181', '1'], from: bcc('man/man8/ext4slower.8'), expect: { attaches: true } },
  { tool: 'ext4slower', argv: ['--pid', '1216'], from: libbpf('fsslower.c usage'), expect: { attaches: true } },
  { tool: 'ext4slower', argv: ['-m', '0'], from: libbpf('fsslower.c argp'), expect: { traces: 'ext4-write' } },
  { tool: 'ext4slower', argv: ['--min', '0'], from: libbpf('fsslower.c argp'), expect: { traces: 'ext4-write' } },
  { tool: 'ext4slower', argv: ['-c', '-d', '1'], from: libbpf('fsslower.c usage'), expect: { attaches: true }, ends: true },
  { tool: 'ext4slower', argv: ['--csv', '--duration', '1'], from: libbpf('fsslower.c argp'), expect: { attaches: true }, ends: true },
  { tool: 'ext4slower', argv: ['-v', '0'], from: libbpf('fsslower.c argp'), expect: { traces: 'ext4-write' } },
  { tool: 'ext4slower', argv: ['-h'], from: bcc('ext4slower_example.txt'), expect: { help: true } },

  // fsslower and its other names (libbpf-tools fsslower.c and its Makefile's names; bcc xfsslower.py, btrfsslower.py, nfsslower.py)
  { tool: 'fsslower', argv: ['-t', 'ext4'], from: libbpf('fsslower.c usage'), expect: { traces: 'ext4-slow-write' } },
  { tool: 'fsslower', argv: ['-t', 'nfs', '-p', '1216'], from: libbpf('fsslower.c usage'), expect: { attaches: true } },
  { tool: 'fsslower', argv: ['-t', 'xfs', '-c', '-d', '1'], from: libbpf('fsslower.c usage'), expect: { attaches: true }, ends: true },
  { tool: 'fsslower', argv: ['--type', 'ext4', '--min', '0'], from: libbpf('fsslower.c argp'), expect: { traces: 'ext4-write' } },
  { tool: 'fsslower', argv: ['-t', 'btrfs'], from: libbpf('fsslower.c argp (-t btrfs/ext4/fuse/nfs/xfs/f2fs/bcachefs/zfs)'), expect: { traces: 'btrfs-slow-write' } },
  { tool: 'fsslower', argv: ['-t', 'xfs', '0'], from: libbpf('fsslower.c argp (-t)'), expect: { traces: 'xfs-write' } },
  { tool: 'fsslower', argv: ['-t', 'fuse'], from: libbpf('fsslower.c argp (-t)'), expect: { traces: 'fuse-slow-write' } },
  // libbpf-tools takes these three; here they are refused as untested (REFUSED_FILE_SYSTEMS in tools/fsslower.ts)
  { tool: 'fsslower', argv: ['-t', 'f2fs'], from: libbpf('fsslower.c argp (-t); refused here, not there'), expect: { refused: /^fsslower: -t f2fs: refused as untested .*no f2fs/ } },
  { tool: 'fsslower', argv: ['-t', 'bcachefs'], from: libbpf('fsslower.c argp (-t); refused here, not there'), expect: { refused: /^fsslower: -t bcachefs: refused as untested .*mainline/ } },
  { tool: 'fsslower', argv: ['-t', 'zfs'], from: libbpf('fsslower.c argp (-t); refused here, not there'), expect: { refused: /^fsslower: -t zfs: refused as untested .*out-of-tree/ } },
  { tool: 'fsslower', argv: [], from: libbpf('fsslower.c ("filesystem must be specified using -t option")'), expect: { refused: /-t|--type|file system/ } },
  { tool: 'fsslower', argv: ['-h'], from: libbpf('fsslower.c usage'), expect: { help: true } },
  ...argp('fsslower'),
  { tool: 'fuseslower', argv: [], from: libbpf('Makefile (FSSLOWER_ALIASES)'), expect: { traces: 'fuse-slow-write' } },
  { tool: 'xfsslower', argv: [], from: bcc('xfsslower.py, man, example'), expect: { traces: 'xfs-slow-write' } },
  { tool: 'xfsslower', argv: ['1'], from: bcc('xfsslower.py, man, example'), expect: { traces: 'xfs-slow-write' } },
  { tool: 'xfsslower', argv: ['0'], from: bcc('xfsslower.py, man, example'), expect: { traces: 'xfs-write' } },
  { tool: 'xfsslower', argv: ['-j', '1'], from: bcc('xfsslower.py, man, example'), expect: { traces: 'xfs-slow-write' } },
  { tool: 'xfsslower', argv: ['--csv', '1'], from: bcc('xfsslower.py (-j, --csv)'), expect: { traces: 'xfs-slow-write' } },
  { tool: 'xfsslower', argv: ['-p', '185'], from: bcc('xfsslower.py'), expect: { attaches: true } },
  { tool: 'xfsslower', argv: ['--pid', '185'], from: bcc('xfsslower.py'), expect: { attaches: true } },
  { tool: 'xfsslower', argv: ['-p', '181', '1'], from: bcc('man/man8/xfsslower.8'), expect: { attaches: true } },
  { tool: 'xfsslower', argv: ['-h'], from: bcc('xfsslower_example.txt'), expect: { help: true } },
  { tool: 'btrfsslower', argv: [], from: bcc('btrfsslower.py, man, example, smoke test'), expect: { traces: 'btrfs-slow-write' } },
  { tool: 'btrfsslower', argv: ['1'], from: bcc('btrfsslower.py, man, example'), expect: { traces: 'btrfs-slow-write' } },
  { tool: 'btrfsslower', argv: ['0'], from: bcc('btrfsslower.py, man, example'), expect: { traces: 'btrfs-write' } },
  { tool: 'btrfsslower', argv: ['-j', '1'], from: bcc('btrfsslower.py, man, example'), expect: { traces: 'btrfs-slow-write' } },
  { tool: 'btrfsslower', argv: ['--csv', '1'], from: bcc('btrfsslower.py (-j, --csv)'), expect: { traces: 'btrfs-slow-write' } },
  { tool: 'btrfsslower', argv: ['-p', '185'], from: bcc('btrfsslower.py, example'), expect: { attaches: true } },
  { tool: 'btrfsslower', argv: ['--pid', '185'], from: bcc('btrfsslower.py'), expect: { attaches: true } },
  { tool: 'btrfsslower', argv: ['-p', '181', '1'], from: bcc('man/man8/btrfsslower.8'), expect: { attaches: true } },
  { tool: 'btrfsslower', argv: ['-d', '10'], from: bcc('btrfsslower.py, man, example'), expect: { traces: 'btrfs-slow-write' } },
  { tool: 'btrfsslower', argv: ['--duration', '10'], from: bcc('btrfsslower.py'), expect: { traces: 'btrfs-slow-write' } },
  { tool: 'btrfsslower', argv: ['-h'], from: bcc('btrfsslower_example.txt'), expect: { help: true } },
  // No NFS client in this kernel (see fsslower(8), TESTING): every nfsslower line can only attach
  { tool: 'nfsslower', argv: [], from: bcc('nfsslower.py, man, example, smoke test'), expect: { attaches: true } },
  { tool: 'nfsslower', argv: ['1'], from: bcc('nfsslower.py, man, example'), expect: { attaches: true } },
  { tool: 'nfsslower', argv: ['0'], from: bcc('nfsslower.py, man, example'), expect: { attaches: true } },
  { tool: 'nfsslower', argv: ['-j', '1'], from: bcc('nfsslower.py, man, example'), expect: { attaches: true } },
  { tool: 'nfsslower', argv: ['-j', '0'], from: bcc('nfsslower_example.txt'), expect: { attaches: true } },
  { tool: 'nfsslower', argv: ['--csv', '1'], from: bcc('nfsslower.py (-j, --csv)'), expect: { attaches: true } },
  { tool: 'nfsslower', argv: ['-p', '121'], from: bcc('nfsslower.py, example'), expect: { attaches: true } },
  { tool: 'nfsslower', argv: ['--pid', '121'], from: bcc('nfsslower.py'), expect: { attaches: true } },
  { tool: 'nfsslower', argv: ['-p', '181', '1'], from: bcc('man/man8/nfsslower.8'), expect: { attaches: true } },
  { tool: 'nfsslower', argv: ['-h'], from: bcc('nfsslower_example.txt (usage)'), expect: { help: true } },
];
