// The process selection filters every tool offers: -c/--cgroup PATH (a
// cgroup v2 directory, a path as --print-cgroup shows it, or a container id
// or pod as it shows them), and bcc's --cgroupmap/--mntnsmap (pinned hash maps
// of cgroup ids / mount namespace ids, filled by the user).
import { closeSync, openSync, statfsSync, statSync } from 'node:fs';
import type { BpfObject } from './bpfobject.js';
import { CONTAINER_ARGUMENT, cgroup2Mount, findContainerCgroups } from './cgroups.js';
import { invalidValue } from './errors.js';
import { bpf, errnoText, koffi, lastErrno } from './native.js';

export interface SelectionOptions {
  cgroup?: string;
  cgroupmap?: string;
  mntnsmap?: string;
}

const BPF_MAP_TYPE_HASH = 1;
const CGROUP2_SUPER_MAGIC = 0x63677270;
const BPF_FS_MAGIC = 0xcafe4a11;

/** The file system type of `path` (statfs f_type) and whether it is a directory; undefined if it cannot be reached. */
function inspect(path: string): { fsType: number; directory: boolean } | undefined {
  try {
    return { fsType: statfsSync(path).type, directory: statSync(path).isDirectory() };
  } catch {
    return undefined; // no such file, a name too long, no permission: not usable, whatever the reason
  }
}

/**
 * The cgroup v2 directory --cgroup names: a directory; else a path as the
 * CGROUP column shows it (relative to the cgroup2 mount); else a container
 * id (12 to 64 hex digits, as the CONTAINER column and docker ps show it)
 * that exactly one cgroup directory's name carries, or a pod<uid> as the
 * CONTAINER column shows it: the pod's own cgroup (so all its containers).
 */
function cgroupDirectory(value: string): string {
  let found = inspect(value);
  let directory = value;
  const mount = found?.directory ? undefined : cgroup2Mount();
  if (mount !== undefined && value.startsWith('/')) {
    const below = inspect(mount + value);
    if (below?.directory) [found, directory] = [below, mount + value];
  }
  if (!found?.directory && mount !== undefined && CONTAINER_ARGUMENT.test(value)) {
    const matches = findContainerCgroups(mount, value);
    if (matches.length > 1) throw invalidValue('--cgroup', value, `${matches.length} cgroups carry it: give more of the id, or a path`);
    if (matches.length === 1) [found, directory] = [inspect(matches[0]), matches[0]];
  }
  if (!found?.directory) throw invalidValue('--cgroup', value, 'no such directory (nor a container id or pod)');
  if (found.fsType !== CGROUP2_SUPER_MAGIC) throw invalidValue('--cgroup', value, 'not a cgroup v2 directory');
  return directory;
}

/**
 * The selection options as given, checked as far as can be without libbpf
 * (so that a mistake is reported before anything is loaded): the cgroup is
 * a cgroup v2 directory, the maps are files on a BPF file system.
 */
export function selectionFromArgs(args: SelectionOptions): SelectionOptions {
  const cgroup = args.cgroup === undefined ? undefined : cgroupDirectory(args.cgroup);
  for (const [option, path] of [['--cgroupmap', args.cgroupmap], ['--mntnsmap', args.mntnsmap]] as const) {
    if (path === undefined) continue;
    const found = inspect(path);
    if (!found) throw invalidValue(option, path, 'no such file');
    if (found.fsType !== BPF_FS_MAGIC || found.directory) throw invalidValue(option, path, 'not a pinned BPF map');
  }
  return { cgroup, cgroupmap: args.cgroupmap, mntnsmap: args.mntnsmap };
}
const MapInfo = koffi.struct('bpf_map_info_head', {
  type: 'uint32_t',
  id: 'uint32_t',
  key_size: 'uint32_t',
  value_size: 'uint32_t',
  max_entries: 'uint32_t',
  map_flags: 'uint32_t',
});

/** Opens a pinned map and checks it is a hash keyed by a 64-bit id, as bcc's are. */
function openPinnedIdMap(option: string, path: string): number {
  const fd = bpf.obj_get(path) as number;
  if (fd < 0) throw invalidValue(option, path, `not a pinned BPF map (${errnoText(lastErrno())})`);
  const info = { type: 0, id: 0, key_size: 0, value_size: 0, max_entries: 0, map_flags: 0 };
  const length = [koffi.sizeof(MapInfo)];
  const buffer = Buffer.alloc(length[0]);
  if ((bpf.obj_get_info_by_fd(fd, buffer, length) as number) === 0) {
    Object.assign(info, koffi.decode(buffer, MapInfo));
  }
  if (info.type !== BPF_MAP_TYPE_HASH || info.key_size !== 8) {
    throw invalidValue(option, path, 'expected a hash map with 8-byte keys');
  }
  return fd;
}

/**
 * Configures the filters (checked by selectionFromArgs) before load; returns what must be done after load
 * (the cgroup array can only be filled once the map exists).
 */
export function applySelection(obj: BpfObject, options: SelectionOptions): () => void {
  let cgroupFd = -1;
  if (options.cgroup !== undefined) {
    cgroupFd = openSync(options.cgroup, 'r');
    obj.setConfig({ filter_cgroup: true });
  }
  if (options.cgroupmap !== undefined) {
    obj.reuseMapFd('cgroupset', openPinnedIdMap('--cgroupmap', options.cgroupmap));
    obj.setConfig({ filter_cgroupset: true });
  }
  if (options.mntnsmap !== undefined) {
    obj.reuseMapFd('mntnsset', openPinnedIdMap('--mntnsmap', options.mntnsmap));
    obj.setConfig({ filter_mntnsset: true });
  }
  return () => {
    if (cgroupFd < 0) return;
    const key = Buffer.alloc(4);
    const value = Buffer.alloc(4);
    value.writeUInt32LE(cgroupFd);
    if ((bpf.map_update_elem(obj.mapFd('cgroup_map'), key, value, 0) as number) !== 0) {
      throw invalidValue('--cgroup', options.cgroup, 'not a cgroup v2 directory');
    }
    closeSync(cgroupFd);
  };
}

/** yargs definitions of the selection options, shared by every tool. */
/** --cgroup alone, for a tool whose -c is another option (fsslower's --csv). */
export const cgroupOption = {
  cgroup: { type: 'string', requiresArg: true, description: 'trace processes in this cgroup v2 directory only (or cgroup path as CGROUP shows it, or container id)' },
} as const;

export const selectionOptions = {
  cgroup: { alias: 'c', ...cgroupOption.cgroup },
  cgroupmap: { type: 'string', requiresArg: true, description: 'trace cgroups in this pinned BPF map only (as bcc)' },
  mntnsmap: { type: 'string', requiresArg: true, description: 'trace mount namespaces in this pinned BPF map only (as bcc)' },
} as const;

/** selectionOptions with --cgroup but no -c: for opensnoop, where libbpf-tools gives -c to --callers. */
export const selectionOptionsWithoutShortCgroup = {
  ...selectionOptions,
  cgroup: { type: 'string', requiresArg: true, description: selectionOptions.cgroup.description },
} as const;
