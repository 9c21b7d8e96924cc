// Shared by the biolatency and biosnoop end-to-end tests: a small C program
// that does direct I/O of known sizes with a known name, run on the disk
// that holds / or on a loop disk of its own, and a reader of biolatency's
// histograms.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { cgroupDir } from './cgroup-helpers.js';
import { SKIPPED_RUNS } from './helpers.js';

/** The workload's command name, as COMM shows it. */
export const WORKLOAD_COMM = 'biotest_io';
export const BLOCK_BYTES = 65536;

// Writes then reads COUNT blocks of BLOCK bytes with O_DIRECT (each a
// request of its own: every call waits for its I/O), then prints where the
// file's extents are on the device (FIEMAP), so that sectors can be checked.
const WORKLOAD_SOURCE = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <linux/fiemap.h>

#define MAX_EXTENTS 256

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s FILE BLOCK_BYTES COUNT w|r|wr\n", argv[0]);
		return 2;
	}
	const char *ops = argv[4];
	size_t block = strtoul(argv[2], NULL, 10);
	int count = atoi(argv[3]);
	int fd = open(argv[1], O_RDWR | O_CREAT | O_DIRECT, 0600);
	void *buffer;

	if (fd < 0 || posix_memalign(&buffer, 4096, block)) {
		perror("open");
		return 1;
	}
	memset(buffer, 0x5a, block);
	if (strchr(ops, 'w')) {
		for (int i = 0; i < count; i++)
			if (pwrite(fd, buffer, block, (off_t)i * block) != (ssize_t)block) {
				perror("pwrite");
				return 1;
			}
		if (fdatasync(fd)) {
			perror("fdatasync");
			return 1;
		}
	}
	if (strchr(ops, 'r')) {
		for (int i = 0; i < count; i++)
			if (pread(fd, buffer, block, (off_t)i * block) != (ssize_t)block) {
				perror("pread");
				return 1;
			}
	}
	struct fiemap *map = calloc(1, sizeof(*map) + MAX_EXTENTS * sizeof(struct fiemap_extent));
	map->fm_length = FIEMAP_MAX_OFFSET;
	map->fm_flags = FIEMAP_FLAG_SYNC;
	map->fm_extent_count = MAX_EXTENTS;
	if (ioctl(fd, FS_IOC_FIEMAP, map)) {
		perror("FIEMAP");
		return 1;
	}
	for (unsigned i = 0; i < map->fm_mapped_extents; i++)
		printf("%llu %llu %llu\n", map->fm_extents[i].fe_logical,
		       map->fm_extents[i].fe_physical, map->fm_extents[i].fe_length);
	return 0;
}
`;

/** Compiles the workload into `dir` unless it is there; returns its path. */
function workloadProgram(dir: string): string {
  const program = join(dir, WORKLOAD_COMM);
  if (existsSync(program)) return program;
  writeFileSync(join(dir, 'workload.c'), WORKLOAD_SOURCE);
  const cc = spawnSync('cc', ['-O2', '-Wall', '-o', program, join(dir, 'workload.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cannot compile the workload: ${cc.stderr}`);
  return program;
}

export interface RootDisk {
  /** a fresh directory on the filesystem of / */
  dir: string;
  /** the disk under it, as the tools name it */
  disk: string;
  /** where the filesystem starts on the disk, in 512-byte sectors (a partition's start) */
  startSector: bigint;
}

/** Major and minor of a stat() st_dev, as glibc's major() and minor() split it. */
function majorMinor(dev: number): [number, number] {
  const big = BigInt(dev);
  const major = Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn));
  const minor = Number((big & 0xffn) | ((big >> 12n) & ~0xffn));
  return [major, minor];
}

/**
 * A scratch directory on a disk and that disk (found through sysfs): /var/tmp
 * if it is on one (in scripts/vm-run's guests, / is 9p and /var/tmp the
 * scratch disk), else the root filesystem.
 */
export function rootDisk(): RootDisk {
  const onDisk = (d: string): boolean => existsSync(d) && existsSync(`/sys/dev/block/${majorMinor(statSync(d).dev).join(':')}`);
  const parent = ['/var/tmp', '/root', '/'].find(onDisk);
  if (!parent) throw new Error('neither /var/tmp, /root nor / is on a block device: these tests need a disk');
  const dir = mkdtempSync(join(parent, 'ebpf-tools-bio-'));
  const [major, minor] = majorMinor(statSync(parent).dev);
  const sysfs = realpathSync(`/sys/dev/block/${major}:${minor}`);
  if (existsSync(join(sysfs, 'partition'))) {
    return { dir, disk: basename(dirname(sysfs)), startSector: BigInt(readFileSync(join(sysfs, 'start'), 'utf8').trim()) };
  }
  return { dir, disk: basename(sysfs), startSector: 0n };
}

/**
 * Why a request was not traced, as biolatency and biosnoop report it: not
 * seen to complete (during the run, and at its end), or a program of theirs
 * skipped by the kernel (at its start, dispatch or completion).
 */
const UNSEEN_COMPLETION = `(?:the kernel ran no BPF program at their completion|dispatched before the end and not seen to complete within \\d+ ms of it|${SKIPPED_RUNS})`;

/**
 * What a run of biolatency or biosnoop said on stderr: how many requests it
 * reported not traced because no program saw their completion (on this
 * project's own machine the kernel runs none in its agent's threads, and an
 * interrupt that completes a request there is never seen; the last of a run
 * are counted at its end), and every other line. A request may be missing
 * from a run only if it is counted there.
 */
export function unseenCompletions(tool: string, stderr: string): { count: number; otherLines: string[] } {
  const report = new RegExp(`^${tool}: (\\d+) (?:requests?|events) not traced: ${UNSEEN_COMPLETION} \\(\\d+ in all\\)$`);
  let count = 0;
  const otherLines: string[] = [];
  for (const line of stderr.split('\n').filter((l) => l !== '')) {
    const m = report.exec(line);
    if (m) count += Number(m[1]);
    else otherLines.push(line);
  }
  return { count, otherLines };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface WorkloadRun {
  pid: number;
  /** the disk sector of each block of the file, in order */
  sectors: bigint[];
}

/**
 * Runs the workload to completion: `count` blocks written (w), read (r) or
 * both (wr) in `file`; in the cgroup at `cgroup` (as the CGROUP column shows it) if given.
 */
export function runWorkload(
  file: string, count: number, ops: 'w' | 'r' | 'wr', root: RootDisk, cgroup?: string,
): Promise<WorkloadRun> {
  const program = workloadProgram(root.dir);
  const args = [file, String(BLOCK_BYTES), String(count), ops];
  const child = cgroup === undefined
    ? spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    // the shell moves itself into the cgroup, then becomes the workload (same pid)
    : spawn('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroupDir(cgroup).toString(), program, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`workload failed (${code}): ${stderr}`));
        return;
      }
      const extents = stdout.trim().split('\n').map((line) => line.split(' ').map(BigInt));
      const sectors: bigint[] = [];
      for (let i = 0; i < count; i++) {
        const logical = BigInt(i * BLOCK_BYTES);
        const extent = extents.find(([start, , length]) => logical >= start && logical < start + length);
        if (!extent) {
          reject(new Error(`block ${i} of ${file} is not mapped: ${stdout}`));
          return;
        }
        sectors.push(root.startSector + (extent[1] + logical - extent[0]) / 512n);
      }
      resolve({ pid: child.pid!, sectors });
    });
  });
}

export interface ParsedHistogram {
  /** the line naming it ("disk = vda", "cgroup = /a/b"), if any, without trailing blanks */
  section?: string;
  /** the header and the rows, as printed */
  lines: string[];
  /** the count of each row, slot 0 first */
  counts: number[];
  total: number;
}

/** The histograms in biolatency's (or the C tool's) text output. */
export function parseHistograms(text: string): ParsedHistogram[] {
  const histograms: ParsedHistogram[] = [];
  let section: string | undefined;
  let current: ParsedHistogram | undefined;
  for (const line of text.split('\n')) {
    const row = /^\s*\d+ -> \d+\s+: (\d+)\s+\|/.exec(line);
    if (row && current) {
      current.lines.push(line);
      current.counts.push(Number(row[1]));
      current.total += Number(row[1]);
      continue;
    }
    current = undefined;
    if (/^\s+[um]secs\s+: count/.test(line)) {
      current = { section, lines: [line], counts: [], total: 0 };
      histograms.push(current);
      section = undefined;
    } else if (/^(cgroup|disk|flags) = /.test(line)) {
      section = line.trimEnd();
    }
  }
  return histograms;
}

export interface LoopFilesystem extends RootDisk {
  remove(): void;
}

/**
 * A fresh ext4 on a loop disk of its own, the workload compiled onto it and
 * everything synced before it is handed over: no other process's I/O reaches
 * that disk, so two tools attached to it can count the same requests (the
 * root disk also carries whatever else the machine does, e.g. CI's guests).
 */
export function makeLoopFilesystem(): LoopFilesystem {
  const loop = makeLoopDisk();
  const dir = mkdtempSync('/var/tmp/ebpf-tools-loopfs-');
  const run = (command: string, args: string[]): void => {
    const r = spawnSync(command, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr.trim()}`);
  };
  // initialised in full now: ext4's lazy init would write its tables later, during a test
  run('mkfs.ext4', ['-q', '-E', 'lazy_itable_init=0,lazy_journal_init=0', `/dev/${loop.disk}`]);
  run('mount', ['-o', 'noatime', `/dev/${loop.disk}`, dir]);
  workloadProgram(dir);
  run('sync', ['-f', dir]);
  return {
    dir,
    disk: loop.disk,
    startSector: 0n,
    remove(): void {
      spawnSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
      loop.remove();
    },
  };
}

export interface LoopDisk {
  /** as the tools name it (loopN) */
  disk: string;
  remove(): void;
}

/**
 * A whole disk other than the scratch disk: a loop device on a sparse file,
 * made here rather than hoped for (a plain guest has no second disk).
 */
export function makeLoopDisk(): LoopDisk {
  const file = join(mkdtempSync('/var/tmp/ebpf-tools-loop-'), 'disk');
  writeFileSync(file, '');
  truncateSync(file, 64 << 20);
  const r = spawnSync('losetup', ['--find', '--show', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`losetup --find --show ${file} failed: ${r.stderr.trim()}`);
  const device = r.stdout.trim();
  return {
    disk: basename(device),
    remove(): void {
      spawnSync('losetup', ['-d', device]);
      rmSync(dirname(file), { recursive: true, force: true });
    },
  };
}
