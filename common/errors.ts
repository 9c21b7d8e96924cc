// The two kinds of failure a tool reports, each with its exit status:
// a user's mistake (bad option, unknown disk) exits 2, a runtime failure
// (not root, no BTF, libbpf missing, load refused) exits 1. Both print one
// line, never a stack trace.

export class UsageError extends Error {
  readonly exitCode = 2;
}

export class RuntimeError extends Error {
  readonly exitCode = 1;
}
