// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* fsslower's fentry and kprobe programs on fuse's file operations (see fsslower.bpf.h) */
#include "fsslower.bpf.h"

FILE_OPERATIONS(fuse, fuse_file_read_iter, fuse_file_write_iter, fuse_open, fuse_fsync)
