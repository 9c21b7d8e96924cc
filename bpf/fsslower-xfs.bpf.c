// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* fsslower's fentry and kprobe programs on xfs's file operations (see fsslower.bpf.h) */
#include "fsslower.bpf.h"

FILE_OPERATIONS(xfs, xfs_file_read_iter, xfs_file_write_iter, xfs_file_open, xfs_file_fsync)
