// `npm run bench`: our tools against Debian's C tools (libbpf-tools in
// /usr/sbin), side by side in the same run, written to bench/RESULTS.md.
// Run as root. Our tools are included as they appear in the tree
// (tools/<tool>.ts and bpf/<tool>.bpf.o), so the benchmark works at every
// stage of the port.
import { spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { cpus, release, tmpdir } from 'node:os';
import { commandLine, integerOption, packageVersion, parseCommandLine, runMain } from '../common/cli.js';
import { invalidValue, quoted, RuntimeError } from '../common/errors.js';
import { ensureTracefs } from '../common/preflight.js';
import { GUEST_CLOCKS, type GuestClock, guestReport, type GuestSettings } from './guest.js';
import { latencyReport, measureLatency } from './latency.js';
import { enableBpfStats, oursAvailable, ROOT, running } from './measure.js';
import { measureNodes, nodesReport } from './nodes.js';
import { measureReady, readyReport } from './ready.js';
import { execStorm, measureStorm, openStorm, stormReport } from './storms.js';

const TOOLS = ['execsnoop', 'opensnoop', 'biolatency', 'biosnoop', 'ext4slower'];
const SECTIONS = ['ready', 'nodes', 'open', 'exec', 'latency', 'guest'];

const USAGE = `Benchmark ebpf-tools against Debian's libbpf-tools (run as root)

USAGE: npm run bench -- [--opens N] [--execs N] [--rounds N] [--storm-rounds N] [--markers N]
                        [--sections LIST] [--nodes LIST] [--guest KERNEL] [--guest-rounds N]
                        [--guest-opens N] [--guest-clock CLOCK] [--output FILE]

Every option can also be given as BENCH_<OPTION> in the environment (BENCH_OPENS=100000).`;

const EXAMPLES = `    npm run bench                                # everything, written to bench/RESULTS.md
    npm run bench -- --opens 100000 --rounds 3   # a quicker run
    npm run bench -- --sections ready,latency    # only time to ready and pipe latency
    npm run bench -- --sections guest --guest 5.10  # only the guest section, on 5.10`;

interface Options {
  opens: number;
  execs: number;
  rounds: number;
  stormRounds: number;
  markers: number;
  sections: Set<string>;
  nodes: string[];
  guest: GuestSettings;
  output: string;
}

function parseOptions(argv: string[]): Options {
  const args = parseCommandLine(commandLine('bench', USAGE, EXAMPLES)
    .env('BENCH')
    .options({
      opens: { type: 'string', default: '500000', requiresArg: true, description: 'opens made by each open storm' },
      execs: { type: 'string', default: '2000', requiresArg: true, description: 'execs made by each exec storm' },
      rounds: { type: 'string', default: '7', requiresArg: true, description: 'rounds of the time-to-ready measurement' },
      'storm-rounds': { type: 'string', default: '3', requiresArg: true, description: 'rounds of each storm (untraced, ours, C)' },
      markers: { type: 'string', default: '10', requiresArg: true, description: 'marker execs of the pipe latency measurement' },
      sections: { type: 'string', default: SECTIONS.join(','), requiresArg: true, description: `which measurements to make, of ${SECTIONS.join(',')}` },
      nodes: { type: 'string', default: '22,24', requiresArg: true, description: 'Node majors to measure ready time and memory under besides this one (official binaries, installed with npm), or none' },
      guest: { type: 'string', default: '6.1', requiresArg: true, description: 'the kernel of the guest section (scripts/vm-run: 5.10, 6.1, 6.12, 7 or a release), one before 6.16' },
      'guest-rounds': { type: 'string', default: '3', requiresArg: true, description: 'rounds of the guest section' },
      'guest-opens': { type: 'string', default: '50000', requiresArg: true, description: 'opens made by each open storm of the guest section' },
      'guest-clock': { type: 'string', default: 'instructions', requiresArg: true, description: "the guest's clock: instructions (counted, 8 ns each, its waits in real time: the same times whatever this machine is doing) or real (this machine's)" },
      output: { type: 'string', default: `${ROOT}bench/RESULTS.md`, requiresArg: true, description: 'where to write the results' },
    }), argv);
  const sections = new Set(String(args.sections).split(',').map((s) => s.trim()).filter(Boolean));
  const output = String(args.output);
  // checked before the minutes of measuring, not found when writing at the end
  try {
    accessSync(dirname(output), fsConstants.W_OK);
  } catch {
    throw invalidValue('--output', output, `${quoted(dirname(output))} is not a directory this user can write in`);
  }
  for (const s of sections) if (!SECTIONS.includes(s)) throw invalidValue('--sections', args.sections, `${quoted(s)} is not one of ${SECTIONS.join(',')}`);
  return {
    opens: integerOption('--opens', args.opens, 1, 100_000_000),
    execs: integerOption('--execs', args.execs, 1, 1_000_000),
    rounds: integerOption('--rounds', args.rounds, 1, 1000),
    stormRounds: integerOption('--storm-rounds', args.stormRounds, 1, 1000),
    markers: integerOption('--markers', args.markers, 1, 1000),
    sections,
    nodes: args.nodes === 'none' ? [] : String(args.nodes).split(',').map((s) => s.trim()).filter(Boolean),
    guest: {
      kernel: guestKernel(String(args.guest)),
      rounds: integerOption('--guest-rounds', args.guestRounds, 1, 1000),
      opens: integerOption('--guest-opens', args.guestOpens, 1, 100_000_000),
      clock: guestClock(String(args.guestClock)),
    },
    output,
  };
}

function guestClock(clock: string): GuestClock {
  if (!(GUEST_CLOCKS as readonly string[]).includes(clock)) throw invalidValue('--guest-clock', clock, `expected ${GUEST_CLOCKS.join(' or ')}`);
  return clock as GuestClock;
}

/** --guest: a kernel scripts/vm-run boots, and one before 6.16 (whose BTF cannot be mmapped: what the section is for). */
function guestKernel(kernel: string): string {
  const [major, minor] = kernel.split(/[.-]/).map(Number);
  if (!/^[0-9][0-9A-Za-z.+~-]*$/.test(kernel) || !Number.isInteger(major)) throw invalidValue('--guest', kernel, 'expected a kernel such as 5.10, 6.1, 6.12 or 6.1.0-41');
  if (major > 6 || (major === 6 && (minor ?? 0) >= 16)) throw invalidValue('--guest', kernel, 'the guest section is for a kernel before 6.16');
  return kernel;
}

function commandOutput(command: string, args: string[]): string | undefined {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const debianVersion = (pkg: string): string => commandOutput('dpkg-query', ['-W', '-f', '${Version}', pkg]) ?? 'not installed (or not Debian)';

function environment(options: Options): string {
  const cpuList = cpus();
  const head = commandOutput('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']) ?? 'unknown';
  const dirty = commandOutput('git', ['-C', ROOT, 'status', '--porcelain']) ? ' + uncommitted changes' : '';
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return [
    '# ebpf-tools benchmark',
    '',
    `- date: ${new Date().toISOString()}`,
    `- kernel: ${release()}`,
    `- CPU: ${cpuList[0]?.model ?? 'unknown'} × ${cpuList.length}`,
    `- node: ${process.version}`,
    `- libbpf (libbpf1): ${debianVersion('libbpf1')}`,
    `- C tools (libbpf-tools): ${debianVersion('libbpf-tools')}`,
    `- bpftool: ${debianVersion('bpftool')}`,
    `- ebpf-tools: ${packageVersion()} (${head}${dirty})`,
    `- our tools in the tree: ${TOOLS.filter(oursAvailable).join(', ') || 'none'}`,
    `- load average at start: ${loadavg} (a shared machine: figures are medians, comparisons are per-round ratios)`,
    `- settings: --opens ${options.opens} --execs ${options.execs} --rounds ${options.rounds} --storm-rounds ${options.stormRounds} --markers ${options.markers}${options.sections.has('guest') ? ` --guest ${options.guest.kernel} --guest-rounds ${options.guest.rounds} --guest-opens ${options.guest.opens} --guest-clock ${options.guest.clock}` : ''}`,
    '',
    'Reproduce: `npm run bench` as root (options: `npm run bench -- --help`).',
  ].join('\n');
}

function buildStorm(workDir: string): string {
  const binary = `${workDir}/storm`;
  const r = spawnSync('cc', ['-O2', '-Wall', '-o', binary, `${ROOT}bench/storm.c`], { encoding: 'utf8' });
  if (r.status !== 0) throw new RuntimeError(`cannot compile bench/storm.c with cc: ${(r.stderr || String(r.error)).trim()}`);
  return binary;
}

async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  if (process.getuid?.() !== 0) throw new RuntimeError('must be run as root: the tools load BPF programs');
  ensureTracefs();
  const startedAt = Date.now();
  const progress = (text: string): void => {
    process.stderr.write(`[${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)} s] ${text}\n`);
  };
  const workDir = mkdtempSync(`${tmpdir()}/ebpf-tools-bench-`);
  let restoreStats: (() => void) | undefined;
  const cleanUp = (): void => {
    for (const child of running) child.kill('SIGINT');
    restoreStats?.();
    rmSync(workDir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      cleanUp();
      process.exit(130);
    });
  }

  const parts = [environment(options)];
  const emit = (markdown: string): void => {
    parts.push(markdown);
    process.stdout.write(`\n${markdown}\n`);
  };
  try {
    if (options.sections.has('ready')) {
      emit(readyReport(await measureReady(TOOLS, options.rounds, progress), options.rounds));
    }
    if (options.sections.has('nodes')) {
      const target = `${workDir}/target`;
      writeFileSync(target, '');
      const storm = oursAvailable('opensnoop') ? { kind: openStorm(options.opens, target), bin: buildStorm(workDir), workDir } : undefined;
      emit(nodesReport(await measureNodes(TOOLS, options.nodes, options.rounds, storm, progress), options.rounds, storm ? options.opens : undefined));
    }
    if (options.sections.has('open') || options.sections.has('exec')) {
      const stormBin = buildStorm(workDir);
      restoreStats = enableBpfStats();
      emit('Storms (sections 2a and 2b) run with `kernel.bpf_stats_enabled=1`, which adds the same per-program timing cost to ours and the C tool; it is restored afterwards. Sections 3 (CPU per event), 4 (memory) and 5 (in-kernel cost) are rows of the storm tables.');
      if (options.sections.has('open')) {
        const title = `${options.opens} opens (open+close of one file)`;
        if (oursAvailable('opensnoop')) {
          const target = `${workDir}/target`;
          writeFileSync(target, '');
          emit(stormReport(await measureStorm(openStorm(options.opens, target), stormBin, workDir, options.stormRounds, progress), '2a', title));
        } else {
          emit(`## 2a. Event storm: ${title}, opensnoop\n\nSkipped: our opensnoop is not in the tree yet (tools/opensnoop.ts and bpf/opensnoop.bpf.o).`);
        }
      }
      if (options.sections.has('exec')) {
        const title = `${options.execs} execs (fork, exec /bin/true, wait)`;
        emit(stormReport(await measureStorm(execStorm(options.execs), stormBin, workDir, options.stormRounds, progress), '2b', title));
      }
      restoreStats();
    }
    if (options.sections.has('latency')) {
      progress('pipe latency');
      emit(latencyReport(await measureLatency(options.markers, 5000), options.markers));
    }
    if (options.sections.has('guest')) emit(await guestReport(options.guest, progress));
  } finally {
    cleanUp();
  }
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  parts.push(`Load average at the end: ${loadavg}; the whole run took ${((Date.now() - startedAt) / 1000).toFixed(0)} s.`);
  writeFileSync(options.output, `${parts.join('\n\n')}\n`);
  progress(`written to ${options.output}`);
}

runMain('bench', () => main(process.argv.slice(2)));
