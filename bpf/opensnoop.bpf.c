// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * opensnoop: one event per open(), openat() and openat2().
 *
 * The entry tracepoints keep the caller's arguments (path pointer, flags,
 * mode, directory fd) per thread; the exit tracepoints read the path from
 * the caller's memory, which is still there since the syscall is
 * synchronous, and emit one record. Every filter but the result (-x) runs
 * at entry, so an open filtered out touches no map at all.
 *
 * Records are variable length: a fixed header (struct event), then the path
 * as given (NUL-terminated), then with -F the directory names from the
 * directory the path is relative to up to the process root, innermost
 * first, each NUL-terminated. They are built in a per-CPU scratch area and
 * copied with bpf_ringbuf_output at their real size, so a storm of short
 * paths moves ~100 bytes per open, not the 8 KiB a fixed record would.
 */
#include "common.bpf.h"

#define PATH_BYTES 4096		/* PATH_MAX: the longest path a syscall accepts */
#define NAME_BYTES 256		/* NAME_MAX + 1: one directory name and its NUL */
#define MAX_DIR_DEPTH 64	/* directory levels (and mount crossings) walked for -F */
#define MAX_PATH_PREFIXES 8	/* --path prefixes */
#define PATH_PREFIX_BYTES 256	/* room for one prefix and its NUL */
#define CALLERS 2		/* -c: return addresses shown */
/* room for the path and the directory names, with a whole name past any offset that is allowed to start one */
#define STRINGS_BYTES (PATH_BYTES + PATH_BYTES + NAME_BYTES)

#define AT_FDCWD -100
#define O_ACCMODE 00000003
#define O_CREAT 00000100
/* __O_TMPFILE: the same bit on every architecture that has it; never valid without O_DIRECTORY */
#define O_TMPFILE_BIT 020000000

/* What -F found for a relative path (struct event.dir_status). */
enum dir_status {
	DIR_NONE = 0,		/* absolute path, or -F not asked */
	DIR_COMPLETE = 1,	/* every name up to the process root */
	DIR_TRUNCATED = 2,	/* deeper than MAX_DIR_DEPTH, or more names than fit: outer names missing */
	DIR_UNKNOWN = 3,	/* the directory could not be read (closed dirfd, unreadable name) */
};

const volatile __u32 targ_tgid = 0;
const volatile __u32 targ_tid = 0;
const volatile __u32 targ_uid = (__u32)-1;
const volatile bool targ_failed = false;
/* -f: an open is selected if it has any of these flag bits... */
const volatile __u32 targ_flag_bits = 0;
/* ...or its access mode (flags & O_ACCMODE) is one whose bit (1 << mode) is set here */
const volatile __u32 targ_access_modes = 0;
const volatile bool filter_flags = false;
/* -n: substring of the command name, and its length (0: no filter) */
const volatile char targ_comm[TASK_COMM_LEN] = {};
const volatile __u32 targ_comm_len = 0;
const volatile bool full_path = false;
/* --path: how many prefixes, each NUL-terminated in its PATH_PREFIX_BYTES slot */
const volatile __u32 targ_path_count = 0;
const volatile char targ_paths[MAX_PATH_PREFIXES * PATH_PREFIX_BYTES] = {};
/* -c: the caller's return addresses, as libbpf-tools' --callers */
const volatile bool targ_callers = false;

struct event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__s32 ret;
	__u32 flags;
	/* the mode argument when O_CREAT or O_TMPFILE makes it meaningful, else 0 */
	__u32 mode;
	/* bytes of the path after the header, including its NUL */
	__u16 path_size;
	/* bytes of directory names after the path */
	__u16 dir_size;
	/* enum dir_status */
	__u8 dir_status;
	__u8 pad[3];
	char comm[TASK_COMM_LEN];
	/* -c: two return addresses up the user stack from the syscall (0: none) */
	__u64 callers[CALLERS];
};

/* Anchors struct event in the object's BTF, where user space reads its layout. */
struct event *unused_event __attribute__((unused));

struct record {
	struct event event;
	char strings[STRINGS_BYTES];
	/*
	 * Where the next directory name goes. Kept in map memory, not a
	 * register: the verifier tracks a register's range precisely and
	 * would check each of the 64 levels once per distinct range (over its
	 * limit of a million instructions), while a value loaded from a map is
	 * simply unknown, so the states of one level are all alike.
	 */
	__u32 end;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct record);
} scratch SEC(".maps");

struct open_call {
	const char *path;
	__u32 flags;
	__u32 mode;
	__s32 dirfd;
};

/* Opens in flight, by thread id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct open_call);
} open_calls SEC(".maps");

static __always_inline bool comm_selected(void)
{
	char comm[TASK_COMM_LEN];
	int start, i;

	if (!targ_comm_len)
		return true;
	bpf_get_current_comm(comm, sizeof(comm));
	for (start = 0; start + targ_comm_len < TASK_COMM_LEN; start++) {
		for (i = 0; i < TASK_COMM_LEN - 1 && i < targ_comm_len; i++) {
			if (comm[(start + i) & (TASK_COMM_LEN - 1)] != targ_comm[i])
				break;
		}
		if (i == targ_comm_len)
			return true;
	}
	return false;
}

static __always_inline bool flags_selected(__u32 flags)
{
	if (!filter_flags)
		return true;
	return (flags & targ_flag_bits) || (targ_access_modes & (1 << (flags & O_ACCMODE)));
}

/* Whether `path` starts with one of the --path prefixes. */
static __always_inline bool path_selected(const char *path)
{
	int i, j;

	for (i = 0; i < MAX_PATH_PREFIXES && i < targ_path_count; i++) {
		for (j = 0; j < PATH_PREFIX_BYTES; j++) {
			char want = targ_paths[i * PATH_PREFIX_BYTES + j];

			if (!want)
				return true;
			/* the path's NUL differs from any byte of the prefix: a shorter path stops here */
			if (path[j] != want)
				break;
		}
	}
	return false;
}

static __always_inline void remember_call(const char *path, __u32 flags, __u32 mode, __s32 dirfd)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct open_call call;

	zero_for_map(&call);
	call.path = path;
	call.flags = flags;
	call.mode = (flags & O_CREAT) || (flags & O_TMPFILE_BIT) ? mode : 0;
	call.dirfd = dirfd;

	if (targ_tgid && (id >> 32) != targ_tgid)
		return;
	if (targ_tid && tid != targ_tid)
		return;
	if (targ_uid != (__u32)-1 && (__u32)bpf_get_current_uid_gid() != targ_uid)
		return;
	if (!flags_selected(flags))
		return;
	if (!comm_selected())
		return;
	if (!task_selected())
		return;
	/* A full table would drop this open without a word: count it as lost. */
	if (bpf_map_update_elem(&open_calls, &tid, &call, BPF_ANY))
		__sync_fetch_and_add(&lost_events, 1);
}

/* The directory a relative path is resolved from: the cwd, or the file behind dirfd. */
static __always_inline bool start_directory(struct task_struct *task, __s32 dirfd,
					    struct dentry **dentry, struct vfsmount **mnt)
{
	struct file **fds;
	struct file *file = NULL;

	if (dirfd == AT_FDCWD) {
		*dentry = BPF_CORE_READ(task, fs, pwd.dentry);
		*mnt = BPF_CORE_READ(task, fs, pwd.mnt);
		return *dentry && *mnt;
	}
	if (dirfd < 0 || (__u32)dirfd >= BPF_CORE_READ(task, files, fdt, max_fds))
		return false;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[dirfd]) || !file)
		return false;
	*dentry = BPF_CORE_READ(file, f_path.dentry);
	*mnt = BPF_CORE_READ(file, f_path.mnt);
	return *dentry && *mnt;
}

/*
 * Appends the names of the directories from `dentry` up to the process root
 * (as getcwd() and d_path() stop there: a chrooted process sees its own
 * paths), crossing mount points without naming mount roots, so that a bind
 * mount of a subdirectory shows where it is mounted, not where it comes from.
 * Advances r->end past the names written.
 */
static __always_inline void append_directories(struct record *r, __s32 dirfd)
{
	volatile __u32 *end = &r->end;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct dentry *root_dentry = BPF_CORE_READ(task, fs, root.dentry);
	struct vfsmount *root_mnt = BPF_CORE_READ(task, fs, root.mnt);
	struct dentry *dentry, *parent;
	struct vfsmount *vfsmnt;
	struct mount *mnt, *mnt_parent;
	__u32 offset;
	long length;
	int depth;

	if (!start_directory(task, dirfd, &dentry, &vfsmnt)) {
		r->event.dir_status = DIR_UNKNOWN;
		return;
	}
	mnt = (struct mount *)((void *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
	r->event.dir_status = DIR_TRUNCATED;
	for (depth = 0; depth < MAX_DIR_DEPTH; depth++) {
		if (dentry == root_dentry && vfsmnt == root_mnt) {
			r->event.dir_status = DIR_COMPLETE;
			break;
		}
		if (dentry == BPF_CORE_READ(vfsmnt, mnt_root)) {
			mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
			if (mnt_parent == mnt) {
				/* the top of the mount tree: outside a chroot, or detached */
				r->event.dir_status = DIR_COMPLETE;
				break;
			}
			dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			vfsmnt = (struct vfsmount *)((void *)mnt + bpf_core_field_offset(struct mount, mnt));
			continue;
		}
		parent = BPF_CORE_READ(dentry, d_parent);
		if (parent == dentry) {
			r->event.dir_status = DIR_COMPLETE;
			break;
		}
		offset = *end;
		if (offset > STRINGS_BYTES - NAME_BYTES)
			break;
		length = bpf_probe_read_kernel_str(&r->strings[offset], NAME_BYTES,
						   BPF_CORE_READ(dentry, d_name.name));
		if (length <= 0) {
			r->event.dir_status = DIR_UNKNOWN;
			break;
		}
		*end = offset + length;
		dentry = parent;
	}
}

/*
 * -c: the user stack as the kernel walks it (frame pointers), past its first
 * address, the syscall instruction in the C library's wrapper.
 */
static __always_inline void user_callers(void *ctx, __u64 *callers)
{
	__u64 stack[CALLERS + 1] = {};
	int i;

	bpf_get_stack(ctx, stack, sizeof(stack), BPF_F_USER_STACK);
	for (i = 0; i < CALLERS; i++)
		callers[i] = stack[i + 1];
}

static __always_inline void report(void *ctx, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct open_call *call = bpf_map_lookup_elem(&open_calls, &tid);
	__u32 zero = 0, path_size, end;
	struct record *r;
	bool relative;
	long length;

	if (!call)
		return;
	if (targ_failed && ret >= 0)
		goto done;
	r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		goto done;
	r->event.ts_ns = bpf_ktime_get_ns();
	r->event.cgroup_id = current_cgroup();
	r->event.pid = id >> 32;
	r->event.tid = tid;
	r->event.uid = (__u32)bpf_get_current_uid_gid();
	r->event.ret = ret;
	r->event.flags = call->flags;
	r->event.mode = call->mode;
	r->event.dir_status = DIR_NONE;
	bpf_get_current_comm(r->event.comm, sizeof(r->event.comm));
	length = bpf_probe_read_user_str(r->strings, PATH_BYTES, call->path);
	if (length <= 0 || length > PATH_BYTES) {
		/* an unreadable path (a bad pointer: the open fails with EFAULT) shows empty */
		r->strings[0] = '\0';
		length = 1;
	}
	path_size = length;
	r->end = path_size;
	relative = r->strings[0] != '/' && r->strings[0] != '\0';
	/* --path: the path as given, or with -F an absolute one; a relative -F path is joined (and matched) in user space */
	if (targ_path_count && !(full_path && relative) && !path_selected(r->strings))
		goto done;
	if (full_path && relative)
		append_directories(r, call->dirfd);
	if (targ_callers)
		user_callers(ctx, r->event.callers);
	end = r->end;
	r->event.path_size = path_size;
	r->event.dir_size = end - path_size;
	if (end > STRINGS_BYTES)
		end = STRINGS_BYTES;
	if (bpf_ringbuf_output(&events, r, sizeof(r->event) + end, 0))
		__sync_fetch_and_add(&lost_events, 1);
done:
	bpf_map_delete_elem(&open_calls, &tid);
}

SEC("tracepoint/syscalls/sys_enter_open")
int enter_open(struct trace_event_raw_sys_enter *ctx)
{
	remember_call((const char *)ctx->args[0], (__u32)ctx->args[1], (__u32)ctx->args[2], AT_FDCWD);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	remember_call((const char *)ctx->args[1], (__u32)ctx->args[2], (__u32)ctx->args[3], (__s32)ctx->args[0]);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat2")
int enter_openat2(struct trace_event_raw_sys_enter *ctx)
{
	struct open_how how = {};

	bpf_probe_read_user(&how, sizeof(how), (const void *)ctx->args[2]);
	remember_call((const char *)ctx->args[1], (__u32)how.flags, (__u32)how.mode, (__s32)ctx->args[0]);
	return 0;
}

/*
 * The exits of open, openat and openat2, whose tracepoints have the same
 * layout: one program, attached to each of them (tools/opensnoop.ts,
 * tracepointPlan), so that the kernel verifies it once, not three times
 * (its verification was the longest step of a start).
 */
SEC("tracepoint/syscalls/sys_exit_openat")
int exit_open_calls(struct trace_event_raw_sys_exit *ctx)
{
	report(ctx, ctx->ret);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
