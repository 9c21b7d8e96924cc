// Bindings to the system libbpf (>= 1.0) and the few libc calls the runtime
// needs (mmap, epoll, mount), through koffi. Nothing here knows about tools.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as KoffiModule from 'koffi';
import type { LibraryHandle } from 'koffi';
import { RuntimeError } from './errors.js';

/**
 * koffi's native module, opened directly where npm put its prebuilt binary
 * (@koromix/koffi-<platform>-<arch>, beside koffi or inside it) and its
 * version is koffi's. koffi's own loader, all that require('koffi') adds,
 * imports node:util as a bundle does, which evaluates util's lazy parts:
 * on Node 22 and 24 they create process.stderr, and with it load the
 * streams, node:net and worker_threads, none of which a tool uses (~6 ms
 * and ~3 MiB of a start, measured). Anything else (koffi built from source,
 * a binary of another version, another libc) goes through koffi's loader,
 * which finds it or says why not.
 */
function loadKoffi(): typeof KoffiModule {
  const prebuilt = `@koromix/koffi-${process.platform}-${process.arch}`;
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const modules = `${dir}/node_modules`;
    if (!existsSync(`${modules}/koffi/package.json`)) continue;
    const { version } = JSON.parse(readFileSync(`${modules}/koffi/package.json`, 'utf8')) as { version: string };
    for (const binaries of [`${modules}/koffi/node_modules/${prebuilt}`, `${modules}/${prebuilt}`]) {
      for (const libc of ['linux', 'musl']) {
        const binary = `${binaries}/${libc}_${process.arch}/koffi.node`;
        if (!existsSync(binary)) continue;
        try {
          // opened as require() opens an addon, without its resolving of the
          // path (real paths, package.json scopes: 16 ms of a start in a
          // kernel-matrix guest)
          const addon = { exports: {} as typeof KoffiModule & { version?: string } };
          process.dlopen(addon, binary);
          const native = addon.exports;
          if (native.version === version) return native;
        } catch {
          // not this libc's
        }
      }
    }
    break;
  }
  return createRequire(import.meta.url)('koffi') as typeof KoffiModule;
}

const koffi = loadKoffi();

const LIBBPF_PACKAGE_HINT =
  'install libbpf 1.0 or later (Debian/Ubuntu: apt install libbpf1; Fedora/RHEL: dnf install libbpf)';

export const LIBBPF_SONAME = process.env.EBPF_TOOLS_LIBBPF ?? 'libbpf.so.1';

type KoffiFunction = ReturnType<LibraryHandle['func']>;

/**
 * Declares functions of a library that is only loaded when one of them is
 * first called, so that --help and usage errors work without libbpf.
 */
function lazyFunctions<T extends Record<string, string>>(
  library: () => LibraryHandle, declarations: T,
): { readonly [K in keyof T]: KoffiFunction } {
  const functions = {} as Record<keyof T, KoffiFunction>;
  for (const [name, declaration] of Object.entries(declarations) as [keyof T, string][]) {
    let fn: KoffiFunction | undefined;
    Object.defineProperty(functions, name, { get: () => (fn ??= library().func(declaration)) });
  }
  return functions;
}

let libbpfHandle: LibraryHandle | undefined;
let libcHandle: LibraryHandle | undefined;

/** libbpf's version as "major.minor", once loaded. */
export let libbpfVersion = '';

function libbpf(): LibraryHandle {
  if (libbpfHandle) return libbpfHandle;
  let handle: LibraryHandle;
  try {
    handle = koffi.load(LIBBPF_SONAME);
  } catch {
    throw new RuntimeError(`cannot load ${LIBBPF_SONAME}: ${LIBBPF_PACKAGE_HINT}`);
  }
  const major = handle.func('uint32_t libbpf_major_version(void)')() as number;
  const minor = handle.func('uint32_t libbpf_minor_version(void)')() as number;
  if (major < 1) throw new RuntimeError(`libbpf ${major}.${minor} is too old: ${LIBBPF_PACKAGE_HINT}`);
  libbpfVersion = `${major}.${minor}`;
  for (const name of ['bpf_object', 'bpf_program', 'bpf_map', 'bpf_link', 'btf']) koffi.opaque(name);
  // struct bpf_object_open_opts up to btf_custom_path (libbpf 0.6), as libbpf.h declares it;
  // libbpf reads no further than the sz it is given.
  koffi.struct('bpf_object_open_opts', {
    sz: 'size_t',
    object_name: 'const char *',
    relaxed_maps: 'bool',
    pin_root_path: 'const char *',
    attach_prog_fd_removed: 'uint32_t',
    kconfig: 'const char *',
    btf_custom_path: 'const char *',
  });
  // libbpf_prog_prepare_load_fn_t, and struct libbpf_prog_handler_opts (libbpf 0.8) as libbpf.h declares them
  koffi.proto('int libbpf_prog_prepare_load_fn(bpf_program *prog, void *opts, long cookie)');
  koffi.struct('libbpf_prog_handler_opts', {
    sz: 'size_t',
    cookie: 'long',
    prog_setup_fn: 'void *',
    prog_prepare_load_fn: 'libbpf_prog_prepare_load_fn *',
    prog_attach_fn: 'void *',
  });
  // struct bpf_prog_load_opts up to attach_btf_obj_fd, as bpf.h declares it (what a prepare function sets)
  koffi.struct('bpf_prog_load_opts', {
    sz: 'size_t',
    attempts: 'int',
    expected_attach_type: 'int',
    prog_btf_fd: 'uint32_t',
    prog_flags: 'uint32_t',
    prog_ifindex: 'uint32_t',
    kern_version: 'uint32_t',
    attach_btf_id: 'uint32_t',
    attach_prog_fd: 'uint32_t',
    attach_btf_obj_fd: 'uint32_t',
  });
  // struct bpf_btf_info, as the kernel's bpf.h declares it
  koffi.struct('bpf_btf_info', {
    btf: 'uint64_t',
    btf_size: 'uint32_t',
    id: 'uint32_t',
    name: 'uint64_t',
    name_len: 'uint32_t',
    kernel_btf: 'uint32_t',
  });
  // libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *, va_list);
  // on x86-64 and arm64 a va_list parameter is passed as a pointer.
  koffi.proto('int libbpf_print_fn(int level, const char *format, void *args)');
  libbpfHandle = handle;
  return handle;
}

function libc(): LibraryHandle {
  return (libcHandle ??= koffi.load('libc.so.6'));
}

export const bpf = lazyFunctions(libbpf, {
  set_print: 'void *libbpf_set_print(libbpf_print_fn *fn)',
  object_open_file: 'bpf_object *bpf_object__open_file(const char *path, const bpf_object_open_opts *opts)',
  object_load: 'int bpf_object__load(bpf_object *obj)',
  object_close: 'void bpf_object__close(bpf_object *obj)',
  object_btf: 'btf *bpf_object__btf(bpf_object *obj)',
  object_find_map: 'bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)',
  object_find_program: 'bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)',
  object_next_program: 'bpf_program *bpf_object__next_program(bpf_object *obj, bpf_program *prev)',
  program_name: 'const char *bpf_program__name(bpf_program *prog)',
  program_section: 'const char *bpf_program__section_name(bpf_program *prog)',
  program_set_autoload: 'int bpf_program__set_autoload(bpf_program *prog, bool autoload)',
  program_autoload: 'bool bpf_program__autoload(bpf_program *prog)',
  program_fd: 'int bpf_program__fd(bpf_program *prog)',
  program_attach: 'bpf_link *bpf_program__attach(bpf_program *prog)',
  program_attach_trace: 'bpf_link *bpf_program__attach_trace(bpf_program *prog)',
  program_set_attach_target: 'int bpf_program__set_attach_target(bpf_program *prog, int attach_prog_fd, const char *attach_func_name)',
  program_attach_tracepoint: 'bpf_link *bpf_program__attach_tracepoint(bpf_program *prog, const char *category, const char *name)',
  link_destroy: 'int bpf_link__destroy(bpf_link *link)',
  map_fd: 'int bpf_map__fd(bpf_map *map)',
  map_btf_value_type_id: 'uint32_t bpf_map__btf_value_type_id(const bpf_map *map)',
  map_set_max_entries: 'int bpf_map__set_max_entries(bpf_map *map, uint32_t max_entries)',
  map_initial_value: 'void *bpf_map__initial_value(bpf_map *map, _Out_ size_t *psize)',
  map_reuse_fd: 'int bpf_map__reuse_fd(bpf_map *map, int fd)',
  btf_raw_data: 'const void *btf__raw_data(btf *btf, _Out_ uint32_t *size)',
  map_update_elem: 'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)',
  map_lookup_elem: 'int bpf_map_lookup_elem(int fd, const void *key, void *value)',
  map_get_next_key: 'int bpf_map_get_next_key(int fd, const void *key, void *next_key)',
  map_delete_elem: 'int bpf_map_delete_elem(int fd, const void *key)',
  obj_get: 'int bpf_obj_get(const char *pathname)',
  btf_get_next_id: 'int bpf_btf_get_next_id(uint32_t start_id, _Out_ uint32_t *next_id)',
  btf_get_fd_by_id: 'int bpf_btf_get_fd_by_id(uint32_t id)',
  register_prog_handler: 'int libbpf_register_prog_handler(const char *sec, int prog_type, int exp_attach_type, const libbpf_prog_handler_opts *opts)',
  obj_get_info_by_fd: 'int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)',
});

export const libcCalls = lazyFunctions(libc, {
  mmap: 'void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)',
  munmap: 'int munmap(void *addr, size_t length)',
  madvise: 'int madvise(void *addr, size_t length, int advice)',
  malloc_trim: 'int malloc_trim(size_t pad)',
  epoll_create1: 'int epoll_create1(int flags)',
  epoll_ctl: 'int epoll_ctl(int epfd, int op, int fd, void *event)',
  epoll_wait: 'int epoll_wait(int epfd, void *events, int maxevents, int timeout)',
  eventfd: 'int eventfd(unsigned int initval, int flags)',
  write: 'long write(int fd, const void *buf, size_t count)',
  close: 'int close(int fd)',
  mount: 'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)',
  vsnprintf: 'int vsnprintf(uint8_t *buf, size_t size, const char *format, void *args)',
  strerror: 'const char *strerror(int errnum)',
  sysconf: 'long sysconf(int name)',
  isatty: 'int isatty(int fd)',
  _exit: 'void _exit(int status)',
  dlopen: 'void *dlopen(const char *file, int flags)',
  dlsym: 'void *dlsym(void *handle, const char *symbol)',
  pthread_create: 'int pthread_create(void *thread, void *attr, void *start, void *arg)',
  pthread_join: 'int pthread_join(uint64_t thread, void *retval)',
});

const RTLD_NOW = 2;
const RTLD_NOLOAD = 4;

/**
 * Runs libbpf's `name(arg)` for the arguments, each in a thread of its own,
 * and returns once all have returned: how many of them, from the first,
 * were run (fewer where no more threads could be had; none where the
 * function is not found). `name` takes one pointer, as a thread's start
 * routine does; its int result, the thread's, is ignored (in a register
 * either way on x86-64 and arm64). Nothing the threads run may call back
 * into JavaScript: this thread waits for them, and a callback would wait
 * for this thread.
 */
export function inThreads(name: string, args: unknown[]): number {
  const handle = libcCalls.dlopen(LIBBPF_SONAME, RTLD_NOW | RTLD_NOLOAD);
  const start = handle && libcCalls.dlsym(handle, name);
  if (!start) return 0;
  const threads: bigint[] = [];
  for (const arg of args) {
    const thread = Buffer.alloc(8);
    if (libcCalls.pthread_create(thread, null, start, arg) !== 0) break;
    threads.push(thread.readBigUInt64LE(0));
  }
  for (const thread of threads) libcCalls.pthread_join(thread, null);
  return threads.length;
}

/**
 * Wraps the completion of a koffi async call (`fn.async(...args, nativeCompletion(done))`)
 * so that `done` runs on the next turn of the event loop, outside koffi's
 * callback, and a failure of the call is thrown there.
 *
 * An exception that escapes a JS function native code called stays pending
 * in Node-API while Node runs the 'uncaughtException' handlers for it; and
 * koffi, built for the experimental Node-API, has its finalizers run inside
 * the garbage collector, where each finds that exception and raises it
 * again: JavaScript called from the collector, a V8 fatal error (`Check
 * failed: AllowJavascriptExecution::IsAllowed(isolate)`) that kills the
 * process. A tool ends from its 'uncaughtException' handler when stdout
 * closes, and a collection there that freed a koffi object crashed it. An
 * exception thrown from an immediate never passes through Node-API.
 */
export function nativeCompletion<T>(done: (result: T) => void): (err: unknown, result: T) => void {
  return (err, result) => {
    setImmediate(() => {
      if (err) throw err;
      done(result);
    });
  };
}

/**
 * Ends the process with `code` as process.exit() does ('exit' listeners
 * run: libbpf's last messages are written there), but leaves the threads to
 * the kernel instead of joining them. process.exit() joins V8's background
 * threads, and one of them in a concurrent compile can be waiting for a
 * garbage collection that only the exiting main thread could run: the
 * process never ends (Node's open shutdown deadlock, nodejs/node#54918 and
 * #64274; caught here in about one test run in three of opensnoop's under
 * Node 24). It loses no more than process.exit() would: a tool writes
 * stdout with writeSync, and a write to stderr is made at once to a file or
 * terminal, and to a pipe with room (what waits for a full pipe,
 * process.exit() drops as well).
 */
export function exitNow(code: number): never {
  process.exitCode = code;
  process.emit('exit', code);
  return libcCalls._exit(code) as never;
}

/** The calling thread's errno after the last native call. */
export function lastErrno(): number {
  return koffi.errno();
}

/** strerror() of a positive errno value. */
export function errnoText(errno: number): string {
  return libcCalls.strerror(Math.abs(errno)) as string;
}

export { koffi };
