#!/usr/bin/env bash
# Installs from Debian what the test suite needs beyond Node and libbpf:
# clang-19/llvm-19 (to check the committed BPF objects against their
# sources), bpftool (to check nothing is left loaded), Debian's libbpf-tools
# (the C tools the differential tests compare against), groff and man-db
# (man page checks), a C compiler for the test workloads, Prometheus
# (promtool checks the exposition text; the server scrapes the tools in the
# --prometheus tests), what scripts/vm-run needs to boot Debian's kernels
# for the kernel matrix (qemu, a static busybox for the initramfs, cpio,
# kmod, e2fsprogs for the scratch disk, xz and zstd to unpack kernels and
# modules), xfsprogs, btrfs-progs and fuse2fs (fsslower's tests make XFS and
# btrfs file systems on loop devices, and a FUSE one), and runc (a real container: busybox
# in a docker-shaped cgroup, for --print-cgroup=container).
set -euo pipefail
packages=(clang-19 llvm-19 libbpf-dev libbpf1 bpftool libbpf-tools groff man-db gcc libc6-dev python3 prometheus
  qemu-system-x86 busybox-static cpio kmod e2fsprogs xz-utils zstd xfsprogs btrfs-progs fuse2fs runc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
