// `npm run soak`: each tool traces a steady, moderate load for minutes while
// its memory and its events are watched. Goals: RSS stays flat after
// warm-up, events never stop arriving, and every event the load made is
// either printed or reported lost. Run as root; written to bench/SOAK.md.
// Not part of `npm test` (it takes minutes).
//
// The load's events carry sequence numbers the tool's JSON shows (an exec's
// argument, an opened path, an ext4 file name, a block I/O's sector), so the
// soak knows exactly which events arrived; where a tool has a process
// filter, it sees only the soak's events, so its load is steady and known on
// a shared machine. The tools run one after another, so that a stall, a
// loss or a growth is pinned on one tool, and five tracers and five loads do
// not share this machine's 2 CPUs (biosnoop and biolatency would also count
// each other's I/O).
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync, constants, fsyncSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statfsSync, statSync,
  unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { cpus, release } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { commandLine, integerOption, packageVersion, parseCommandLine, runMain } from '../common/cli.js';
import { blockDevices, mkdev } from '../common/disks.js';
import { invalidValue, quoted, RuntimeError } from '../common/errors.js';
import { ensureTracefs } from '../common/preflight.js';
import {
  bpfProgramStats, nowMs, ours, oursAvailable, programNames, residentKiB, ROOT, running, start, stop, waitUntil,
} from './measure.js';
import { fixed, median, table } from './stats.js';
import { LOSS_LINE } from './storms.js';

const TOOLS = ['execsnoop', 'opensnoop', 'biolatency', 'biosnoop', 'ext4slower'];

/** Warm-up: the first 20% of the samples (at least one), while V8 compiles the hot paths and sizes its heap. */
const WARM_UP_FRACTION = 0.2;
/**
 * RSS after warm-up and at the end are each the median of up to this many
 * samples, so that one sample taken at the top of a GC sawtooth does not
 * decide the verdict.
 */
const RSS_WINDOW = 3;
/**
 * Flat: RSS grew by less than both of these from after warm-up to the end.
 * A Node tool sits at 70-100 MiB, and V8 moves its heap limits by a few MiB
 * as it adapts to the allocation rate without anything leaking; 8 MiB (about
 * 10%) is above that noise, and a leak of even 1 KiB per event at these
 * rates (20-50 events/s) passes it within the run.
 */
const FLAT_GROWTH_MIB = 8;
const FLAT_GROWTH_FRACTION = 0.1;

const READY_TIMEOUT_MS = 30000;
const PROBE_EVERY_MS = 200;
/** After the load stops, how long its last events may take to arrive. */
const DRAIN_TIMEOUT_MS = 5000;
/** After the tool exits, how long the kernel may take to free its programs. */
const UNLOAD_TIMEOUT_MS = 2000;
const HISTOGRAM_INTERVAL_S = 1;
const MISSING_SHOWN = 10;
const BLOCK = 4096;
const EXT4_SUPER_MAGIC = 0xef53;

const USAGE = `Soak test: each tool traces a steady load for minutes; RSS must stay flat, events keep arriving (run as root)

USAGE: npm run soak -- [--tools LIST] [--minutes N] [--sample-seconds S] [--output FILE]`;

const EXAMPLES = `    npm run soak                                   # all five tools, 5 minutes each, to bench/SOAK.md
    npm run soak -- --minutes 1                    # a quick run
    npm run soak -- --tools execsnoop,opensnoop    # only these tools`;

interface Options {
  tools: string[];
  minutes: number;
  sampleSeconds: number;
  output: string;
}

function parseOptions(argv: string[]): Options {
  const args = parseCommandLine(commandLine('soak', USAGE, EXAMPLES)
    .options({
      tools: { type: 'string', default: TOOLS.join(','), requiresArg: true, description: `the tools to soak, of ${TOOLS.join(',')}` },
      minutes: { type: 'string', default: '5', requiresArg: true, description: 'minutes of load for each tool' },
      'sample-seconds': { type: 'string', default: '10', requiresArg: true, description: 'seconds between samples of RSS and arrivals' },
      output: { type: 'string', default: `${ROOT}bench/SOAK.md`, requiresArg: true, description: 'where to write the report' },
    }), argv);
  const tools = [...new Set(String(args.tools).split(',').map((t) => t.trim()).filter(Boolean))];
  if (tools.length === 0) throw invalidValue('--tools', args.tools, `expected some of ${TOOLS.join(',')}`);
  for (const t of tools) if (!TOOLS.includes(t)) throw invalidValue('--tools', args.tools, `${quoted(t)} is not one of ${TOOLS.join(',')}`);
  const minutes = integerOption('--minutes', args.minutes, 1, 1440);
  const sampleSeconds = integerOption('--sample-seconds', args.sampleSeconds, 1, 3600);
  if (sampleSeconds * 2 > minutes * 60) {
    throw invalidValue('--sample-seconds', args.sampleSeconds, `expected at most half of --minutes (${minutes * 30} s), for two samples at least`);
  }
  return { tools, minutes, sampleSeconds, output: String(args.output) };
}

/** One event the load made: its sequence number and which of its parts (ext4slower's O, W, R, S). */
interface Marker {
  seq: number;
  part: string;
}

type Event = Record<string, unknown>;

/** A steady load whose events the soak can tell apart, one marker at a time. */
interface Load {
  /** what one marker is, for the report */
  what: string;
  /** markers made per second */
  rate: number;
  /** the events marker `seq` makes */
  parts(seq: number): string[];
  /** makes room for `markers` markers */
  setUp(markers: number): void;
  /** makes an event that says only that the tool is attached */
  probe(): void;
  make(seq: number): void;
  /** which marker (or probe) an event of the tool's JSON is, if any */
  identify(event: Event): Marker | 'probe' | undefined;
  tearDown(): void;
  /** what went wrong making markers (the load's own failures, not the tool's) */
  failures: string[];
}

/** `prefix<seq>` → seq, `prefix`probe → 'probe'. */
function markerName(name: unknown, prefix: string): number | 'probe' | undefined {
  if (typeof name !== 'string' || !name.startsWith(prefix)) return undefined;
  const rest = name.slice(prefix.length);
  if (rest === 'probe') return 'probe';
  return /^\d+$/.test(rest) ? Number(rest) : undefined;
}

function asMarker(seq: number | 'probe' | undefined, part: string): Marker | 'probe' | undefined {
  return seq === undefined || seq === 'probe' ? seq : { seq, part };
}

/** execsnoop: `/bin/true soak-<pid>-<seq>`, each a fork and exec. */
function execLoad(): Load {
  const prefix = `soak-${process.pid}-`;
  const failures: string[] = [];
  const run = (argument: string): void => {
    const child = spawn('/bin/true', [argument], { stdio: 'ignore' });
    child.on('error', (err) => failures.push(`${argument}: ${err.message}`));
    child.on('exit', (code, signal) => (code !== 0 ? failures.push(`${argument}: exit ${code ?? signal}`) : undefined));
  };
  return {
    what: `an exec of \`/bin/true ${prefix}<n>\``,
    rate: 20,
    parts: () => ['exec'],
    setUp: () => undefined,
    probe: () => run(`${prefix}probe`),
    make: (seq) => run(`${prefix}${seq}`),
    identify: (e) => (Array.isArray(e.args) && e.args[0] === '/bin/true' ? asMarker(markerName(e.args[1], prefix), 'exec') : undefined),
    tearDown: () => undefined,
    failures,
  };
}

/** opensnoop: an open of `<dir>/soak-open-<seq>`, which does not exist (the failed open is traced too). */
function openLoad(dir: string): Load {
  const prefix = `${dir}/soak-open-`;
  const failures: string[] = [];
  const open = (path: string): void => {
    try {
      closeSync(openSync(path, 'r'));
      failures.push(`${path}: exists`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failures.push(`${path}: ${(err as Error).message}`);
    }
  };
  return {
    what: `an open of \`${prefix}<n>\` (absent: ENOENT) by the soak process`,
    rate: 50,
    parts: () => ['open'],
    setUp: () => undefined,
    probe: () => open(`${prefix}probe`),
    make: (seq) => open(`${prefix}${seq}`),
    identify: (e) => (e.pid === process.pid ? asMarker(markerName(e.path, prefix), 'open') : undefined),
    tearDown: () => undefined,
    failures,
  };
}

/** ext4slower 0: create `soak-ext4-<seq>`, write 4 KiB, read it back, fsync, close, unlink. */
function ext4Load(dir: string): Load {
  const prefix = 'soak-ext4-';
  const data = Buffer.alloc(BLOCK, 0x5a);
  const failures: string[] = [];
  const cycle = (name: string): void => {
    const path = `${dir}/${name}`;
    try {
      const fd = openSync(path, 'w+');
      try {
        writeSync(fd, data, 0, BLOCK, 0);
        readSync(fd, data, 0, BLOCK, 0);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
        unlinkSync(path);
      }
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
    }
  };
  return {
    what: `open (create) + 4 KiB write + 4 KiB read + fsync of \`${dir}/${prefix}<n>\` on ext4, then close and unlink: events O, W, R, S`,
    rate: 10,
    parts: () => ['O', 'W', 'R', 'S'],
    setUp: () => undefined,
    probe: () => cycle(`${prefix}probe`),
    make: (seq) => cycle(`${prefix}${seq}`),
    identify: (e) => (e.pid === process.pid && typeof e.type === 'string' ? asMarker(markerName(e.file, prefix), e.type) : undefined),
    tearDown: () => undefined,
    failures,
  };
}

/** The disk (as biosnoop names it) holding `path`, and the first sector of its partition on that disk. */
function diskOf(path: string): { disk: string; startSector: number } {
  const dev = statSync(path).dev;
  // Userspace dev_t: minor in bits 0-7 and 20-31, major in bits 8-19 (and above 32).
  const major = Math.floor(dev / 256) % 4096 + Math.floor(dev / 2 ** 32) * 4096;
  const minor = (dev % 256) + (Math.floor(dev / 2 ** 20) % 4096) * 256;
  const device = blockDevices().find((d) => d.dev === mkdev(major, minor));
  if (!device) throw new RuntimeError(`${path} is on ${major}:${minor}, not a block device (biosnoop needs a disk)`);
  if (device.disk === undefined) return { disk: device.name, startSector: 0 };
  return { disk: device.disk, startSector: Number(readFileSync(`/sys/class/block/${device.name}/start`, 'utf8')) };
}

/**
 * Where each 4 KiB block of `path` is on its disk, by first sector
 * (filefrag's extents in 512-byte units, plus the partition's start).
 */
function blockSectors(path: string, blocks: number): Map<number, number> {
  const r = spawnSync('filefrag', ['-v', '-b512', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new RuntimeError(`filefrag -v ${path} failed: ${(r.stderr || String(r.error)).trim()}`);
  if (r.stdout.includes('unwritten')) throw new RuntimeError(`${path} still has unwritten extents: its I/O would not be plain overwrites`);
  const { startSector } = diskOf(path);
  const sectorToBlock = new Map<number, number>();
  const sectorsPerBlock = BLOCK / 512;
  for (const line of r.stdout.split('\n')) {
    const extent = /^\s*\d+:\s*(\d+)\.\.\s*(\d+):\s*(\d+)\.\./.exec(line);
    if (!extent) continue;
    const [first, last, physical] = extent.slice(1).map(Number);
    for (let logical = first; logical <= last; logical += sectorsPerBlock) {
      sectorToBlock.set(startSector + physical + logical - first, logical / sectorsPerBlock);
    }
  }
  if (sectorToBlock.size < blocks) throw new RuntimeError(`filefrag shows ${sectorToBlock.size} of the ${blocks} blocks of ${path}`);
  return sectorToBlock;
}

/**
 * biosnoop and biolatency: 4 KiB O_DIRECT I/O on a file of the root ext4
 * file system, written in full beforehand (so each is a plain overwrite or
 * read: one request, no metadata): marker n writes (n even) or reads (n odd)
 * block n+1; the probe reads block 0. The event's sector tells the block.
 */
function blockLoad(dir: string): Load {
  const path = `${dir}/soak-block`;
  // O_DIRECT wants memory aligned to the disk's sectors; a WebAssembly memory is page-aligned.
  const memory = new Uint8Array(new WebAssembly.Memory({ initial: 16 }).buffer);
  const block = memory.subarray(0, BLOCK);
  const failures: string[] = [];
  let fd = -1;
  let disk = '';
  let sectorToBlock = new Map<number, number>();
  const io = (seq: number | 'probe'): void => {
    const index = seq === 'probe' ? 0 : seq + 1;
    try {
      if (seq !== 'probe' && seq % 2 === 0) writeSync(fd, block, 0, BLOCK, index * BLOCK);
      else readSync(fd, block, 0, BLOCK, index * BLOCK);
    } catch (err) {
      failures.push(`block ${index}: ${(err as Error).message}`);
    }
  };
  return {
    what: `a 4 KiB O_DIRECT write (even n) or read (odd n) of block n+1 of \`${path}\`, found by its sector`,
    rate: 20,
    parts: (seq) => [seq % 2 === 0 ? 'W' : 'R'],
    setUp: (markers) => {
      const blocks = markers + 1;
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_DIRECT);
      memory.fill(0x5a);
      for (let offset = 0; offset < blocks * BLOCK; offset += memory.length) {
        writeSync(fd, memory, 0, Math.min(memory.length, blocks * BLOCK - offset), offset);
      }
      fsyncSync(fd);
      disk = diskOf(path).disk;
      sectorToBlock = blockSectors(path, blocks);
    },
    probe: () => io('probe'),
    make: (seq) => io(seq),
    identify: (e) => {
      if (e.disk !== disk || typeof e.sector !== 'number' || typeof e.bytes !== 'number') return undefined;
      // The first of the file's blocks the request covers: a request of another size is shown as unexpected.
      let index: number | undefined;
      for (let sector = e.sector; sector < e.sector + e.bytes / 512 && index === undefined; sector++) index = sectorToBlock.get(sector);
      if (index === undefined) return undefined;
      if (index === 0) return 'probe';
      const rwbs = String(e.rwbs);
      const op = rwbs.includes('W') ? 'W' : rwbs.includes('R') ? 'R' : rwbs;
      return { seq: index - 1, part: e.bytes === BLOCK && sectorToBlock.get(e.sector) === index ? op : `${rwbs} of ${e.bytes} bytes at sector ${e.sector}` };
    },
    tearDown: () => {
      if (fd >= 0) closeSync(fd);
      rmSync(path, { force: true });
    },
    failures,
  };
}

interface Soak {
  /** the tool's arguments: JSON output, limited in the kernel to the soak's own events where the tool can be */
  args(soakPid: number, disk: string): string[];
  load(dir: string): Load;
  /** biolatency: one histogram per interval instead of one line per event */
  histograms?: boolean;
}

const SOAKS: Record<string, Soak> = {
  execsnoop: { args: (pid) => ['--json', '-P', String(pid)], load: execLoad },
  opensnoop: { args: (pid) => ['--json', '-p', String(pid)], load: openLoad },
  biolatency: { args: (_, disk) => ['-j', '-d', disk, String(HISTOGRAM_INTERVAL_S)], load: blockLoad, histograms: true },
  biosnoop: { args: (_, disk) => ['--json', '-d', disk], load: blockLoad },
  ext4slower: { args: (pid) => ['--json', '-p', String(pid), '0'], load: ext4Load },
};

/** What one sample period saw. */
interface Sample {
  /** seconds from the start of the load to the end of the period */
  t: number;
  rssKiB: number;
  /** markers made in the period */
  made: number;
  /** marker events received in the period */
  received: number;
  /** the longest from making a marker to receiving its event, of those received in the period */
  maxDelayMs: number;
  /** other events (other processes') received in the period */
  others: number;
  /** events the tool reported lost in the period */
  lost: number;
  /** biolatency: histograms received, the requests they count, and those counting none */
  histograms: number;
  histogramRequests: number;
  emptyHistograms: number;
}

const emptySample = (): Sample => ({
  t: 0, rssKiB: NaN, made: 0, received: 0, maxDelayMs: 0, others: 0, lost: 0, histograms: 0, histogramRequests: 0, emptyHistograms: 0,
});

interface SoakResult {
  tool: string;
  command: string;
  load: Load;
  histograms: boolean;
  /** why the run did not happen or ended early */
  failed?: string;
  samples: Sample[];
  made: number;
  /** events the markers made (markers × parts) */
  expected: number;
  received: number;
  duplicates: number;
  /** marker events that were none of the expected parts */
  unexpected: string[];
  missing: string[];
  lost: number;
  /** biolatency: histograms received while the load ran, those counting nothing, the longest gap between two */
  histogramsDuringLoad: number;
  emptyDuringLoad: number;
  maxHistogramGapS: number;
  /** biolatency: requests counted by every histogram from the start of the load to the end */
  requestsCounted: number;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  exitMs: number;
  /** names of the BPF programs it held */
  programs: string[];
  leftover: number[];
  unparsed: string[];
  notes: string[];
}

/** Soaks one tool: start it, wait until it sees a probe, make the load for `minutes`, sample, stop it. */
async function soakTool(tool: string, options: Options, workDir: string, progress: (text: string) => void): Promise<SoakResult> {
  const soak = SOAKS[tool];
  const load = soak.load(workDir);
  const args = soak.args(process.pid, diskOf(workDir).disk);
  const histograms = soak.histograms ?? false;
  const samples = Math.max(2, Math.round((options.minutes * 60) / options.sampleSeconds));
  const markers = Math.ceil(load.rate * samples * options.sampleSeconds);
  const result: SoakResult = {
    tool, command: `${tool} ${args.join(' ')}`, load, histograms, samples: [], made: 0, expected: 0, received: 0,
    duplicates: 0, unexpected: [], missing: [], lost: 0, histogramsDuringLoad: 0, emptyDuringLoad: 0,
    maxHistogramGapS: 0, requestsCounted: 0, exitMs: NaN, programs: [], leftover: [], unparsed: [], notes: [],
  };
  load.setUp(markers);
  const child = start(ours(tool, args), ['ignore', 'pipe', 'pipe']);
  const pid = child.pid!;
  const closed = new Promise((resolve) => child.on('close', resolve));
  const gone = (): boolean => child.exitCode !== null || child.signalCode !== null;

  let period = emptySample();
  let probed = false;
  let loadStartedAt = NaN;
  let loadEndedAt = NaN;
  let lastHistogramAt = NaN;
  const madeAt: number[] = [];
  const seen = new Set<string>();

  const onEvent = (event: Event, at: number): void => {
    const marker = load.identify(event);
    if (marker === 'probe') probed = true;
    if (marker === undefined || marker === 'probe' || marker.seq >= madeAt.length) {
      period.others++;
      return;
    }
    if (!load.parts(marker.seq).includes(marker.part)) {
      result.unexpected.push(`${marker.seq} ${marker.part}`);
      return;
    }
    const key = `${marker.seq} ${marker.part}`;
    if (seen.has(key)) {
      result.duplicates++;
      return;
    }
    seen.add(key);
    period.received++;
    period.maxDelayMs = Math.max(period.maxDelayMs, at - madeAt[marker.seq]);
  };
  const onHistogram = (event: Event, at: number): void => {
    probed = true;
    if (Number.isNaN(loadStartedAt)) return;
    const requests = Array.isArray(event.data) ? event.data.reduce((sum: number, row: { count?: unknown }) => sum + Number(row.count ?? 0), 0) : 0;
    period.histograms++;
    period.histogramRequests += requests;
    if (requests === 0) period.emptyHistograms++;
    result.requestsCounted += requests;
    // While the load runs, every interval has its requests; the first may hold time before the load.
    if (at > loadStartedAt + HISTOGRAM_INTERVAL_S * 1000 && Number.isNaN(loadEndedAt)) {
      result.histogramsDuringLoad++;
      if (requests === 0) result.emptyDuringLoad++;
      if (!Number.isNaN(lastHistogramAt)) result.maxHistogramGapS = Math.max(result.maxHistogramGapS, (at - lastHistogramAt) / 1000);
      lastHistogramAt = at;
    }
  };

  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const at = nowMs();
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      let event: Event;
      try {
        event = JSON.parse(line) as Event;
      } catch {
        if (result.unparsed.length < MISSING_SHOWN) result.unparsed.push(line.slice(0, 200));
        continue;
      }
      if (histograms) onHistogram(event, at);
      else onEvent(event, at);
    }
  });
  let stderrPartial = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (stderrPartial + chunk).split('\n');
    stderrPartial = lines.pop() ?? '';
    for (const line of lines) {
      const loss = LOSS_LINE.exec(line);
      if (loss) {
        const lost = Number(loss[1] ?? loss[2] ?? loss[3]);
        period.lost += lost;
        result.lost += lost;
      } else if (line.trim()) {
        result.notes.push(line.trim());
      }
    }
  });

  try {
    // Ready when the tool shows a probe (biolatency: its first histogram,
    // which an idle disk would not give: it leaves empty intervals out, so
    // its probes are made too; histograms before the load are not counted).
    let lastProbe = 0;
    const ready = await waitUntil(() => {
      if (probed || gone()) return true;
      if (nowMs() - lastProbe > PROBE_EVERY_MS) {
        load.probe();
        lastProbe = nowMs();
      }
      return false;
    }, READY_TIMEOUT_MS, 20);
    if (!ready || gone()) {
      result.failed = gone() ? `exited (${child.exitCode ?? child.signalCode}) before it was ready` : `saw no probe within ${READY_TIMEOUT_MS / 1000} s`;
      return result;
    }
    const held = bpfProgramStats(pid);
    result.programs = held.map((p) => p.name);
    const programIds = held.map((p) => p.id);
    progress(`${tool}: attached (${programIds.length} programs), ${samples} samples of ${options.sampleSeconds} s`);

    period = emptySample();
    loadStartedAt = nowMs();
    const maker = setInterval(() => {
      const due = Math.min(markers, Math.floor(((nowMs() - loadStartedAt) / 1000) * load.rate));
      while (madeAt.length < due) {
        const seq = madeAt.length;
        madeAt.push(nowMs());
        period.made++;
        result.expected += load.parts(seq).length;
        load.make(seq);
      }
    }, Math.max(5, Math.floor(500 / load.rate)));
    try {
      for (let k = 1; k <= samples; k++) {
        await sleep(loadStartedAt + k * options.sampleSeconds * 1000 - nowMs());
        if (gone()) {
          result.failed = `exited (${child.exitCode ?? child.signalCode}) after ${((nowMs() - loadStartedAt) / 1000).toFixed(0)} s of load`;
          break;
        }
        period.t = (nowMs() - loadStartedAt) / 1000;
        period.rssKiB = residentKiB(pid);
        result.samples.push(period);
        period = emptySample();
        if (k % Math.max(1, Math.round(60 / options.sampleSeconds)) === 0 || k === samples) {
          const arrived = histograms ? `${result.histogramsDuringLoad} histograms` : `${seen.size} of ${result.expected} marker events`;
          progress(`${tool}: ${k}/${samples} samples, RSS ${fixed(result.samples.at(-1)!.rssKiB / 1024, 1)} MiB, ${arrived}`);
        }
      }
    } finally {
      clearInterval(maker);
      loadEndedAt = nowMs();
    }
    result.made = madeAt.length;
    if (histograms) await sleep(2 * HISTOGRAM_INTERVAL_S * 1000);
    else await waitUntil(() => seen.size >= result.expected || gone(), DRAIN_TIMEOUT_MS, 50);

    const stoppedAt = nowMs();
    result.exit = await stop(child);
    result.exitMs = nowMs() - stoppedAt;
    await closed;
    await waitUntil(() => {
      const loaded = programNames();
      result.leftover = programIds.filter((id) => loaded.has(id));
      return result.leftover.length === 0;
    }, UNLOAD_TIMEOUT_MS, 100);
    result.received = seen.size;
    for (let seq = 0; seq < result.made; seq++) {
      for (const part of load.parts(seq)) if (!seen.has(`${seq} ${part}`)) result.missing.push(`${seq} ${part}`);
    }
    return result;
  } finally {
    if (!gone()) await stop(child);
    load.tearDown();
  }
}

interface Verdict {
  what: string;
  pass: boolean;
  detail: string;
}

const mib = (kib: number): number => kib / 1024;

/** RSS after warm-up and at the end (medians of windows of samples), and the least-squares slope after warm-up. */
function memory(samples: Sample[]): { warmUp: number; after: number; end: number; growthMiB: number; growthPct: number; slopeMiBPerMin: number } {
  const warmUp = Math.max(1, Math.ceil(samples.length * WARM_UP_FRACTION));
  const steady = samples.slice(warmUp);
  const window = Math.max(1, Math.min(RSS_WINDOW, Math.floor(steady.length / 2)));
  const after = median(steady.slice(0, window).map((s) => s.rssKiB));
  const end = median(steady.slice(-window).map((s) => s.rssKiB));
  const n = steady.length;
  const meanT = steady.reduce((sum, s) => sum + s.t, 0) / n;
  const meanR = steady.reduce((sum, s) => sum + mib(s.rssKiB), 0) / n;
  const slope = steady.reduce((sum, s) => sum + (s.t - meanT) * (mib(s.rssKiB) - meanR), 0)
    / steady.reduce((sum, s) => sum + (s.t - meanT) ** 2, 0);
  return { warmUp, after, end, growthMiB: mib(end - after), growthPct: ((end - after) / after) * 100, slopeMiBPerMin: slope * 60 };
}

function verdicts(r: SoakResult): Verdict[] {
  if (r.failed && r.samples.length < 2) return [{ what: 'ran', pass: false, detail: r.failed }];
  const m = memory(r.samples);
  const list: Verdict[] = [];
  if (r.failed) list.push({ what: 'ran to the end', pass: false, detail: r.failed });
  list.push({
    what: 'RSS flat',
    pass: m.growthMiB < FLAT_GROWTH_MIB && m.growthPct < FLAT_GROWTH_FRACTION * 100,
    detail: `${fixed(mib(m.after), 1)} MiB after warm-up → ${fixed(mib(m.end), 1)} MiB at the end: ${m.growthMiB >= 0 ? '+' : ''}${fixed(m.growthMiB, 1)} MiB (${m.growthPct >= 0 ? '+' : ''}${fixed(m.growthPct, 1)}%); slope after warm-up ${fixed(m.slopeMiBPerMin, 2)} MiB/min`,
  });
  if (r.histograms) {
    // One histogram per interval; a period may hold one fewer, as the intervals are not in phase with it.
    const thin = r.samples.filter((s, i) => s.histograms < Math.max(1, Math.floor((s.t - (r.samples[i - 1]?.t ?? 0)) / HISTOGRAM_INTERVAL_S) - 1));
    list.push({
      what: 'a histogram every interval',
      pass: thin.length === 0 && r.maxHistogramGapS <= 2 * HISTOGRAM_INTERVAL_S && r.histogramsDuringLoad > 0,
      detail: `${r.histogramsDuringLoad} histograms while the load ran, longest gap ${fixed(r.maxHistogramGapS, 2)} s; sample periods without one: ${thin.length}`,
    });
    list.push({
      what: 'every histogram counts requests',
      pass: r.emptyDuringLoad === 0,
      detail: `${r.emptyDuringLoad} of ${r.histogramsDuringLoad} counted none`,
    });
    list.push({
      what: 'every request counted',
      pass: r.requestsCounted + r.lost >= r.made,
      detail: `${r.requestsCounted.toLocaleString('en-US')} requests counted on the disk (every process), ${r.lost.toLocaleString('en-US')} reported not traced, ≥ ${r.made.toLocaleString('en-US')} made by the load`,
    });
  } else {
    const silent = r.samples.filter((s) => s.received === 0).length;
    list.push({
      what: 'events in every sample period',
      pass: silent === 0,
      detail: `${r.samples.length - silent} of ${r.samples.length} periods had marker events; longest marker delay ${fixed(Math.max(...r.samples.map((s) => s.maxDelayMs)), 0)} ms`,
    });
    const missing = r.missing.length;
    list.push({
      what: 'made = received + reported lost',
      pass: missing <= r.lost && r.duplicates === 0 && r.unexpected.length === 0,
      detail: `${r.expected.toLocaleString('en-US')} marker events made, ${r.received.toLocaleString('en-US')} received, ${r.lost.toLocaleString('en-US')} reported lost, ${missing} missing`
        + `${missing ? ` (${r.missing.slice(0, MISSING_SHOWN).join(', ')}${missing > MISSING_SHOWN ? ', ...' : ''})` : ''}`
        + `${r.duplicates ? `, ${r.duplicates} received twice` : ''}${r.unexpected.length ? `, unexpected: ${r.unexpected.slice(0, MISSING_SHOWN).join(', ')}` : ''}`,
    });
  }
  if (r.load.failures.length) {
    list.push({ what: 'load made as planned', pass: false, detail: `${r.load.failures.length} failures: ${r.load.failures.slice(0, 3).join('; ')}` });
  }
  if (r.unparsed.length) {
    list.push({ what: 'every line is JSON', pass: false, detail: r.unparsed.map((l) => `\`${l}\``).join(', ') });
  }
  list.push({
    what: 'exit 0 on SIGINT',
    pass: r.exit?.code === 0,
    detail: r.exit ? `exit ${r.exit.code ?? r.exit.signal} after ${fixed(r.exitMs, 0)} ms` : 'not stopped',
  });
  list.push({
    what: 'programs unloaded',
    pass: r.exit !== undefined && r.leftover.length === 0,
    detail: r.leftover.length ? `still loaded after exit: ids ${r.leftover.join(', ')}` : `none of its ${r.programs.length} programs left (bpftool prog show)`,
  });
  return list;
}

const passed = (r: SoakResult): boolean => verdicts(r).every((v) => v.pass);

function toolReport(r: SoakResult, sampleSeconds: number): string {
  const head = [
    `## ${r.tool}`,
    '',
    `\`${r.command}\` (run as \`node bin/${r.tool}.js\`)${r.programs.length ? `, holding the BPF programs ${r.programs.map((p) => `\`${p}\``).join(', ')}` : ''}; load: ${r.load.rate} markers/s, each ${r.load.what}.`,
  ];
  if (r.samples.length === 0) return [...head, '', `Not run: ${r.failed}`].join('\n');
  const m = memory(r.samples);
  const rows = r.samples.map((s, i) => {
    const phase = i < m.warmUp ? 'warm-up' : '';
    const common = [String(i + 1), fixed(s.t, 0), fixed(mib(s.rssKiB), 1), phase, String(s.made)];
    return r.histograms
      ? [...common, String(s.histograms), s.histogramRequests.toLocaleString('en-US'), String(s.emptyHistograms)]
      : [...common, String(s.received), fixed(s.maxDelayMs, 0), s.others.toLocaleString('en-US'), String(s.lost)];
  });
  const columns = r.histograms
    ? ['sample', 't (s)', 'VmRSS (MiB)', '', 'I/Os made', 'histograms', 'requests counted', 'histograms counting none']
    : ['sample', 't (s)', 'VmRSS (MiB)', '', 'markers made', 'marker events received', 'longest delay (ms)', 'other events', 'reported lost'];
  const list = verdicts(r).map((v) => `- ${v.pass ? 'pass' : '**FAIL**'}: ${v.what}: ${v.detail}`);
  return [
    ...head,
    '',
    `Every ${sampleSeconds} s: the tool's VmRSS, and what arrived in the period${r.histograms ? ' (histograms, one per second, and the requests they count; the load made 20 I/Os a second)' : ' (marker events by arrival; the delay is from making a marker to its event arriving)'}.`,
    '',
    table(columns, rows),
    '',
    `Verdict: ${passed(r) ? 'pass' : '**FAIL**'}`,
    '',
    ...list,
    ...(r.notes.length ? ['', 'Other stderr lines:', '', ...[...new Set(r.notes)].slice(0, 10).map((n) => `- \`${n}\``)] : []),
  ].join('\n');
}

function commandOutput(command: string, args: string[]): string | undefined {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function environment(options: Options): string {
  const head = commandOutput('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']) ?? 'unknown';
  const dirty = commandOutput('git', ['-C', ROOT, 'status', '--porcelain']) ? ' + uncommitted changes' : '';
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return [
    '# ebpf-tools soak test',
    '',
    `- date: ${new Date().toISOString()}`,
    `- kernel: ${release()}`,
    `- CPU: ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`,
    `- node: ${process.version}`,
    `- libbpf (libbpf1): ${commandOutput('dpkg-query', ['-W', '-f', '${Version}', 'libbpf1']) ?? 'not installed (or not Debian)'}`,
    `- ebpf-tools: ${packageVersion()} (${head}${dirty})`,
    `- load average at start: ${loadavg} (a shared machine)`,
    `- settings: --tools ${options.tools.join(',')} --minutes ${options.minutes} --sample-seconds ${options.sampleSeconds}`,
    '',
    'Reproduce: `npm run soak` as root (options: `npm run soak -- --help`).',
    '',
    'Each tool runs alone, one after another, so that a stall, a loss or a growth is pinned on one tool, and five tracers and five loads do not share the machine\'s CPUs (biosnoop and biolatency would also count each other\'s I/O). '
      + 'Each traces a steady load of markers (sequence-numbered events) for the whole time, with `--json` so every event is parsed; the load starts once the tool has shown a probe event (biolatency: its first histogram). '
      + 'Where a tool has a process filter it is limited in the kernel to the soak\'s own events (execsnoop `-P`, opensnoop and ext4slower `-p`), so that the load it sees is steady and known even while other work on this shared machine makes storms; '
      + 'biosnoop and biolatency can only be limited to the disk (`-d`), and also see other processes\' I/O on it. '
      + `At the end the tool gets SIGINT, must exit 0, and the BPF programs it held (ids from its fds) must be gone from \`bpftool prog show\`.`,
    '',
    `RSS is VmRSS from /proc/<pid>/status. Warm-up is the first ${WARM_UP_FRACTION * 100}% of the samples (at least one). `
      + `"After warm-up" is the median of the first ${RSS_WINDOW} samples after it and "end" the median of the last ${RSS_WINDOW} (fewer in a short run), so one sample at the top of a GC sawtooth does not decide. `
      + `Flat: growth below ${FLAT_GROWTH_MIB} MiB and below ${FLAT_GROWTH_FRACTION * 100}%: a Node tool sits at 70–100 MiB and V8 moves its heap limits by a few MiB while adapting to the allocation rate without leaking, `
      + 'while a leak of 1 KiB per event at these rates would pass 8 MiB within the run. The slope (least squares over the samples after warm-up) is shown to tell a trend from a step.',
    '',
    'A marker event is missing when it was neither received nor covered by a loss report on stderr ("N events lost", or biosnoop\'s "N requests not traced", which also counts other processes\' I/O, so it may cover more).',
  ].join('\n');
}

function summary(results: SoakResult[]): string {
  const rows = results.map((r) => {
    const v = verdicts(r);
    const find = (what: string): string => {
      const found = v.find((x) => x.what === what);
      return found ? (found.pass ? 'yes' : '**no**') : '–';
    };
    const m = r.samples.length >= 2 ? memory(r.samples) : undefined;
    return [
      r.tool,
      m ? `${fixed(mib(m.after), 1)} → ${fixed(mib(m.end), 1)}` : '–',
      m ? `${fixed(m.growthMiB, 1)} MiB (${fixed(m.growthPct, 1)}%)` : '–',
      find('RSS flat'),
      r.histograms ? find('a histogram every interval') : find('events in every sample period'),
      r.histograms ? `${r.requestsCounted.toLocaleString('en-US')} counted / ${r.made.toLocaleString('en-US')} I/Os made` : `${r.received.toLocaleString('en-US')} / ${r.expected.toLocaleString('en-US')} (lost ${r.lost}, missing ${r.missing.length})`,
      find('exit 0 on SIGINT'),
      find('programs unloaded'),
      passed(r) ? 'pass' : '**FAIL**',
    ];
  });
  return ['## Summary', '', table(['tool', 'RSS MiB after warm-up → end', 'growth', 'flat', 'arrivals every period', 'received / made', 'exit 0', 'unloaded', 'verdict'], rows)].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  if (process.getuid?.() !== 0) throw new RuntimeError('must be run as root: the tools load BPF programs');
  for (const tool of options.tools) if (!oursAvailable(tool)) throw new RuntimeError(`${tool} is not built (tools/${tool}.ts, bpf/${tool}.bpf.o, dist/bundle/${tool}.cjs)`);
  if (spawnSync('bpftool', ['version']).status !== 0) throw new RuntimeError('bpftool is needed to check that the tools\' programs are unloaded');
  ensureTracefs();
  // On the root file system, which is ext4 here, as the ext4 and block loads need.
  const workDir = mkdtempSync('/var/tmp/ebpf-tools-soak-');
  const startedAt = Date.now();
  const progress = (text: string): void => {
    process.stderr.write(`[${((Date.now() - startedAt) / 1000).toFixed(0).padStart(5)} s] ${text}\n`);
  };
  const cleanUp = (): void => {
    for (const child of running) child.kill('SIGINT');
    rmSync(workDir, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      cleanUp();
      process.exit(130);
    });
  }
  const results: SoakResult[] = [];
  try {
    if (statfsSync(workDir).type !== EXT4_SUPER_MAGIC) throw new RuntimeError(`${workDir} is not on ext4: the ext4slower and block loads need it`);
    for (const tool of options.tools) {
      progress(`${tool}: ${options.minutes} min`);
      results.push(await soakTool(tool, options, workDir, progress));
      progress(`${tool}: ${passed(results.at(-1)!) ? 'pass' : 'FAIL'}`);
    }
  } finally {
    cleanUp();
  }
  const loadavg = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const report = [
    environment(options),
    summary(results),
    ...results.map((r) => toolReport(r, options.sampleSeconds)),
    `Load average at the end: ${loadavg}; the whole run took ${((Date.now() - startedAt) / 1000).toFixed(0)} s.`,
  ].join('\n\n');
  process.stdout.write(`${report}\n`);
  writeFileSync(options.output, `${report}\n`);
  progress(`written to ${options.output}`);
  process.exitCode = results.every(passed) ? 0 : 1;
}

runMain('soak', () => main(process.argv.slice(2)));
