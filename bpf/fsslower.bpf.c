// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* fsslower's syscall programs, for any file system (see fsslower.bpf.h) */
#include "fsslower.bpf.h"

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
