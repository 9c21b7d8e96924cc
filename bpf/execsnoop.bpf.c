// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * execsnoop: one event per exec.
 *
 * Successful execs are reported from sched_process_exec, when the new image
 * is set up: the arguments are read from the new process's own argument area
 * (mm->arg_start..arg_end), which the kernel has just written and is
 * resident, so none goes missing the way arguments read from the caller's
 * memory at syscall entry do. The file name is bprm->filename, as upstream
 * prints it in place of argv[0].
 *
 * For a script (or a binfmt_misc interpreter) that area is the argument list
 * the kernel rewrote for the interpreter: the interpreter and its arguments
 * come first, then the script's path, then the caller's argv[1..]. The kernel
 * keeps bprm->interp apart from bprm->filename exactly then, and bprm->argc
 * is the rewritten count; the entry tracepoints count the caller's argv, so
 * user space knows how many leading strings the kernel put in front.
 *
 * Failed execs (-x) exist only as syscalls: the entry tracepoints remember the
 * caller's filename and argv pointers, and the exit tracepoints read them
 * (still mapped, since the exec failed) when the return value is an error.
 */
#include "common.bpf.h"

#define ARGS_BYTES 16384 /* power of two: used as a mask for the verifier */
#define FILENAME_BYTES 512
#define MAX_FAILED_ARGS 64
/* longest single argument copied for a failed exec (bounds each read for the verifier) */
#define FAILED_ARG_BYTES 4096
/*
 * Caller's arguments counted at entry; beyond this the count is unknown, and
 * user space finds a script's path among the arguments by its file name. The
 * verifier walks every turn of the loop when it loads the program: 4096 took
 * about 90 ms of each of the two entry programs' load, which 64 makes ~1 ms.
 */
#define MAX_COUNTED_ARGS 64
#define ARGC_UNKNOWN ((__u32)-1)

const volatile __u32 targ_uid = (__u32)-1;
const volatile __u32 targ_ppid = 0;

struct event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 ppid;
	__u32 uid;
	__u32 cpu;
	__s32 retval;
	/* bytes of args[] filled: NUL-separated strings, argv[0] first */
	__u32 args_size;
	/* nonzero when the argument area was larger than args[] */
	__u32 args_truncated;
	/* nonzero when an interpreter runs the file (bprm->interp != bprm->filename) */
	__u32 interpreted;
	/* strings in the argument area (bprm->argc, rewritten for an interpreter) */
	__u32 argc;
	/* the caller's argc, counted at syscall entry; ARGC_UNKNOWN if not known */
	__u32 caller_argc;
	char comm[TASK_COMM_LEN];
	char pcomm[TASK_COMM_LEN];
	char filename[FILENAME_BYTES];
	char args[ARGS_BYTES];
};

/* Anchors struct event in the object's BTF, where user space reads its layout. */
struct event *unused_event __attribute__((unused));

struct exec_call {
	const char *filename;
	const char *const *argv;
	__u32 argc;
};

/*
 * Execs in flight, by thread id. LRU: without -x nothing removes the entry
 * of a failed exec, and a full table must not refuse the next one.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct exec_call);
} exec_calls SEC(".maps");

/* Fills the fields every event has; returns NULL when the task is filtered out. */
static __always_inline struct event *start_event(struct task_struct *task, __s32 retval)
{
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	__u32 ppid = BPF_CORE_READ(task, real_parent, tgid);
	struct event *e;

	if (targ_uid != (__u32)-1 && uid != targ_uid)
		return NULL;
	if (targ_ppid && ppid != targ_ppid)
		return NULL;
	if (!task_selected())
		return NULL;
	e = reserve_event(sizeof(*e));
	if (!e)
		return NULL;
	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = current_cgroup();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = ppid;
	e->uid = uid;
	e->cpu = bpf_get_smp_processor_id();
	e->retval = retval;
	e->args_size = 0;
	e->args_truncated = 0;
	e->interpreted = 0;
	e->argc = 0;
	e->caller_argc = ARGC_UNKNOWN;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	BPF_CORE_READ_STR_INTO(&e->pcomm, task, real_parent, comm);
	return e;
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(exec_done, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	unsigned long arg_start = BPF_CORE_READ(mm, arg_start);
	unsigned long size = BPF_CORE_READ(mm, arg_end) - arg_start;
	__u32 tid = old_pid; /* the thread that called exec, as at syscall entry */
	struct event *e = start_event(task, 0);
	struct exec_call *call;

	if (!e) {
		bpf_map_delete_elem(&exec_calls, &tid);
		return 0;
	}
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	e->argc = BPF_CORE_READ(bprm, argc);
	if (BPF_CORE_READ(bprm, interp) != BPF_CORE_READ(bprm, filename)) {
		e->interpreted = 1;
		call = bpf_map_lookup_elem(&exec_calls, &tid);
		if (call)
			e->caller_argc = call->argc;
	}
	bpf_map_delete_elem(&exec_calls, &tid);
	if (size > ARGS_BYTES) {
		size = ARGS_BYTES;
		e->args_truncated = 1;
	}
	if (bpf_probe_read_user(e->args, size & (ARGS_BYTES - 1) ?: (size ? ARGS_BYTES : 0),
				(const void *)arg_start) == 0)
		e->args_size = size;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The caller's argc (argv is still in its memory at entry), or ARGC_UNKNOWN. */
static __always_inline __u32 count_args(const char *const *argv)
{
	const char *arg;
	__u32 i;

	for (i = 0; i < MAX_COUNTED_ARGS; i++) {
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]))
			return ARGC_UNKNOWN;
		if (!arg)
			return i;
	}
	return ARGC_UNKNOWN;
}

static __always_inline void remember_call(const char *filename, const char *const *argv)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct exec_call call;

	zero_for_map(&call);
	call.filename = filename;
	call.argv = argv;
	call.argc = count_args(argv);
	bpf_map_update_elem(&exec_calls, &tid, &call, BPF_ANY);
}

/* On a failed exec the caller's memory is intact: copy filename and argv from it. */
static __always_inline void report_failure(long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct exec_call *call = bpf_map_lookup_elem(&exec_calls, &tid);
	struct task_struct *task;
	struct event *e;
	__u32 offset = 0;
	int i;

	if (!call)
		return;
	if (ret >= 0)
		goto done;
	task = (struct task_struct *)bpf_get_current_task();
	e = start_event(task, ret);
	if (!e)
		goto done;
	bpf_probe_read_user_str(e->filename, sizeof(e->filename), call->filename);
	for (i = 0; i < MAX_FAILED_ARGS; i++) {
		const char *arg = NULL;
		long n;

		if (bpf_probe_read_user(&arg, sizeof(arg), &call->argv[i]) || !arg)
			break;
		if (offset > ARGS_BYTES - FAILED_ARG_BYTES) {
			e->args_truncated = 1;
			break;
		}
		n = bpf_probe_read_user_str(&e->args[offset], FAILED_ARG_BYTES, arg);
		if (n <= 0)
			break;
		offset += n;
		if (n == FAILED_ARG_BYTES) {
			e->args_truncated = 1;
			break;
		}
	}
	e->args_size = offset;
	bpf_ringbuf_submit(e, 0);
done:
	bpf_map_delete_elem(&exec_calls, &tid);
}

SEC("tracepoint/syscalls/sys_enter_execve")
int enter_execve(struct trace_event_raw_sys_enter *ctx)
{
	remember_call((const char *)ctx->args[0], (const char *const *)ctx->args[1]);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int enter_execveat(struct trace_event_raw_sys_enter *ctx)
{
	remember_call((const char *)ctx->args[1], (const char *const *)ctx->args[2]);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int exit_execve(struct trace_event_raw_sys_exit *ctx)
{
	report_failure(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int exit_execveat(struct trace_event_raw_sys_exit *ctx)
{
	report_failure(ctx->ret);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
