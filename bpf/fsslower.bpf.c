// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * fsslower: reads, writes, opens and fsyncs on one file system (btrfs,
 * ext4, fuse, nfs or xfs) that take longer than a threshold.
 *
 * Three sets of programs see the same operations; user space loads the first
 * set the kernel accepts:
 *  - fentry/fexit on the file system's file operations (BPF trampolines:
 *    cheapest), a set per file system;
 *  - kprobe/kretprobe on the same functions;
 *  - the calls that reach those operations, at the entry and exit of
 *    syscalls: by BTF raw tracepoints (x86-64), or by the syscall tracepoints
 *    of each call (any architecture). A call is kept only when its file is a
 *    regular file of the traced file system, as told by the file's
 *    superblock, reached through the task's file table. Opens are decided at
 *    exit, where the new descriptor exists.
 * Every set records when a call starts, per thread and operation, and at its
 * end reports it if it took longer than min_lat_ns.
 */
#include "common.bpf.h"

#define FILE_NAME_BYTES 256 /* one path component: NAME_MAX + 1 */
#define MAX_CALLS 16384
/* the range of an fsync(2) or fdatasync(2): the whole file, 0 to LLONG_MAX */
#define WHOLE_FILE_END 0x7fffffffffffffffLL

/* Not in BTF: include/uapi/linux/stat.h and include/linux/fs.h, stable ABI values. */
#define S_IFMT 00170000
#define S_IFREG 0100000
#define FMODE_PATH 0x4000
/* arch/x86/include/asm/thread_info.h: the current syscall is a 32-bit one */
#define TS_COMPAT 0x0002

enum file_op {
	FILE_OP_READ,
	FILE_OP_WRITE,
	FILE_OP_OPEN,
	FILE_OP_FSYNC,
};

const volatile __u64 min_lat_ns = 10000000;
/* the traced file system, for the syscall programs: its superblock magic, and its type's name if the magic is shared */
const volatile __u64 fs_magic = 0;
const volatile char fs_type_name[8] = {};
const volatile __u32 targ_tgid = 0;
/*
 * The tool itself: its output written to a traced file would otherwise be
 * reported, and the report written, and so on, for as long as it runs.
 */
const volatile __u32 self_tgid = 0;

/*
 * --prometheus: the latency of every operation (not only the slow ones), per
 * operation, in log2 slots of microseconds as biolatency counts them; slot n
 * holds 2^n <= us < 2^(n+1), the last one everything above.
 */
const volatile bool targ_histograms = false;

#define MAX_SLOTS 27

struct op_hist {
	__u64 slots[MAX_SLOTS];
	__u64 total_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FILE_OP_FSYNC + 1);
	__type(key, __u32);
	__type(value, struct op_hist);
} op_hists SEC(".maps");

/* Calls whose start could not be recorded (more in flight than MAX_CALLS). */
__u64 untimed_calls = 0;

struct event {
	/* bpf_ktime_get_ns() when the operation ended */
	__u64 end_ns;
	__u64 delta_ns;
	/* file offset at the start, in bytes */
	__s64 offset;
	/* bytes read or written (or the error), the range of an fsync, 0 for an open */
	__s64 size;
	/* cgroup v2 id of the process (named in cgroup_paths with --print-cgroup) */
	__u64 cgroup_id;
	__u32 pid;
	__u32 op;
	char comm[TASK_COMM_LEN];
	char file[FILE_NAME_BYTES];
};

/* Anchors struct event in the object's BTF, where user space reads its layout. */
struct event *unused_event __attribute__((unused));

struct call {
	__u64 start_ns;
	__s64 offset;
	/* bytes an fsync covers */
	__s64 range;
	/* NULL for an open seen by its syscall: the file exists only at exit */
	struct file *file;
};

/*
 * Calls in flight, by thread and operation: an O_SYNC write calls the
 * fsync operation (ext4_sync_file()) from within write_iter, and both are timed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CALLS);
	__type(key, __u64);
	__type(value, struct call);
} calls SEC(".maps");

static __always_inline void count_latency(enum file_op op, __u64 delta_ns)
{
	__u32 key = op;
	struct op_hist *hist = bpf_map_lookup_elem(&op_hists, &key);
	__u32 slot = log2_slot(delta_ns / 1000);

	if (!hist)
		return;
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&hist->slots[slot], 1);
	__sync_fetch_and_add(&hist->total_ns, delta_ns);
}

static __always_inline __u64 call_key(enum file_op op)
{
	return (bpf_get_current_pid_tgid() << 32) | op;
}

/* -p, and --cgroup (the process's cgroup when the call starts) */
static __always_inline bool traced_process(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	return tgid != self_tgid && (!targ_tgid || tgid == targ_tgid) && task_selected();
}

static __always_inline void start_call(enum file_op op, struct file *file, __s64 offset, __s64 range)
{
	__u64 key = call_key(op);
	struct call call = {
		.start_ns = bpf_ktime_get_ns(),
		.offset = offset,
		.range = range,
		.file = file,
	};

	if (bpf_map_update_elem(&calls, &key, &call, BPF_ANY))
		__sync_fetch_and_add(&untimed_calls, 1);
}

/*
 * Ends the calling thread's call, reporting it if it was slow enough. `file`
 * is the call's file when only its end knows it (opens), else NULL.
 * The file is still referenced by the operation at fexit and kretprobe; at a
 * syscall's exit it is normally still open (another thread closing it during
 * the call could leave a stale name, never a fault: the reads are probes).
 */
static __always_inline void end_call(enum file_op op, __s64 ret, struct file *file)
{
	__u64 key = call_key(op);
	struct call *call = bpf_map_lookup_elem(&calls, &key);
	__u64 end_ns = bpf_ktime_get_ns();
	struct event *e;

	if (!call)
		return;
	if (targ_histograms)
		count_latency(op, end_ns - call->start_ns);
	if (min_lat_ns && end_ns - call->start_ns <= min_lat_ns)
		goto done;
	if (!file)
		file = call->file;
	e = reserve_event(sizeof(*e));
	if (!e)
		goto done;
	e->end_ns = end_ns;
	e->delta_ns = end_ns - call->start_ns;
	e->offset = call->offset;
	e->op = op;
	if (op == FILE_OP_FSYNC)
		e->size = call->range;
	else if (op == FILE_OP_OPEN)
		e->size = 0;
	else
		e->size = ret;
	e->cgroup_id = current_cgroup();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_kernel_str(e->file, sizeof(e->file), BPF_CORE_READ(file, f_path.dentry, d_name.name));
	bpf_ringbuf_submit(e, 0);
done:
	bpf_map_delete_elem(&calls, &key);
}

/*
 * fentry/fexit and kprobe/kretprobe on a file system's read_iter,
 * write_iter, open and fsync file operations (the functions libbpf-tools'
 * fsslower traces), a set per file system, of which user space loads the
 * one asked for. The four have the same arguments on every file system:
 *   read_iter(struct kiocb *, struct iov_iter *) and write_iter: ssize_t
 *   open(struct inode *, struct file *)
 *   fsync(struct file *, loff_t start, loff_t end, int datasync)
 * At fentry the arguments are read directly (BTF-typed), at a kprobe by
 * probes.
 */
static __always_inline void start_iter(enum file_op op, struct kiocb *iocb, bool probed)
{
	if (!traced_process())
		return;
	if (probed)
		start_call(op, BPF_CORE_READ(iocb, ki_filp), BPF_CORE_READ(iocb, ki_pos), 0);
	else
		start_call(op, iocb->ki_filp, iocb->ki_pos, 0);
}

static __always_inline void start_open(struct file *file)
{
	if (traced_process())
		start_call(FILE_OP_OPEN, file, 0, 0);
}

static __always_inline void start_fsync(struct file *file, __s64 start, __s64 end)
{
	if (traced_process())
		start_call(FILE_OP_FSYNC, file, start, end - start);
}

#define FILE_OPERATIONS(fs, read_iter, write_iter, open, fsync)                   \
	SEC("fentry/" #read_iter)                                                  \
	int BPF_PROG(fs##_fentry_read, struct kiocb *iocb)                         \
	{ start_iter(FILE_OP_READ, iocb, false); return 0; }                       \
	SEC("fexit/" #read_iter)                                                   \
	int BPF_PROG(fs##_fexit_read, struct kiocb *iocb, struct iov_iter *to, ssize_t ret) \
	{ end_call(FILE_OP_READ, ret, NULL); return 0; }                           \
	SEC("fentry/" #write_iter)                                                 \
	int BPF_PROG(fs##_fentry_write, struct kiocb *iocb)                        \
	{ start_iter(FILE_OP_WRITE, iocb, false); return 0; }                      \
	SEC("fexit/" #write_iter)                                                  \
	int BPF_PROG(fs##_fexit_write, struct kiocb *iocb, struct iov_iter *from, ssize_t ret) \
	{ end_call(FILE_OP_WRITE, ret, NULL); return 0; }                          \
	SEC("fentry/" #open)                                                       \
	int BPF_PROG(fs##_fentry_open, struct inode *inode, struct file *file)     \
	{ start_open(file); return 0; }                                            \
	SEC("fexit/" #open)                                                        \
	int BPF_PROG(fs##_fexit_open)                                              \
	{ end_call(FILE_OP_OPEN, 0, NULL); return 0; }                             \
	SEC("fentry/" #fsync)                                                      \
	int BPF_PROG(fs##_fentry_fsync, struct file *file, loff_t start, loff_t end) \
	{ start_fsync(file, start, end); return 0; }                               \
	SEC("fexit/" #fsync)                                                       \
	int BPF_PROG(fs##_fexit_fsync)                                             \
	{ end_call(FILE_OP_FSYNC, 0, NULL); return 0; }                            \
	SEC("kprobe/" #read_iter)                                                  \
	int BPF_KPROBE(fs##_kprobe_read, struct kiocb *iocb)                       \
	{ start_iter(FILE_OP_READ, iocb, true); return 0; }                        \
	SEC("kretprobe/" #read_iter)                                               \
	int BPF_KRETPROBE(fs##_kretprobe_read, ssize_t ret)                        \
	{ end_call(FILE_OP_READ, ret, NULL); return 0; }                           \
	SEC("kprobe/" #write_iter)                                                 \
	int BPF_KPROBE(fs##_kprobe_write, struct kiocb *iocb)                      \
	{ start_iter(FILE_OP_WRITE, iocb, true); return 0; }                       \
	SEC("kretprobe/" #write_iter)                                              \
	int BPF_KRETPROBE(fs##_kretprobe_write, ssize_t ret)                       \
	{ end_call(FILE_OP_WRITE, ret, NULL); return 0; }                          \
	SEC("kprobe/" #open)                                                       \
	int BPF_KPROBE(fs##_kprobe_open, struct inode *inode, struct file *file)   \
	{ start_open(file); return 0; }                                            \
	SEC("kretprobe/" #open)                                                    \
	int BPF_KRETPROBE(fs##_kretprobe_open)                                     \
	{ end_call(FILE_OP_OPEN, 0, NULL); return 0; }                             \
	SEC("kprobe/" #fsync)                                                      \
	int BPF_KPROBE(fs##_kprobe_fsync, struct file *file, loff_t start, loff_t end) \
	{ start_fsync(file, start, end); return 0; }                               \
	SEC("kretprobe/" #fsync)                                                   \
	int BPF_KRETPROBE(fs##_kretprobe_fsync)                                    \
	{ end_call(FILE_OP_FSYNC, 0, NULL); return 0; }

FILE_OPERATIONS(btrfs, btrfs_file_read_iter, btrfs_file_write_iter, btrfs_file_open, btrfs_sync_file)
FILE_OPERATIONS(ext4, ext4_file_read_iter, ext4_file_write_iter, ext4_file_open, ext4_sync_file)
FILE_OPERATIONS(fuse, fuse_file_read_iter, fuse_file_write_iter, fuse_open, fuse_fsync)
FILE_OPERATIONS(nfs, nfs_file_read, nfs_file_write, nfs_file_open, nfs_file_fsync)
FILE_OPERATIONS(xfs, xfs_file_read_iter, xfs_file_write_iter, xfs_file_open, xfs_file_fsync)

/* syscalls: raw tracepoints, or the syscall tracepoints */

/*
 * The open file behind descriptor `fd` of the current task if it is a
 * regular file of the traced file system (what its file operations serve),
 * else NULL. The file system is told by its superblock's magic and, where
 * the magic is shared, its type's name: ext2 and ext3 have ext4's magic
 * (mounted by the ext4 driver they are named ext2 and ext3), while nfs and
 * nfs4, both NFS, share theirs and are both kept, as are fuse and fuseblk.
 */
static __always_inline bool traced_fs_name(struct super_block *sb)
{
	char name[sizeof(fs_type_name)];

	if (!fs_type_name[0])
		return true;
	if (bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(sb, s_type, name)) < 0)
		return false;
	for (int i = 0; i < sizeof(name); i++) {
		if (name[i] != fs_type_name[i])
			return false;
		if (!name[i])
			break;
	}
	return true;
}

static __always_inline struct file *traced_file_of_fd(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	struct inode *inode;
	struct super_block *sb;

	if (fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	if (BPF_CORE_READ(file, f_mode) & FMODE_PATH)
		return NULL;
	inode = BPF_CORE_READ(file, f_inode);
	if ((BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFREG)
		return NULL;
	sb = BPF_CORE_READ(inode, i_sb);
	if (BPF_CORE_READ(sb, s_magic) != fs_magic || !traced_fs_name(sb))
		return NULL;
	return file;
}

/* A read, write or fsync on descriptor `fd`: at the file position, or at `offset`. */
static __always_inline void start_fd_call(enum file_op op, __u32 fd, bool at_file_position, __s64 offset)
{
	struct file *file;

	if (!traced_process())
		return;
	file = traced_file_of_fd(fd);
	if (!file)
		return;
	if (at_file_position)
		offset = BPF_CORE_READ(file, f_pos);
	start_call(op, file, offset, op == FILE_OP_FSYNC ? WHOLE_FILE_END : 0);
}

/* The syscalls traced, by how their start is recorded. */
enum syscall_kind {
	NOT_TRACED,
	READ_AT_POSITION,		/* read(2), readv(2) */
	READ_AT_OFFSET,			/* pread64(2), preadv(2): on 64-bit, pos_l */
	READ_AT_OFFSET_OR_POSITION,	/* preadv2(2): the file position when the offset is -1 */
	WRITE_AT_POSITION,		/* write(2), writev(2) */
	WRITE_AT_OFFSET,		/* pwrite64(2), pwritev(2) */
	WRITE_AT_OFFSET_OR_POSITION,	/* pwritev2(2) */
	FSYNC_WHOLE_FILE,		/* fsync(2), fdatasync(2): from offset 0, as the fsync operation is asked */
	OPEN,				/* open(2), creat(2), openat(2), openat2(2), open_by_handle_at(2) */
};

/* A traced syscall starts: `fd` is its first argument, `offset` its fourth. */
static __always_inline void enter_syscall(enum syscall_kind kind, __u32 fd, __s64 offset)
{
	switch (kind) {
	case READ_AT_POSITION:
		start_fd_call(FILE_OP_READ, fd, true, 0);
		break;
	case READ_AT_OFFSET:
		start_fd_call(FILE_OP_READ, fd, false, offset);
		break;
	case READ_AT_OFFSET_OR_POSITION:
		start_fd_call(FILE_OP_READ, fd, offset == -1, offset);
		break;
	case WRITE_AT_POSITION:
		start_fd_call(FILE_OP_WRITE, fd, true, 0);
		break;
	case WRITE_AT_OFFSET:
		start_fd_call(FILE_OP_WRITE, fd, false, offset);
		break;
	case WRITE_AT_OFFSET_OR_POSITION:
		start_fd_call(FILE_OP_WRITE, fd, offset == -1, offset);
		break;
	case FSYNC_WHOLE_FILE:
		start_fd_call(FILE_OP_FSYNC, fd, false, 0);
		break;
	case OPEN:
		if (traced_process())
			start_call(FILE_OP_OPEN, NULL, 0, 0);
		break;
	default:
		break;
	}
}

/*
 * A traced syscall ends. end_call is reached from one place only: it is
 * inlined, and with --print-cgroup it holds the cgroup naming walk, which
 * the verifier of older kernels should see once per program, not per case.
 */
static __always_inline void exit_syscall(enum syscall_kind kind, long ret)
{
	struct file *file = NULL;
	enum file_op op;
	__u64 key;

	switch (kind) {
	case READ_AT_POSITION:
	case READ_AT_OFFSET:
	case READ_AT_OFFSET_OR_POSITION:
		op = FILE_OP_READ;
		break;
	case WRITE_AT_POSITION:
	case WRITE_AT_OFFSET:
	case WRITE_AT_OFFSET_OR_POSITION:
		op = FILE_OP_WRITE;
		break;
	case FSYNC_WHOLE_FILE:
		op = FILE_OP_FSYNC;
		break;
	case OPEN:
		/* the file, and whether it is one of the traced file system, exist only now */
		op = FILE_OP_OPEN;
		file = ret >= 0 ? traced_file_of_fd(ret) : NULL;
		if (!file) {
			key = call_key(FILE_OP_OPEN);
			bpf_map_delete_elem(&calls, &key);
			return;
		}
		break;
	default:
		return;
	}
	end_call(op, ret, file);
}

/*
 * raw_syscalls' sys_enter and sys_exit, as raw tracepoints (raw_tp): two
 * programs for all the syscalls (the syscall tracepoints below are two per
 * syscall), and detached at once, where
 * detaching a syscall tracepoint's program waits for an RCU grace period
 * (tens of milliseconds each on 6.x). Every syscall of the machine runs
 * them, and those not traced end at a switch on the number. The numbers and
 * argument registers are x86-64's (syscall_64.tbl, a stable ABI); a 32-bit
 * syscall (TS_COMPAT: int 0x80, or a 32-bit process) has other numbers and
 * is passed over, as the syscall tracepoints do.
 */
static __always_inline enum syscall_kind x86_64_syscall_kind(long nr)
{
	switch (nr) {
	case 0:		/* read */
	case 19:	/* readv */
		return READ_AT_POSITION;
	case 17:	/* pread64 */
	case 295:	/* preadv */
		return READ_AT_OFFSET;
	case 327:	/* preadv2 */
		return READ_AT_OFFSET_OR_POSITION;
	case 1:		/* write */
	case 20:	/* writev */
		return WRITE_AT_POSITION;
	case 18:	/* pwrite64 */
	case 296:	/* pwritev */
		return WRITE_AT_OFFSET;
	case 328:	/* pwritev2 */
		return WRITE_AT_OFFSET_OR_POSITION;
	case 74:	/* fsync */
	case 75:	/* fdatasync */
		return FSYNC_WHOLE_FILE;
	case 2:		/* open */
	case 85:	/* creat */
	case 257:	/* openat */
	case 304:	/* open_by_handle_at */
	case 437:	/* openat2 */
		return OPEN;
	default:
		return NOT_TRACED;
	}
}

static __always_inline bool compat_syscall(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, thread_info.status) & TS_COMPAT;
}

/*
 * raw_tp, not tp_btf: the same events, and a raw tracepoint needs no
 * kernel BTF to attach, so libbpf does not parse the kernel's at load.
 */
SEC("raw_tp/sys_enter")
int BPF_PROG(fs_sys_enter, struct pt_regs *regs, long nr)
{
	enum syscall_kind kind = x86_64_syscall_kind(nr);

	/* the first and fourth arguments of an x86-64 syscall */
	if (kind != NOT_TRACED && !compat_syscall())
		enter_syscall(kind, BPF_CORE_READ(regs, di), BPF_CORE_READ(regs, r10));
	return 0;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(fs_sys_exit, struct pt_regs *regs, long ret)
{
	/* the number, as syscall_get_nr() reads it */
	enum syscall_kind kind = x86_64_syscall_kind(BPF_CORE_READ(regs, orig_ax));

	if (kind != NOT_TRACED && !compat_syscall())
		exit_syscall(kind, ret);
	return 0;
}

/*
 * The syscall tracepoints (syscalls:sys_enter_<name>, sys_exit_<name>): the
 * kernel hands over the arguments, so they work on any architecture (where
 * the raw tracepoints' numbers and registers are not known).
 */
#define SYSCALL_TRACEPOINTS(name, kind)                                 \
	SEC("tracepoint/syscalls/sys_enter_" #name)                     \
	int fs_enter_##name(struct trace_event_raw_sys_enter *ctx)    \
	{                                                               \
		enter_syscall(kind, ctx->args[0], ctx->args[3]);        \
		return 0;                                               \
	}                                                               \
	SEC("tracepoint/syscalls/sys_exit_" #name)                      \
	int fs_exit_##name(struct trace_event_raw_sys_exit *ctx)      \
	{                                                               \
		exit_syscall(kind, ctx->ret);                           \
		return 0;                                               \
	}

SYSCALL_TRACEPOINTS(read, READ_AT_POSITION)
SYSCALL_TRACEPOINTS(readv, READ_AT_POSITION)
SYSCALL_TRACEPOINTS(pread64, READ_AT_OFFSET)
SYSCALL_TRACEPOINTS(preadv, READ_AT_OFFSET)
SYSCALL_TRACEPOINTS(preadv2, READ_AT_OFFSET_OR_POSITION)
SYSCALL_TRACEPOINTS(write, WRITE_AT_POSITION)
SYSCALL_TRACEPOINTS(writev, WRITE_AT_POSITION)
SYSCALL_TRACEPOINTS(pwrite64, WRITE_AT_OFFSET)
SYSCALL_TRACEPOINTS(pwritev, WRITE_AT_OFFSET)
SYSCALL_TRACEPOINTS(pwritev2, WRITE_AT_OFFSET_OR_POSITION)
SYSCALL_TRACEPOINTS(fsync, FSYNC_WHOLE_FILE)
SYSCALL_TRACEPOINTS(fdatasync, FSYNC_WHOLE_FILE)
SYSCALL_TRACEPOINTS(open, OPEN)
SYSCALL_TRACEPOINTS(creat, OPEN)
SYSCALL_TRACEPOINTS(openat, OPEN)
SYSCALL_TRACEPOINTS(openat2, OPEN)
SYSCALL_TRACEPOINTS(open_by_handle_at, OPEN)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
