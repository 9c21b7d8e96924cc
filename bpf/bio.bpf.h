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
 *                                 stands in for these (a kernel with none);
 *   on_request_issue(rq)          sent to the device driver (block_rq_issue);
 *   on_request_complete(rq)       done (block_rq_complete).
 *
 * Each hook exists as a tp_btf program (typed arguments, cheapest) and as a
 * raw_tp one for kernels without BTF-enabled tracepoints.
 */
#ifndef EBPF_TOOLS_BIO_BPF_H
#define EBPF_TOOLS_BIO_BPF_H

#include "common.bpf.h"

/* The kernel's internal dev_t, as /proc/partitions' major and minor give it. */
#define MINORBITS 20
#define MKDEV(major, minor) (((__u32)(major) << MINORBITS) | (__u32)(minor))

/* Requests in flight that can be followed; more are counted in untracked_requests. */
#define MAX_REQUESTS 32768
/* what a full hash map answers an update with */
#define E2BIG 7

/* -d: only requests to this disk. */
const volatile bool filter_dev = false;
const volatile __u32 targ_dev = 0;

/* Requests that could not be followed because MAX_REQUESTS were in flight. */
__u64 untracked_requests = 0;

static __always_inline int on_request_start(struct request *rq, bool insert);
static __always_inline int on_request_issue(struct request *rq);
static __always_inline int on_request_complete(struct request *rq);

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
 */
struct request_queue___any;
struct request___any;
typedef void (*btf_trace_block_rq_insert___with_queue)(void *, struct request_queue___any *,
							 struct request___any *);
typedef void (*btf_trace_block_rq_issue___with_queue)(void *, struct request_queue___any *,
							struct request___any *);

static __always_inline struct request *inserted_request(__u64 *ctx)
{
	if (bpf_core_type_matches(btf_trace_block_rq_insert___with_queue))
		return (struct request *)ctx[1];
	return (struct request *)ctx[0];
}

static __always_inline struct request *issued_request(__u64 *ctx)
{
	if (bpf_core_type_matches(btf_trace_block_rq_issue___with_queue))
		return (struct request *)ctx[1];
	return (struct request *)ctx[0];
}

/* Request creation, in the issuing process. */

SEC("tp_btf/block_io_start")
int BPF_PROG(io_start_tp_btf, struct request *rq)
{
	return on_request_start(rq, false);
}

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

/* 5.11 to 5.15: the traceable function behind an inline blk_account_io_start */
SEC("fentry/__blk_account_io_start")
int BPF_PROG(account_start_fentry_inner, struct request *rq)
{
	return on_request_start(rq, false);
}

SEC("kprobe/blk_account_io_start")
int BPF_KPROBE(account_start_kprobe, struct request *rq)
{
	return on_request_start(rq, false);
}

SEC("kprobe/__blk_account_io_start")
int BPF_KPROBE(account_start_kprobe_inner, struct request *rq)
{
	return on_request_start(rq, false);
}

/* Insertion into a scheduler queue: the stand-in where none of the above exists. */

SEC("tp_btf/block_rq_insert")
int BPF_PROG(rq_insert_tp_btf)
{
	return on_request_start(inserted_request(ctx), true);
}

SEC("raw_tp/block_rq_insert")
int BPF_PROG(rq_insert_raw_tp)
{
	return on_request_start(inserted_request(ctx), true);
}

/* Dispatch to the driver. */

SEC("tp_btf/block_rq_issue")
int BPF_PROG(rq_issue_tp_btf)
{
	return on_request_issue(issued_request(ctx));
}

SEC("raw_tp/block_rq_issue")
int BPF_PROG(rq_issue_raw_tp)
{
	return on_request_issue(issued_request(ctx));
}

/* Completion: the request comes first on every kernel with BTF. */

SEC("tp_btf/block_rq_complete")
int BPF_PROG(rq_complete_tp_btf, struct request *rq)
{
	return on_request_complete(rq);
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(rq_complete_raw_tp, struct request *rq)
{
	return on_request_complete(rq);
}

#endif
