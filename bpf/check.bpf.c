// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * check: the smallest programs that tell what this kernel accepts, for
 * `ebpf-tools check`. Each is loaded and attached on its own, then
 * detached; loading none of them still creates the ring buffer (common.bpf.h),
 * which tells whether the kernel has ring buffers at all.
 * vfs_read() is on every kernel the tools support, and never inlined.
 */
#include "common.bpf.h"

/* Makes the ring buffer part of the object even with no program loaded. */
static __always_inline void note_call(void)
{
	__u64 *record = reserve_event(sizeof(*record));

	if (record)
		bpf_ringbuf_discard(record, 0);
}

SEC("fentry/vfs_read")
int BPF_PROG(check_fentry)
{
	note_call();
	return 0;
}

SEC("kprobe/vfs_read")
int BPF_KPROBE(check_kprobe)
{
	note_call();
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
