// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* fsslower's fentry and kprobe programs on btrfs's file operations (see fsslower.bpf.h) */
#include "fsslower.bpf.h"

FILE_OPERATIONS(btrfs, btrfs_file_read_iter, btrfs_file_write_iter, btrfs_file_open, btrfs_sync_file)
