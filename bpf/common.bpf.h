/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What every ebpf-tools BPF object shares with the runtime in common/:
 *  - `events`: the ring buffer the runtime maps and walks (its size is set
 *    from user space before load);
 *  - `lost_events`: how many events could not be reserved because the ring
 *    buffer was full, read by user space so that no loss goes unreported;
 *  - the cgroup filters (-c PATH, --cgroupmap, --mntnsmap), switched on by
 *    const volatile flags so that the verifier prunes them when unused;
 *  - `cgroup_paths` (--print-cgroup): the names of each cgroup v2 cgroup an
 *    event came from, read from its kernfs nodes when the cgroup is first
 *    seen, in the kernel, so that a cgroup removed before user space reads
 *    its events is still named (user space resolving ids at print time
 *    could not).
 */
#ifndef EBPF_TOOLS_COMMON_BPF_H
#define EBPF_TOOLS_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define TASK_COMM_LEN 16

/*
 * Zeroes a struct on the stack that is to be copied whole into a map,
 * padding included: the update reads every byte, and some verifiers
 * (Ubuntu 22.04's 5.15) refuse a read of stack never written ("invalid
 * indirect read from stack"), where a designated initializer leaves the
 * padding unwritten.
 */
#define zero_for_map(p) __builtin_memset((p), 0, sizeof(*(p)))

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

/*
 * --print-cgroup. Each event carries the id of its cgroup (always: it is one
 * helper call); with name_cgroups, the first event of a cgroup also puts its
 * names, innermost first, each NUL-terminated, in cgroup_paths under that id,
 * where user space looks an id up once. The table is an LRU: a host that
 * makes more than its size of cgroups while tracing keeps the recent ones.
 * A cgroup whose names could not be read is put there as unknown, and read
 * again at its next event, until they are: only a known path (complete or
 * truncated, neither of which a later walk would change) spares its events
 * the walk.
 */
#define CGROUP_NAME_BYTES 256	/* NAME_MAX + 1 */
#define CGROUP_PATH_BYTES 1024	/* names kept per cgroup */
#define MAX_CGROUP_DEPTH 32	/* levels below the root walked */

/* How complete a struct cgroup_path is. */
enum cgroup_path_status {
	CGROUP_PATH_COMPLETE = 1,	/* every name up to the root of the hierarchy */
	CGROUP_PATH_TRUNCATED = 2,	/* deeper or longer than kept: outer names missing */
	CGROUP_PATH_UNKNOWN = 3,	/* a name or parent could not be read: read again at the next event */
};

struct cgroup_path {
	/* bytes of names[] filled; in map memory, not a register (see opensnoop.bpf.c) */
	__u32 end;
	/* enum cgroup_path_status */
	__u32 status;
	/* a whole name fits past any offset up to CGROUP_PATH_BYTES */
	char names[CGROUP_PATH_BYTES + CGROUP_NAME_BYTES];
};

/* Anchors struct cgroup_path in the object's BTF, where user space reads its layout. */
struct cgroup_path *unused_cgroup_path __attribute__((unused));

const volatile bool name_cgroups = false;

/* One entry unless user space sizes it for --print-cgroup (common/cgroups.ts). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, struct cgroup_path);
	__uint(max_entries, 1);
} cgroup_paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct cgroup_path);
	__uint(max_entries, 1);
} cgroup_path_scratch SEC(".maps");

/* Before 6.15 a kernfs node's parent was `parent` (now `__parent`, RCU-managed). */
struct kernfs_node___parent {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

/*
 * Reads kn's parent (NULL: kn is the root of the hierarchy) into *parent;
 * nonzero if it could not be read, which must not pass for the root.
 */
static __always_inline long kernfs_parent(struct kernfs_node *kn, struct kernfs_node **parent)
{
	struct kernfs_node___parent *old = (void *)kn;

	if (bpf_core_field_exists(old->parent))
		return bpf_core_read(parent, sizeof(*parent), &old->parent);
	return bpf_core_read(parent, sizeof(*parent), &kn->__parent);
}

/* One level of name_cgroup's walk up from *kn: 1 to go on to its parent, 0 when done. */
static __always_inline int name_cgroup_level(struct cgroup_path *p, volatile __u32 *end, struct kernfs_node **kn, int depth)
{
	struct kernfs_node *parent;
	__u32 offset;
	long length;

	if (kernfs_parent(*kn, &parent)) {
		p->status = CGROUP_PATH_UNKNOWN;
		return 0;
	}
	if (!parent) {
		/* *kn is the root of the hierarchy, which has no name in a path */
		p->status = CGROUP_PATH_COMPLETE;
		return 0;
	}
	offset = *end;
	if (depth == MAX_CGROUP_DEPTH || offset > CGROUP_PATH_BYTES)
		return 0;
	length = bpf_probe_read_kernel_str(&p->names[offset], CGROUP_NAME_BYTES, BPF_CORE_READ(*kn, name));
	if (length <= 0) {
		p->status = CGROUP_PATH_UNKNOWN;
		return 0;
	}
	*end = offset + length;
	*kn = parent;
	return 1;
}

/*
 * Puts the names of the current task's cgroup (kernfs node `kn`, id `id`) in
 * cgroup_paths. Written out level by level, not as a loop: kernels before 6.3
 * refuse a loop whose back edge clang lays out as a fall-through ("back-edge
 * from insn"), and #pragma unroll cannot unroll a loop with these exits.
 * A function of its own, not inlined: it is over a thousand instructions, and
 * a program of fsslower.bpf.o with a copy in each was five times the size of
 * one without (its object 2.2 MB, not 0.5), all to be read at every start.
 * Static, so the verifier checks it where it is called, as when inlined.
 */
_Static_assert(MAX_CGROUP_DEPTH == 32, "name_cgroup walks MAX_CGROUP_DEPTH + 1 levels");
#define NAME_CGROUP_LEVEL(depth) if (!name_cgroup_level(p, end, &kn, depth)) goto done
static __noinline int name_cgroup(struct kernfs_node *kn, __u64 id)
{
	__u32 zero = 0;
	struct cgroup_path *p = bpf_map_lookup_elem(&cgroup_path_scratch, &zero);
	volatile __u32 *end;

	if (!p)
		return 0;
	end = &p->end;
	*end = 0;
	p->status = CGROUP_PATH_TRUNCATED;
	NAME_CGROUP_LEVEL(0); NAME_CGROUP_LEVEL(1); NAME_CGROUP_LEVEL(2); NAME_CGROUP_LEVEL(3);
	NAME_CGROUP_LEVEL(4); NAME_CGROUP_LEVEL(5); NAME_CGROUP_LEVEL(6); NAME_CGROUP_LEVEL(7);
	NAME_CGROUP_LEVEL(8); NAME_CGROUP_LEVEL(9); NAME_CGROUP_LEVEL(10); NAME_CGROUP_LEVEL(11);
	NAME_CGROUP_LEVEL(12); NAME_CGROUP_LEVEL(13); NAME_CGROUP_LEVEL(14); NAME_CGROUP_LEVEL(15);
	NAME_CGROUP_LEVEL(16); NAME_CGROUP_LEVEL(17); NAME_CGROUP_LEVEL(18); NAME_CGROUP_LEVEL(19);
	NAME_CGROUP_LEVEL(20); NAME_CGROUP_LEVEL(21); NAME_CGROUP_LEVEL(22); NAME_CGROUP_LEVEL(23);
	NAME_CGROUP_LEVEL(24); NAME_CGROUP_LEVEL(25); NAME_CGROUP_LEVEL(26); NAME_CGROUP_LEVEL(27);
	NAME_CGROUP_LEVEL(28); NAME_CGROUP_LEVEL(29); NAME_CGROUP_LEVEL(30); NAME_CGROUP_LEVEL(31);
	NAME_CGROUP_LEVEL(32);
done:
	/*
	 * Any: an unknown entry is replaced. Two first events at once on two CPUs
	 * write the same names, or one of them an unknown, which the next reads again.
	 */
	bpf_map_update_elem(&cgroup_paths, &id, p, BPF_ANY);
	return 0;
}
#undef NAME_CGROUP_LEVEL

/* The cgroup v2 id of the current task; with name_cgroups, its names kept in cgroup_paths. */
static __always_inline __u64 current_cgroup(void)
{
	struct cgroup_path *known;
	struct task_struct *task;
	struct kernfs_node *kn;
	__u64 id = bpf_get_current_cgroup_id();

	if (!name_cgroups)
		return id;
	known = bpf_map_lookup_elem(&cgroup_paths, &id);
	if (known && known->status != CGROUP_PATH_UNKNOWN)
		return id;
	task = (struct task_struct *)bpf_get_current_task();
	kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);
	/* the task moved between the two reads: its next event names the new cgroup */
	if (kn && BPF_CORE_READ(kn, id) == id)
		name_cgroup(kn, id);
	return id;
}

/* The log2 histogram slot of v: slot n holds [2^n, 2^(n+1)), slot 0 also 0. */
static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 slot = 0;

	if (v >> 32) {
		v >>= 32;
		slot += 32;
	}
	if (v >> 16) {
		v >>= 16;
		slot += 16;
	}
	if (v >> 8) {
		v >>= 8;
		slot += 8;
	}
	if (v >> 4) {
		v >>= 4;
		slot += 4;
	}
	if (v >> 2) {
		v >>= 2;
		slot += 2;
	}
	if (v >> 1)
		slot += 1;
	return slot;
}

#endif
