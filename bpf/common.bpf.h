/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What every ebpf-tools BPF object shares with the runtime in common/:
 *  - `events`: the ring buffer the runtime maps and walks (its size is set
 *    from user space before load);
 *  - `lost_events`: how many events could not be reserved because the ring
 *    buffer was full, read by user space so that no loss goes unreported;
 *  - the cgroup filters (-c PATH, --cgroupmap, --mntnsmap), switched on by
 *    const volatile flags so that the verifier prunes them when unused.
 */
#ifndef EBPF_TOOLS_COMMON_BPF_H
#define EBPF_TOOLS_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define TASK_COMM_LEN 16

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} events SEC(".maps");

__u64 lost_events = 0;

/* Reserve a fixed-size record, counting the ones the full buffer refused. */
static __always_inline void *reserve_event(__u64 size)
{
	void *record = bpf_ringbuf_reserve(&events, size, 0);

	if (!record)
		__sync_fetch_and_add(&lost_events, 1);
	return record;
}

const volatile bool filter_cgroup = false;
const volatile bool filter_cgroupset = false;
const volatile bool filter_mntnsset = false;

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
} cgroup_map SEC(".maps");

/* bcc's pinned --cgroupmap: hash of cgroup ids; user space swaps in the
 * pinned map's fd before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u64);
	__uint(max_entries, 1);
} cgroupset SEC(".maps");

/* bcc's pinned --mntnsmap: hash of mount namespace inode numbers. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, __u32);
	__uint(max_entries, 1);
} mntnsset SEC(".maps");

/* Whether the current task passes the cgroup and mount namespace filters. */
static __always_inline bool task_selected(void)
{
	if (filter_cgroup && !bpf_current_task_under_cgroup(&cgroup_map, 0))
		return false;
	if (filter_cgroupset) {
		__u64 cgroup_id = bpf_get_current_cgroup_id();

		if (!bpf_map_lookup_elem(&cgroupset, &cgroup_id))
			return false;
	}
	if (filter_mntnsset) {
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		__u64 mntns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);

		if (!bpf_map_lookup_elem(&mntnsset, &mntns))
			return false;
	}
	return true;
}

#endif
