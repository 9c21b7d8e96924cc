// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * ext4slower: ext4 reads, writes, opens and fsyncs that take longer than a
 * threshold.
 *
 * Three sets of programs see the same operations; user space loads the first
 * set the kernel accepts:
 *  - fentry/fexit on ext4's file operations (BPF trampolines: cheapest);
 *  - kprobe/kretprobe on the same functions;
 *  - the syscall tracepoints of the calls that reach those operations. A call
 *    is kept only when its file is a regular ext4 file, as told by the file's
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

enum file_op {
	FILE_OP_READ,
	FILE_OP_WRITE,
	FILE_OP_OPEN,
	FILE_OP_FSYNC,
};

const volatile __u64 min_lat_ns = 10000000;
const volatile __u32 targ_tgid = 0;
/*
 * The tool itself: its output written to an ext4 file would otherwise be
 * reported, and the report written, and so on, for as long as it runs.
 */
const volatile __u32 self_tgid = 0;

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
 * Calls in flight, by thread and operation: an O_SYNC write calls
 * ext4_sync_file() from within ext4_file_write_iter(), and both are timed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CALLS);
	__type(key, __u64);
	__type(value, struct call);
} calls SEC(".maps");

static __always_inline __u64 call_key(enum file_op op)
{
	return (bpf_get_current_pid_tgid() << 32) | op;
}

static __always_inline bool traced_process(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	return tgid != self_tgid && (!targ_tgid || tgid == targ_tgid);
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
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_kernel_str(e->file, sizeof(e->file), BPF_CORE_READ(file, f_path.dentry, d_name.name));
	bpf_ringbuf_submit(e, 0);
done:
	bpf_map_delete_elem(&calls, &key);
}

/* fentry/fexit */

SEC("fentry/ext4_file_read_iter")
int BPF_PROG(ext4_fentry_read, struct kiocb *iocb)
{
	if (traced_process())
		start_call(FILE_OP_READ, iocb->ki_filp, iocb->ki_pos, 0);
	return 0;
}

SEC("fexit/ext4_file_read_iter")
int BPF_PROG(ext4_fexit_read, struct kiocb *iocb, struct iov_iter *to, ssize_t ret)
{
	end_call(FILE_OP_READ, ret, NULL);
	return 0;
}

SEC("fentry/ext4_file_write_iter")
int BPF_PROG(ext4_fentry_write, struct kiocb *iocb)
{
	if (traced_process())
		start_call(FILE_OP_WRITE, iocb->ki_filp, iocb->ki_pos, 0);
	return 0;
}

SEC("fexit/ext4_file_write_iter")
int BPF_PROG(ext4_fexit_write, struct kiocb *iocb, struct iov_iter *from, ssize_t ret)
{
	end_call(FILE_OP_WRITE, ret, NULL);
	return 0;
}

SEC("fentry/ext4_file_open")
int BPF_PROG(ext4_fentry_open, struct inode *inode, struct file *file)
{
	if (traced_process())
		start_call(FILE_OP_OPEN, file, 0, 0);
	return 0;
}

SEC("fexit/ext4_file_open")
int BPF_PROG(ext4_fexit_open)
{
	end_call(FILE_OP_OPEN, 0, NULL);
	return 0;
}

SEC("fentry/ext4_sync_file")
int BPF_PROG(ext4_fentry_fsync, struct file *file, loff_t start, loff_t end)
{
	if (traced_process())
		start_call(FILE_OP_FSYNC, file, start, end - start);
	return 0;
}

SEC("fexit/ext4_sync_file")
int BPF_PROG(ext4_fexit_fsync)
{
	end_call(FILE_OP_FSYNC, 0, NULL);
	return 0;
}

/* kprobe/kretprobe */

SEC("kprobe/ext4_file_read_iter")
int BPF_KPROBE(ext4_kprobe_read, struct kiocb *iocb)
{
	if (traced_process())
		start_call(FILE_OP_READ, BPF_CORE_READ(iocb, ki_filp), BPF_CORE_READ(iocb, ki_pos), 0);
	return 0;
}

SEC("kretprobe/ext4_file_read_iter")
int BPF_KRETPROBE(ext4_kretprobe_read, ssize_t ret)
{
	end_call(FILE_OP_READ, ret, NULL);
	return 0;
}

SEC("kprobe/ext4_file_write_iter")
int BPF_KPROBE(ext4_kprobe_write, struct kiocb *iocb)
{
	if (traced_process())
		start_call(FILE_OP_WRITE, BPF_CORE_READ(iocb, ki_filp), BPF_CORE_READ(iocb, ki_pos), 0);
	return 0;
}

SEC("kretprobe/ext4_file_write_iter")
int BPF_KRETPROBE(ext4_kretprobe_write, ssize_t ret)
{
	end_call(FILE_OP_WRITE, ret, NULL);
	return 0;
}

SEC("kprobe/ext4_file_open")
int BPF_KPROBE(ext4_kprobe_open, struct inode *inode, struct file *file)
{
	if (traced_process())
		start_call(FILE_OP_OPEN, file, 0, 0);
	return 0;
}

SEC("kretprobe/ext4_file_open")
int BPF_KRETPROBE(ext4_kretprobe_open)
{
	end_call(FILE_OP_OPEN, 0, NULL);
	return 0;
}

SEC("kprobe/ext4_sync_file")
int BPF_KPROBE(ext4_kprobe_fsync, struct file *file, loff_t start, loff_t end)
{
	if (traced_process())
		start_call(FILE_OP_FSYNC, file, start, end - start);
	return 0;
}

SEC("kretprobe/ext4_sync_file")
int BPF_KRETPROBE(ext4_kretprobe_fsync)
{
	end_call(FILE_OP_FSYNC, 0, NULL);
	return 0;
}

/* syscall tracepoints */

/*
 * The open file behind descriptor `fd` of the current task if it is a
 * regular file of an ext4 filesystem (what ext4's file operations serve),
 * else NULL. The filesystem is told by its type's name: ext2 and ext3 share
 * ext4's superblock magic, and so does an ext2 driver's filesystem.
 */
static __always_inline struct file *ext4_file_of_fd(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	struct inode *inode;
	char fs_name[8];

	if (fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	if (BPF_CORE_READ(file, f_mode) & FMODE_PATH)
		return NULL;
	inode = BPF_CORE_READ(file, f_inode);
	if ((BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFREG)
		return NULL;
	if (bpf_probe_read_kernel_str(fs_name, sizeof(fs_name), BPF_CORE_READ(inode, i_sb, s_type, name)) != 5)
		return NULL;
	if (fs_name[0] != 'e' || fs_name[1] != 'x' || fs_name[2] != 't' || fs_name[3] != '4')
		return NULL;
	return file;
}

/* A read, write or fsync on descriptor `fd`: at the file position, or at `offset`. */
static __always_inline void start_fd_call(enum file_op op, __u32 fd, bool at_file_position, __s64 offset)
{
	struct file *file;

	if (!traced_process())
		return;
	file = ext4_file_of_fd(fd);
	if (!file)
		return;
	if (at_file_position)
		offset = BPF_CORE_READ(file, f_pos);
	start_call(op, file, offset, op == FILE_OP_FSYNC ? WHOLE_FILE_END : 0);
}

static __always_inline void end_open(long ret)
{
	struct file *file = ret >= 0 ? ext4_file_of_fd(ret) : NULL;
	__u64 key = call_key(FILE_OP_OPEN);

	if (file)
		end_call(FILE_OP_OPEN, 0, file);
	else
		bpf_map_delete_elem(&calls, &key);
}

#define SYSCALL_EXIT(name, op)                                          \
	SEC("tracepoint/syscalls/sys_exit_" #name)                      \
	int ext4_exit_##name(struct trace_event_raw_sys_exit *ctx)      \
	{                                                               \
		end_call(op, ctx->ret, NULL);                           \
		return 0;                                               \
	}

/* read(2), readv(2), write(2), writev(2): at the file position. */
#define AT_FILE_POSITION(name, op)                                      \
	SEC("tracepoint/syscalls/sys_enter_" #name)                     \
	int ext4_enter_##name(struct trace_event_raw_sys_enter *ctx)    \
	{                                                               \
		start_fd_call(op, ctx->args[0], true, 0);               \
		return 0;                                               \
	}                                                               \
	SYSCALL_EXIT(name, op)

/* pread64(2), pwrite64(2), preadv(2), pwritev(2): at the offset argument (on 64-bit, pos_l). */
#define AT_OFFSET(name, op)                                             \
	SEC("tracepoint/syscalls/sys_enter_" #name)                     \
	int ext4_enter_##name(struct trace_event_raw_sys_enter *ctx)    \
	{                                                               \
		start_fd_call(op, ctx->args[0], false, ctx->args[3]);   \
		return 0;                                               \
	}                                                               \
	SYSCALL_EXIT(name, op)

/* preadv2(2), pwritev2(2): at the offset argument, or the file position when it is -1. */
#define AT_OFFSET_OR_POSITION(name, op)                                 \
	SEC("tracepoint/syscalls/sys_enter_" #name)                     \
	int ext4_enter_##name(struct trace_event_raw_sys_enter *ctx)    \
	{                                                               \
		__s64 offset = ctx->args[3];                            \
		start_fd_call(op, ctx->args[0], offset == -1, offset);  \
		return 0;                                               \
	}                                                               \
	SYSCALL_EXIT(name, op)

/* fsync(2), fdatasync(2): the whole file, from offset 0, as ext4_sync_file() is asked. */
#define FSYNC_CALL(name)                                                \
	SEC("tracepoint/syscalls/sys_enter_" #name)                     \
	int ext4_enter_##name(struct trace_event_raw_sys_enter *ctx)    \
	{                                                               \
		start_fd_call(FILE_OP_FSYNC, ctx->args[0], false, 0);   \
		return 0;                                               \
	}                                                               \
	SYSCALL_EXIT(name, FILE_OP_FSYNC)

#define OPEN_CALL(name)                                                 \
	SEC("tracepoint/syscalls/sys_enter_" #name)                     \
	int ext4_enter_##name(struct trace_event_raw_sys_enter *ctx)    \
	{                                                               \
		if (traced_process())                                   \
			start_call(FILE_OP_OPEN, NULL, 0, 0);           \
		return 0;                                               \
	}                                                               \
	SEC("tracepoint/syscalls/sys_exit_" #name)                      \
	int ext4_exit_##name(struct trace_event_raw_sys_exit *ctx)      \
	{                                                               \
		end_open(ctx->ret);                                     \
		return 0;                                               \
	}

AT_FILE_POSITION(read, FILE_OP_READ)
AT_FILE_POSITION(readv, FILE_OP_READ)
AT_OFFSET(pread64, FILE_OP_READ)
AT_OFFSET(preadv, FILE_OP_READ)
AT_OFFSET_OR_POSITION(preadv2, FILE_OP_READ)
AT_FILE_POSITION(write, FILE_OP_WRITE)
AT_FILE_POSITION(writev, FILE_OP_WRITE)
AT_OFFSET(pwrite64, FILE_OP_WRITE)
AT_OFFSET(pwritev, FILE_OP_WRITE)
AT_OFFSET_OR_POSITION(pwritev2, FILE_OP_WRITE)
FSYNC_CALL(fsync)
FSYNC_CALL(fdatasync)
OPEN_CALL(open)
OPEN_CALL(creat)
OPEN_CALL(openat)
OPEN_CALL(openat2)
OPEN_CALL(open_by_handle_at)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
