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
 *
 * Each file system's two sets are an object of their own
 * (fsslower-<fs>.bpf.c: FILE_OPERATIONS below), and the syscall programs
 * another (fsslower.bpf.c), all with what this header holds: a run opens
 * only the object of the set it tries, and libbpf's open reads every
 * program of an object (in a 6.1 guest 47 ms for fsslower's 116 in one
 * object, 22 for ext4's 16).
 */
#ifndef FSSLOWER_BPF_H
#define FSSLOWER_BPF_H

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

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#endif /* FSSLOWER_BPF_H */
