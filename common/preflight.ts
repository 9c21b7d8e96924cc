// Checks made before anything is loaded, so that a missing privilege or
// kernel feature is reported as what to do, not as a libbpf error code.
import { accessSync, existsSync, readFileSync } from 'node:fs';
import { RuntimeError } from './errors.js';
import { errnoText, lastErrno, libcCalls } from './native.js';

const CAP_SYS_ADMIN = 21;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

/** Where the kernel's BTF is read; overridable so tests can simulate its absence. */
export const VMLINUX_BTF = process.env.EBPF_TOOLS_VMLINUX_BTF ?? '/sys/kernel/btf/vmlinux';

let capabilities: bigint | undefined;

/** This process's effective capabilities, read once: a start checks them before each step that needs them. */
function effectiveCapabilities(): bigint {
  if (capabilities !== undefined) return capabilities;
  const status = readFileSync('/proc/self/status', 'utf8');
  const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  capabilities = match ? BigInt(`0x${match[1]}`) : 0n;
  return capabilities;
}

const has = (caps: bigint, cap: number): boolean => ((caps >> BigInt(cap)) & 1n) === 1n;

export function checkPrivileges(): void {
  const caps = effectiveCapabilities();
  if (has(caps, CAP_SYS_ADMIN) || (has(caps, CAP_BPF) && has(caps, CAP_PERFMON))) return;
  throw new RuntimeError('must be run as root (needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN): try sudo');
}

export function checkKernelBtf(): void {
  try {
    accessSync(VMLINUX_BTF);
  } catch {
    throw new RuntimeError(
      `kernel BTF not found at ${VMLINUX_BTF}: needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (most distributions since 2020; kernel 5.8 or later)`,
    );
  }
}

const TRACEFS = '/sys/kernel/tracing';
const DEBUGFS_TRACING = '/sys/kernel/debug/tracing';

/**
 * Classic tracepoints are attached by id, which libbpf reads from tracefs.
 * Where tracefs is not mounted (a fresh VM, a minimal container host), mount
 * it where libbpf looks; returns what was done, for -v.
 */
export function ensureTracefs(): string {
  if (existsSync(`${TRACEFS}/events`) || existsSync(`${DEBUGFS_TRACING}/events`)) return 'tracefs already mounted';
  const MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8;
  if (libcCalls.mount('tracefs', TRACEFS, 'tracefs', MS_NOSUID | MS_NODEV | MS_NOEXEC, null) !== 0) {
    throw new RuntimeError(
      `tracefs is not mounted and mounting it on ${TRACEFS} failed (${errnoText(lastErrno())}): run 'mount -t tracefs tracefs ${TRACEFS}'`,
    );
  }
  return `mounted tracefs on ${TRACEFS}`;
}
