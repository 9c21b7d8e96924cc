// Shared by the tests that trace file systems (ext4slower-e2e, fsslower-e2e,
// upstream-invocations): a small C program (e4ops) that does known reads,
// writes, opens and fsyncs on a file, held until the tracers are attached,
// the exact lines they give, and fresh file systems of the types fsslower
// traces besides the ext4 root.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { left } from '../common/format.js';

const OPS_SOURCE = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static char buf[8192];
static long page;
static int uffd;
static int delay_ms;

static void check(long result, const char *what) { if (result < 0) { perror(what); exit(1); } }

/* Resolves the one page fault on the registered page, delay_ms late. */
static void *serve_fault(void *unused) {
  struct pollfd p = { .fd = uffd, .events = POLLIN };
  struct uffd_msg msg;
  check(poll(&p, 1, -1), "poll");
  check(read(uffd, &msg, sizeof(msg)), "read uffd");
  usleep(delay_ms * 1000);
  struct uffdio_copy copy = { .dst = msg.arg.pagefault.address & ~(page - 1), .src = (unsigned long)buf, .len = page };
  check(ioctl(uffd, UFFDIO_COPY, &copy), "UFFDIO_COPY");
  return unused;
}

int main(int argc, char **argv) {
  char go;
  memset(buf, 'x', sizeof(buf));
  if (read(0, &go, 1) != 1) return 2; /* held until the tracers are attached */
  if (argc == 4 && !strcmp(argv[1], "ops")) {
    int shm = open(argv[3], O_CREAT | O_RDWR | O_TRUNC, 0644);
    check(shm, "open shm");
    check(write(shm, buf, 3000), "write shm");
    check(fsync(shm), "fsync shm");
    check(pread(shm, buf, 3000, 0), "pread shm");
    close(shm);
    int fd = open(argv[2], O_CREAT | O_RDWR | O_TRUNC, 0644);
    check(fd, "open");
    check(lseek(fd, 102400, SEEK_SET), "lseek");
    check(write(fd, buf, 5000), "write");
    check(pwrite(fd, buf, 3333, 410112), "pwrite");
    check(fsync(fd), "fsync");
    check(lseek(fd, 204800, SEEK_SET), "lseek");
    check(read(fd, buf, 4000), "read");
    check(pread(fd, buf, 1111, 308223), "pread");
    struct iovec iov = { .iov_base = buf, .iov_len = 2222 };
    check(lseek(fd, 51200, SEEK_SET), "lseek");
    check(preadv2(fd, &iov, 1, -1, 0), "preadv2");
    check(fdatasync(fd), "fdatasync");
    close(fd);
    return 0;
  }
  if (argc == 3 && !strcmp(argv[1], "int80")) {
    /* ia32's lseek (19) by int 0x80, rdi also holding the descriptor: read by
       x86-64's numbers and registers, it would be a readv (19) of the file */
    int fd = open(argv[2], O_CREAT | O_RDWR | O_TRUNC, 0644);
    check(fd, "open");
    check(write(fd, buf, 600), "write");
#ifdef __x86_64__
    long ret;
    __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(19L), "b"((long)fd), "c"(0L), "d"(0L), "D"((long)fd)
                      : "r8", "r9", "r10", "r11", "memory");
    check(ret, "int 0x80 lseek");
#else
    return 3;
#endif
    check(pread(fd, buf, 10, 500), "pread");
    close(fd);
    return 0;
  }
  if (argc == 4 && !strcmp(argv[1], "slow")) {
    /* A write whose source page is served by userfaultfd after a delay: slow in every attach mode. */
    pthread_t server;
    delay_ms = atoi(argv[3]);
    page = sysconf(_SC_PAGESIZE);
    uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
    check(uffd, "userfaultfd");
    struct uffdio_api api = { .api = UFFD_API };
    check(ioctl(uffd, UFFDIO_API, &api), "UFFDIO_API");
    char *area = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) return 1;
    struct uffdio_register reg = { .range = { .start = (unsigned long)area, .len = page }, .mode = UFFDIO_REGISTER_MODE_MISSING };
    check(ioctl(uffd, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER");
    check(pthread_create(&server, NULL, serve_fault, NULL), "pthread_create");
    int fd = open(argv[2], O_CREAT | O_RDWR | O_TRUNC, 0644);
    check(fd, "open");
    check(pwrite(fd, area, page, 0), "slow pwrite");
    check(pread(fd, buf, 100, 0), "pread");
    pthread_join(server, NULL);
    close(fd);
    return 0;
  }
  return 2;
}
`;

/** Compiles e4ops into `dir`; returns its path. */
export function compileOps(dir: string): string {
  const ops = join(dir, 'e4ops');
  writeFileSync(`${ops}.c`, OPS_SOURCE);
  const cc = spawnSync('cc', ['-O2', '-Wall', '-Werror', '-o', ops, `${ops}.c`, '-lpthread'], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cannot compile the test program: ${cc.stderr}`);
  return ops;
}

/** The type of the file system `path` is on (findmnt). */
export function filesystemType(path: string): string {
  // the first line: the mount a path resolves to (a mount point may have several stacked)
  const r = spawnSync('findmnt', ['-n', '-o', 'FSTYPE', '-T', path], { encoding: 'utf8' });
  return r.stdout.split('\n')[0].trim();
}

/** e4ops (at `ops`) started and held before its first operation, so its pid is known to the tracers. */
export function startOps(ops: string, args: string[]): { pid: number; go(): Promise<void> } {
  const child = spawn(ops, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  // A test that fails before go() must not hang on the held child: unreferenced,
  // it cannot keep this process alive, and it ends (status 2) when its stdin closes with it.
  const pipes = [child.stdin, child.stderr] as unknown as { ref(): void; unref(): void }[];
  child.unref();
  for (const pipe of pipes) pipe.unref();
  return {
    pid: child.pid!,
    async go() {
      child.ref();
      for (const pipe of pipes) pipe.ref();
      child.stdin.end('g');
      const code = await exited;
      if (code !== 0) throw new Error(`e4ops ${args.join(' ')} failed (${code}): ${stderr}`);
    },
  };
}

export const escapeRegExp = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');

/**
 * The whole line for one operation of e4ops: latency is the only value not
 * known in advance; `cgroup`: the path the CGROUP column shows (--print-cgroup).
 */
export function row(pid: number, type: string, bytes: number | string, offKb: number, file: string, cgroup?: string): RegExp {
  return new RegExp(
    `^\\d\\d:\\d\\d:\\d\\d ${left('e4ops', 16)} ${left(pid, 7)} ${type} ${left(bytes, 7)} ${left(offKb, 8)} ` +
    `[ ]{0,3}\\d+\\.\\d\\d ${cgroup === undefined ? '' : `${escapeRegExp(left(cgroup, 32))} `}${escapeRegExp(file)}$`,
  );
}

export const pidColumn = (line: string): string => line.slice(26, 33).trim();

// The operations e4ops does on its ext4 file, in order: [T, BYTES, offset in bytes].
// Offsets are chosen so that OFF_KB shows KiB rounded down (400, 300), not kB.
export const EXPECTED: [string, number | 'LL_MAX', number][] = [
  ['O', 0, 0],
  ['W', 5000, 102400],
  ['W', 3333, 410112],
  ['S', 'LL_MAX', 0],
  ['R', 4000, 204800],
  ['R', 1111, 308223],
  ['R', 2222, 51200],
  ['S', 'LL_MAX', 0],
];

/** The file systems makeFileSystem makes: XFS and btrfs on loop devices, FUSE by fuse2fs (an ext4 image served in user space). */
export type MadeFileSystem = 'xfs' | 'btrfs' | 'fuse';

/** findmnt's type of each: fuse2fs mounts as fuse.ext4 (FUSE, subtype ext4). */
const MOUNTED_TYPE: Record<MadeFileSystem, string> = { xfs: 'xfs', btrfs: 'btrfs', fuse: 'fuse.ext4' };

function run(file: string, args: string[]): void {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.error?.message ?? ''}`);
}

/** Whether the kernel has the file system now (built in, or its module loaded). */
export const registered = (fs: string): boolean =>
  readFileSync('/proc/filesystems', 'utf8').split('\n').some((l) => l.split('\t')[1] === fs);

/**
 * A fresh file system of `type` on a sparse image in `work`, mounted at
 * work/<type>; returns the mount point, which `mounts` gets for the caller's
 * teardown to unmount (umount also ends fuse2fs). Needs mkfs.xfs, mkfs.btrfs
 * and fuse2fs (scripts/install-test-deps.sh): fails here without them.
 */
export function makeFileSystem(work: string, type: MadeFileSystem, mounts: string[]): string {
  // built in, or a module (in the kernel-matrix guests) that mount would load anyway: fail here if there is none
  if (!registered(type)) run('modprobe', [type]);
  const image = join(work, `${type}.img`);
  writeFileSync(image, '');
  truncateSync(image, (type === 'fuse' ? 64 : 320) * 1024 * 1024); // XFS's smallest is 300 MiB
  const dir = join(work, type);
  mkdirSync(dir);
  if (type === 'fuse') {
    run('mkfs.ext4', ['-q', image]);
    run('fuse2fs', [image, dir]);
  } else {
    run(`mkfs.${type}`, ['-q', image]);
    run('mount', ['-o', 'loop', image, dir]);
  }
  mounts.push(dir);
  if (filesystemType(dir) !== MOUNTED_TYPE[type]) throw new Error(`${dir} is not ${MOUNTED_TYPE[type]} (${filesystemType(dir)})`);
  return dir;
}
