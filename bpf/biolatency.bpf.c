// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * biolatency: block I/O latency as log2 histograms, kept in the kernel.
 *
 * A request is timed from its dispatch to the device (block_rq_issue), or
 * with -Q from its creation (on_request_start, see bio.bpf.h), to its
 * completion. The histograms are cumulative and never cleared: user space
 * prints the difference between two readings, so no completion counted
 * between a read and a clear can be lost.
 *
 * With a process filter (-c...) a request is only timed if the process
 * that created it passes; that is known at creation, never at dispatch or
 * completion, which run in whatever context the block layer is in. So is
 * the cgroup of --cgroups: taken where the request is created (as biosnoop
 * takes its process), kept with the request, counted at completion.
 */
#include "bio.bpf.h"

#define MAX_SLOTS 27
#define MAX_HISTOGRAMS 10240

const volatile bool targ_queued = false;
const volatile bool targ_ms = false;
const volatile bool targ_per_disk = false;
const volatile bool targ_per_flag = false;
const volatile bool targ_per_cgroup = false;

struct hist_key {
	__u32 cmd_flags;
	__u32 dev;
	/* --cgroups: cgroup v2 id of the process that created the request (0: not seen created) */
	__u64 cgroup_id;
};

struct hist {
	/* slot n counts latencies l (in usecs or msecs) with 2^n <= l < 2^(n+1); slot 0 also l = 0 */
	__u64 slots[MAX_SLOTS];
	__u64 total_ns;
	__u64 count;
};

/* When a request was created (0 if not seen) and dispatched (0 until it is). */
struct request_times {
	__u64 created_ns;
	__u64 issued_ns;
	/* --cgroups: of the creating process */
	__u64 cgroup_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_REQUESTS);
	__type(key, struct request *);
	__type(value, struct request_times);
} requests SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_HISTOGRAMS);
	__type(key, struct hist_key);
	__type(value, struct hist);
} hists SEC(".maps");

static const struct hist empty_hist;

static __always_inline int on_request_start(struct request *rq, bool insert)
{
	struct request_times times = { .created_ns = bpf_ktime_get_ns() }, *known;

	if (!task_selected() || !dev_selected(rq))
		return 0;
	known = bpf_map_lookup_elem(&requests, &rq);
	/* a requeued request is inserted again: keep its first time */
	if (known && !earlier_request(known->issued_ns) && insert)
		return 0;
	if (targ_per_cgroup)
		times.cgroup_id = current_cgroup();
	update_or_count(&requests, &rq, &times, BPF_ANY);
	return 0;
}

static __always_inline int on_request_issue(struct request *rq, struct request_origin *origin)
{
	__u64 now = bpf_ktime_get_ns();
	struct request_times *times;

	if (!dev_selected(rq))
		return 0;
	times = bpf_map_lookup_elem(&requests, &rq);
	if (times && earlier_request(times->issued_ns)) {
		bpf_map_delete_elem(&requests, &rq);
		times = NULL;
	}
	if (times) {
		/* created, or dispatched again after a requeue: the device time starts now */
		times->issued_ns = now;
		return 0;
	}
	if (origin) {
		struct request_times fresh = {
			.created_ns = origin->created_ns, .issued_ns = now, .cgroup_id = origin->cgroup_id,
		};

		update_or_count(&requests, &rq, &fresh, BPF_ANY);
	} else if (!selection_active()) {
		/* not seen created (before tracing began, or never accounted): whose
		 * it is is unknown, so only without a process filter */
		struct request_times fresh = { .issued_ns = now };

		update_or_count(&requests, &rq, &fresh, BPF_ANY);
	}
	return 0;
}

static __always_inline int on_request_requeue(struct request *rq)
{
	struct request_times *times = bpf_map_lookup_elem(&requests, &rq);

	if (times)
		times->issued_ns = 0;
	return 0;
}

static __always_inline int on_request_complete(struct request *rq)
{
	__u64 now = bpf_ktime_get_ns();
	struct hist_key key = {};
	struct request_times *times;
	struct hist *hist;
	__u64 begin, delta, units;
	__u32 slot;

	times = bpf_map_lookup_elem(&requests, &rq);
	if (!times)
		return 0;
	begin = targ_queued && times->created_ns ? times->created_ns : times->issued_ns;
	/* never dispatched (a flush with nothing to flush ends at once): no device I/O */
	if (!times->issued_ns)
		goto cleanup;
	/* the two CPUs' clocks may differ by a little: a completion is never dropped for it */
	delta = now > begin ? now - begin : 0;

	if (targ_per_disk)
		key.dev = request_dev(rq);
	if (targ_per_flag)
		key.cmd_flags = BPF_CORE_READ(rq, cmd_flags);
	if (targ_per_cgroup)
		key.cgroup_id = times->cgroup_id;
	hist = bpf_map_lookup_elem(&hists, &key);
	if (!hist) {
		bpf_map_update_elem(&hists, &key, &empty_hist, BPF_NOEXIST);
		hist = bpf_map_lookup_elem(&hists, &key);
		if (!hist) {
			__sync_fetch_and_add(&untracked_requests, 1);
			goto cleanup;
		}
	}
	units = targ_ms ? delta / 1000000 : delta / 1000;
	slot = log2_slot(units);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	__sync_fetch_and_add(&hist->slots[slot], 1);
	__sync_fetch_and_add(&hist->total_ns, delta);
	__sync_fetch_and_add(&hist->count, 1);

cleanup:
	bpf_map_delete_elem(&requests, &rq);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
