// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* fsslower's fentry and kprobe programs on ext4's file operations (see fsslower.bpf.h) */
#include "fsslower.bpf.h"

FILE_OPERATIONS(ext4, ext4_file_read_iter, ext4_file_write_iter, ext4_file_open, ext4_sync_file)
