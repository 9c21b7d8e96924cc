// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* fsslower's fentry and kprobe programs on nfs's file operations (see fsslower.bpf.h) */
#include "fsslower.bpf.h"

FILE_OPERATIONS(nfs, nfs_file_read, nfs_file_write, nfs_file_open, nfs_file_fsync)
