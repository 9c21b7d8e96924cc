// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * biosnoop: one event per completed block request, naming the process
 * that issued it.
 *
 * The process is taken when the request is created (on_request_start, see
 * bio.bpf.h), in that process's own context, and kept by request until the
 * completion, which runs wherever the block layer completes it (an
 * interrupt, a kworker, another process). The request's place, size and
 * flags are read when it is dispatched, once merging into it is over.
 */
#include "bio.bpf.h"

/* LAT below this is not reported (-m) */
const volatile __u64 min_ns = 0;

enum access_pattern {
	PATTERN_UNKNOWN = 0,
	PATTERN_SEQUENTIAL = 1,
	PATTERN_RANDOM = 2,
};

struct event {
	__u64 ts_ns;
	/* of the issuing process; 0 when the creation was not seen */
	__u64 cgroup_id;
	/* completion minus dispatch */
	__u64 latency_ns;
	/* dispatch minus creation; (__u64)-1 when the creation was not seen */
	__u64 queued_ns;
	__u64 sector;
	__u32 bytes;
	__u32 pid;
	__u32 cmd_flags;
	__u32 dev;
	/* enum access_pattern: against the end of the disk's previous completed request */
	__u32 pattern;
	char comm[TASK_COMM_LEN];
};

/* Anchors struct event in the object's BTF, where user space reads its layout. */
struct event *unused_event __attribute__((unused));

struct request_info {
	/* created_ns 0 and comm "?" when the creation was not seen */
	struct request_origin origin;
	__u64 issued_ns;
	__u64 sector;
	__u32 bytes;
	__u32 cmd_flags;
	__u32 dev;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_REQUESTS);
	__type(key, struct request *);
	__type(value, struct request_info);
} requests SEC(".maps");

/* Per disk, the sector after the last completed request (bcc's -P). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} last_sector_end SEC(".maps");

static __always_inline int on_request_start(struct request *rq, bool insert)
{
	struct request_info info = {}, *known;

	if (!task_selected() || !dev_selected(rq))
		return 0;
	known = bpf_map_lookup_elem(&requests, &rq);
	/* a requeued request is inserted again: keep its first time */
	if (known && !earlier_request(known->issued_ns) && insert)
		return 0;
	current_origin(&info.origin);
	update_or_count(&requests, &rq, &info, BPF_ANY);
	return 0;
}

static __always_inline int on_request_issue(struct request *rq, struct request_origin *origin)
{
	struct request_info *info;

	if (!dev_selected(rq))
		return 0;
	info = bpf_map_lookup_elem(&requests, &rq);
	if (info && earlier_request(info->issued_ns)) {
		bpf_map_delete_elem(&requests, &rq);
		info = NULL;
	}
	if (!info) {
		struct request_info fresh = {};

		if (origin) {
			fresh.origin = *origin;
		} else {
			/* not seen created (before tracing began, or never accounted):
			 * the process is unknown, so only without a process filter */
			if (selection_active())
				return 0;
			fresh.origin.comm[0] = '?';
		}
		update_or_count(&requests, &rq, &fresh, BPF_ANY);
		info = bpf_map_lookup_elem(&requests, &rq);
		if (!info)
			return 0;
	}
	info->issued_ns = bpf_ktime_get_ns();
	info->sector = BPF_CORE_READ(rq, __sector);
	info->bytes = BPF_CORE_READ(rq, __data_len);
	info->cmd_flags = BPF_CORE_READ(rq, cmd_flags);
	info->dev = request_dev(rq);
	return 0;
}

static __always_inline int on_request_requeue(struct request *rq)
{
	struct request_info *info = bpf_map_lookup_elem(&requests, &rq);

	if (info)
		info->issued_ns = 0;
	return 0;
}

static __always_inline __u32 access_pattern(struct request_info *info)
{
	__u64 end = info->sector + info->bytes / 512;
	__u32 dev = info->dev;
	__u64 *last = bpf_map_lookup_elem(&last_sector_end, &dev);
	__u32 pattern = PATTERN_UNKNOWN;

	if (last)
		pattern = *last == info->sector ? PATTERN_SEQUENTIAL : PATTERN_RANDOM;
	bpf_map_update_elem(&last_sector_end, &dev, &end, BPF_ANY);
	return pattern;
}

static __always_inline int on_request_complete(struct request *rq)
{
	__u64 now = bpf_ktime_get_ns();
	struct request_info *info;
	struct event *e;
	__u32 pattern;

	info = bpf_map_lookup_elem(&requests, &rq);
	if (!info)
		return 0;
	/* never dispatched (a flush with nothing to flush ends at once): no device I/O */
	if (!info->issued_ns)
		goto cleanup;
	/* the two CPUs' clocks may differ by a little: a completion is never dropped for it */
	if (now < info->issued_ns)
		now = info->issued_ns;
	pattern = access_pattern(info);
	if (now - info->issued_ns < min_ns)
		goto cleanup;
	e = reserve_event(sizeof(*e));
	if (!e)
		goto cleanup;
	e->ts_ns = now;
	e->cgroup_id = info->origin.cgroup_id;
	e->latency_ns = now - info->issued_ns;
	if (!info->origin.created_ns)
		e->queued_ns = (__u64)-1;
	else
		e->queued_ns = info->origin.created_ns <= info->issued_ns
			? info->issued_ns - info->origin.created_ns : 0;
	e->sector = info->sector;
	e->bytes = info->bytes;
	e->pid = info->origin.pid;
	e->cmd_flags = info->cmd_flags;
	e->dev = info->dev;
	e->pattern = pattern;
	__builtin_memcpy(e->comm, info->origin.comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);

cleanup:
	bpf_map_delete_elem(&requests, &rq);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
