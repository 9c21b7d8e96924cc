/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Block request tracing shared by biolatency and biosnoop: every way of
 * seeing a request start, get dispatched to the device and complete, on
 * every kernel with BTF. User space (common/bio.ts) chooses which programs
 * load; each tool defines the three handlers the programs call:
 *
 *   on_request_start(rq, insert)  the request was created, in the context of
 *                                 the process that issued the I/O
 *                                 (block_io_start, kernel >= 6.5, or
 *                                 blk_account_io_start by fentry or kprobe);
 *                                 insert is true where only block_rq_insert
 *                                 stands in for these;
 *   on_request_issue(rq, origin)  sent to the device driver (block_rq_issue);
 *                                 origin, if not NULL, is who created it and
 *                                 when, as block_getrq saw it (below);
 *   on_request_requeue(rq)        to be dispatched again (block_rq_requeue);
 *   on_request_complete(rq)       done (block_rq_complete).
 *
 * An entry kept for a request's address and found dispatched when a request
 * is created or dispatched there is an earlier request's, whose completion
 * no program saw (requeues clear the dispatch, so they are not taken for
 * that): the tools count it in unseen_completions.
 *
 * Where blk_account_io_start is inlined and block_io_start does not exist
 * (5.16 to 6.4, as in Debian 12's 6.1), the creation is seen at
 * block_getrq instead: it fires in the issuing process when a bio gets a new
 * request, with the bio but not yet the request. The bio is remembered and
 * found again at dispatch as the request's first bio (rq->bio); a bio merged
 * in front of it (block_bio_frontmerge) takes its place.
 *
 * The tracepoints are raw_tp programs, not tp_btf: the same events on every
 * kernel, and a raw tracepoint needs no kernel BTF to attach, so that
 * libbpf need not parse the kernel's at load (~20 ms of every start).
 */
#ifndef EBPF_TOOLS_BIO_BPF_H
#define EBPF_TOOLS_BIO_BPF_H

#include "common.bpf.h"

/* The kernel's internal dev_t, as /proc/partitions' major and minor give it. */
#define MINORBITS 20
#define MKDEV(major, minor) (((__u32)(major) << MINORBITS) | (__u32)(minor))

/* Requests in flight that can be followed; more are counted in untracked_requests. */
#define MAX_REQUESTS 32768
/* what an update with BPF_NOEXIST of a key present answers */
#define EEXIST 17

/* -d: only requests to this disk. */
const volatile bool filter_dev = false;
const volatile __u32 targ_dev = 0;

/* Requests that could not be followed: a table full (MAX_REQUESTS in flight) or busy. */
__u64 untracked_requests = 0;

/*
 * Requests dispatched whose completion no program of ours saw. The kernel
 * skips a program that is already running on the CPU when an interrupt
 * completes a request (the program's recursion_misses), and some hosts run
 * no BPF program in the context of tasks they hide from tracing.
 */
__u64 unseen_completions = 0;

/* Set by user space for the block_getrq plan. */
const volatile bool origins_by_bio = false;

/* Who created a request, and when. */
struct request_origin {
	__u64 created_ns;
	/* cgroup v2 id of the issuing process (0 when not seen) */
	__u64 cgroup_id;
	__u32 pid;
	char comm[TASK_COMM_LEN];
};

/*
 * By first bio, the origin of requests seen at block_getrq until they are
 * dispatched. LRU: the entries of requests never dispatched through here
 * (merged into another, a bio merged in front) are evicted, not kept.
 * User space shrinks it to one entry for the other plans.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_REQUESTS);
	__type(key, struct bio *);
	__type(value, struct request_origin);
} bio_origins SEC(".maps");

static __always_inline int on_request_start(struct request *rq, bool insert);
static __always_inline int on_request_issue(struct request *rq, struct request_origin *origin);
static __always_inline int on_request_requeue(struct request *rq);
static __always_inline int on_request_complete(struct request *rq);

/* The current task as a request's origin. */
static __always_inline void current_origin(struct request_origin *origin)
{
	origin->created_ns = bpf_ktime_get_ns();
	origin->cgroup_id = current_cgroup();
	origin->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(origin->comm, sizeof(origin->comm));
}

/* A map update that counts the request as untracked if the table refused it (a requeue's -EEXIST aside). */
static __always_inline void update_or_count(void *map, void *key, void *value, __u64 flags)
{
	long err = bpf_map_update_elem(map, key, value, flags);

	if (err && err != -EEXIST)
		__sync_fetch_and_add(&untracked_requests, 1);
}

/*
 * Whether the entry found at a request's address when a request is created
 * or dispatched there, dispatched at issued_ns, is an earlier request's
 * whose completion no program saw (a requeue clears issued_ns): counted.
 */
static __always_inline bool earlier_request(__u64 issued_ns)
{
	if (!issued_ns)
		return false;
	__sync_fetch_and_add(&unseen_completions, 1);
	return true;
}

/* Older kernels name a request's disk in the request; newer ones only through its queue. */
struct request___with_rq_disk {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

/* The disk a request is for, as MKDEV(major, first minor); 0 if none. */
static __always_inline __u32 request_dev(struct request *rq)
{
	struct request___with_rq_disk *old = (void *)rq;
	struct gendisk *disk;

	if (bpf_core_field_exists(old->rq_disk))
		disk = BPF_CORE_READ(old, rq_disk);
	else
		disk = BPF_CORE_READ(rq, q, disk);
	if (!disk)
		return 0;
	return MKDEV(BPF_CORE_READ(disk, major), BPF_CORE_READ(disk, first_minor));
}

static __always_inline bool dev_selected(struct request *rq)
{
	return !filter_dev || request_dev(rq) == targ_dev;
}

/* Whether a process filter (-c, --cgroupmap, --mntnsmap) is on. */
static __always_inline bool selection_active(void)
{
	return filter_cgroup || filter_cgroupset || filter_mntnsset;
}

/*
 * Until 5.11 (and 5.10.137) block_rq_insert and block_rq_issue passed the
 * request queue before the request. Whether this kernel does is a CO-RE
 * question on the tracepoint's prototype, answered when the object loads;
 * the structs are only declared, so that they match any kernel's layout.
 * The barrier keeps each choice a load at a constant offset from ctx:
 * clang would otherwise merge the two loads into one from ctx indexed by
 * the answer, which the verifier refuses ("dereference of modified ctx
 * ptr", as 5.10 said of block_getrq).
 */
struct request_queue___any;
struct request___any;
typedef void (*btf_trace_block_rq_insert___with_queue)(void *, struct request_queue___any *,
							 struct request___any *);
typedef void (*btf_trace_block_rq_issue___with_queue)(void *, struct request_queue___any *,
							struct request___any *);
typedef void (*btf_trace_block_rq_requeue___with_queue)(void *, struct request_queue___any *,
							  struct request___any *);

/* Until 5.11, block_getrq also passed the queue first and block_bio_frontmerge the queue and request. */
struct bio___any;
typedef void (*btf_trace_block_getrq___with_queue)(void *, struct request_queue___any *, struct bio___any *, int);
typedef void (*btf_trace_block_bio_frontmerge___with_queue)(void *, struct request_queue___any *,
							      struct request___any *, struct bio___any *);

static __always_inline struct bio *getrq_bio(__u64 *ctx)
{
	if (bpf_core_type_matches(btf_trace_block_getrq___with_queue)) {
		__u64 arg = ctx[1];

		barrier_var(arg);
		return (struct bio *)arg;
	}
	return (struct bio *)ctx[0];
}

static __always_inline struct bio *frontmerge_bio(__u64 *ctx)
{
	if (bpf_core_type_matches(btf_trace_block_bio_frontmerge___with_queue)) {
		__u64 arg = ctx[2];

		barrier_var(arg);
		return (struct bio *)arg;
	}
	return (struct bio *)ctx[0];
}

/* In the issuing process: its bio is about to become a request's first one. */
static __always_inline int remember_bio_origin(struct bio *bio)
{
	struct request_origin origin;

	if (!bio || !task_selected())
		return 0;
	zero_for_map(&origin);
	current_origin(&origin);
	update_or_count(&bio_origins, &bio, &origin, BPF_ANY);
	return 0;
}

/* At dispatch: the dispatched request through its first bio; forgets it. */
static __always_inline int request_issued(struct request *rq)
{
	struct request_origin origin, *found;
	struct bio *bio;

	if (!origins_by_bio)
		return on_request_issue(rq, NULL);
	bio = BPF_CORE_READ(rq, bio);
	found = bpf_map_lookup_elem(&bio_origins, &bio);
	if (!found)
		return on_request_issue(rq, NULL);
	origin = *found;
	bpf_map_delete_elem(&bio_origins, &bio);
	return on_request_issue(rq, &origin);
}

/* A block_rq_* tracepoint's request: its second argument where the kernel passes the queue first. */
static __always_inline struct request *request_arg(__u64 *ctx, bool queue_first)
{
	if (queue_first) {
		__u64 arg = ctx[1];

		barrier_var(arg);
		return (struct request *)arg;
	}
	return (struct request *)ctx[0];
}

/* Request creation, in the issuing process. */

SEC("raw_tp/block_io_start")
int BPF_PROG(io_start_raw_tp, struct request *rq)
{
	return on_request_start(rq, false);
}

SEC("fentry/blk_account_io_start")
int BPF_PROG(account_start_fentry, struct request *rq)
{
	return on_request_start(rq, false);
}

SEC("kprobe/blk_account_io_start")
int BPF_KPROBE(account_start_kprobe, struct request *rq)
{
	return on_request_start(rq, false);
}

/* A bio that gets a request (the stand-in where none of the above exists), or is merged in front of one. */

SEC("raw_tp/block_getrq")
int BPF_PROG(getrq_raw_tp)
{
	return remember_bio_origin(getrq_bio(ctx));
}

SEC("raw_tp/block_bio_frontmerge")
int BPF_PROG(frontmerge_raw_tp)
{
	return remember_bio_origin(frontmerge_bio(ctx));
}

/* Insertion into a scheduler queue: the last resort, for requests through a scheduler only. */

SEC("raw_tp/block_rq_insert")
int BPF_PROG(rq_insert_raw_tp)
{
	return on_request_start(request_arg(ctx, bpf_core_type_matches(btf_trace_block_rq_insert___with_queue)), true);
}

/* Dispatch to the driver. */

SEC("raw_tp/block_rq_issue")
int BPF_PROG(rq_issue_raw_tp)
{
	return request_issued(request_arg(ctx, bpf_core_type_matches(btf_trace_block_rq_issue___with_queue)));
}

/* Back from the driver, to be dispatched again. */

SEC("raw_tp/block_rq_requeue")
int BPF_PROG(rq_requeue_raw_tp)
{
	return on_request_requeue(request_arg(ctx, bpf_core_type_matches(btf_trace_block_rq_requeue___with_queue)));
}

/* Completion: the request comes first on every kernel with BTF. */

SEC("raw_tp/block_rq_complete")
int BPF_PROG(rq_complete_raw_tp, struct request *rq)
{
	return on_request_complete(rq);
}

#endif
