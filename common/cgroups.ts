// Cgroups by name: --print-cgroup's CGROUP (or CONTAINER) column and JSON
// fields, and the container ids that well-known cgroup path shapes carry.
// The names come from the kernel (cgroup_paths in bpf/common.bpf.h), read
// there when a cgroup is first seen, so a cgroup that is gone by the time
// its events are printed is still named; user space looks each id up once.
import { readdirSync, readFileSync } from 'node:fs';
import type { BpfObject } from './bpfobject.js';
import { invalidValue } from './errors.js';
import { escapeText, losslessString, terminalSafeJson } from './escape.js';
import { left } from './format.js';
import { structDecoder } from './layout.js';
import { bpf } from './native.js';

/** What --print-cgroup prints: the path, or with =container the container id where the path names one. */
export type CgroupMode = 'path' | 'container';

/** Cgroups named in the kernel at most at once (an LRU: the recent ones are kept). */
export const CGROUP_PATHS_ENTRIES = 4096;

/** Names kept in user space before the cache starts over (each is then looked up again once). */
const CACHE_LIMIT = 65536;

/** enum cgroup_path_status in bpf/common.bpf.h */
export enum PathStatus { Complete = 1, Truncated = 2, Unknown = 3 }

/** Where the kernel could not keep every name (deeper than it walks): the path starts with this. */
const TRUNCATED_PREFIX = '...';

/** yargs definition of --print-cgroup, shared by every tool that prints events. */
export const printCgroupOption = {
  'print-cgroup': {
    type: 'string',
    description: 'print the cgroup v2 path (CGROUP column); --print-cgroup=container: the container id where the path names one (CONTAINER column)',
  },
} as const;

/** --print-cgroup's value checked: undefined when not given. */
export function cgroupModeFromArgs(value: string | undefined): CgroupMode | undefined {
  if (value === undefined) return undefined;
  if (value === 'path' || value === 'container') return value;
  throw invalidValue('--print-cgroup', value, "expected 'container' (or no value: the path)");
}

/** One cgroup as the output shows it. */
export interface Cgroup {
  id: number;
  /** the path relative to the cgroup2 mount, as a lossless string (see losslessString); undefined if unknown */
  path?: string;
  /** the 12-character container id (or pod<uid>) the path names, if any */
  container?: string;
  /** what the column shows, escaped, not padded (CSV takes it as a field) */
  text: string;
  /** the column's text, escaped, padded, with its trailing space */
  column: string;
  /** the "cgroup_id" and "cgroup" JSON members, with a leading comma */
  json: string;
}

/** What --json carries when --print-cgroup is not given: the id only. */
export function cgroupIdJson(id: number): string {
  return `,"cgroup_id":${id}`;
}

const COLUMN_WIDTH: Record<CgroupMode, number> = { path: 32, container: 12 };

/** The column's name: CGROUP, or CONTAINER with =container. */
export function cgroupColumnName(mode: CgroupMode): string {
  return mode === 'container' ? 'CONTAINER' : 'CGROUP';
}

/** The column's header, with its trailing space. */
export function cgroupHeader(mode: CgroupMode): string {
  return `${left(cgroupColumnName(mode), COLUMN_WIDTH[mode])} `;
}

const SCOPE = /^(?:docker|cri-containerd|crio|libpod)-([0-9a-f]{64})\.scope$/;
/** cgroupfs drivers name the container's cgroup by its bare id (/docker/<id>, /kubepods/besteffort/pod<uid>/<id>) */
const BARE_ID = /^[0-9a-f]{64}$/;
const POD = /^(?:kubepods-(?:[a-z]+-)?)?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$/;

/** The full container id a cgroup directory's name carries, if any. */
export function containerIdOf(name: string): string | undefined {
  return SCOPE.exec(name)?.[1] ?? (BARE_ID.test(name) ? name : undefined);
}

/** The Kubernetes pod whose own cgroup a directory's name is, as the CONTAINER column shows it (pod<uid>, with dashes), if any. */
export function podOf(name: string): string | undefined {
  const pod = POD.exec(name);
  return pod ? `pod${pod[1].replace(/_/g, '-')}` : undefined;
}

/**
 * The container a cgroup path names: the innermost container id there (as
 * `docker ps` shows it, 12 characters), else a Kubernetes pod (pod<uid>)
 * for a process in the pod's own cgroup.
 */
export function containerOf(path: string): string | undefined {
  const names = path.split('/').reverse();
  for (const name of names) {
    const id = containerIdOf(name);
    if (id !== undefined) return id.slice(0, 12);
  }
  for (const name of names) {
    const pod = podOf(name);
    if (pod !== undefined) return pod;
  }
  return undefined;
}

/**
 * The path from the kernel's names of a cgroup (innermost first, each
 * NUL-terminated, the root unnamed): "/a/b/c", "/" for the root.
 */
export function pathOfNames(names: Uint8Array, truncated: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let start = 0; start < names.length;) {
    let end = names.indexOf(0, start);
    if (end < 0) end = names.length;
    parts.unshift(Buffer.from([0x2f]), names.subarray(start, end));
    start = end + 1;
  }
  if (parts.length === 0) return Uint8Array.of(0x2f);
  if (truncated) parts.unshift(Buffer.from(TRUNCATED_PREFIX));
  return Buffer.concat(parts);
}

/** The output of one cgroup from its path's bytes (undefined: not known). */
export function describeCgroup(id: number, path: Uint8Array | undefined, mode: CgroupMode): Cgroup {
  const width = COLUMN_WIDTH[mode];
  if (path === undefined) return { id, text: '?', column: `${left('?', width)} `, json: `,"cgroup_id":${id},"cgroup":null` };
  const text = losslessString(path);
  const container = containerOf(text);
  const shown = mode === 'container' && container !== undefined ? container : escapeText(path);
  return { id, path: text, container, text: shown, column: `${left(shown, width)} `, json: `,"cgroup_id":${id},"cgroup":${terminalSafeJson(text)}` };
}

/** Sizes and switches on the kernel's naming of cgroups; call before load, with the --print-cgroup mode. */
export function configureCgroupNames(obj: BpfObject, mode: CgroupMode | undefined): void {
  if (mode === undefined) return;
  obj.setConfig({ name_cgroups: true });
  obj.setMaxEntries('cgroup_paths', CGROUP_PATHS_ENTRIES);
}

/** The names of cgroups by id, read from a loaded object's cgroup_paths once per id. */
export class CgroupNames {
  private readonly cache = new Map<number, Cgroup>();
  private readonly fd: number;
  private readonly decoder;
  private readonly namesOffset: number;
  private readonly value: Buffer;
  private readonly key = Buffer.alloc(8);

  constructor(obj: BpfObject, private readonly mode: CgroupMode) {
    const layout = obj.struct('cgroup_path');
    this.decoder = structDecoder(layout, { end: 'u32', status: 'u32', names: 'chars' });
    this.namesOffset = this.decoder.offsets.names;
    this.value = Buffer.alloc(layout.size);
    this.fd = obj.mapFd('cgroup_paths');
  }

  of(id: number): Cgroup {
    let cgroup = this.cache.get(id);
    if (cgroup === undefined) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      cgroup = describeCgroup(id, this.lookup(id), this.mode);
      // an unknown one is asked for again next time (the kernel may name it by then)
      if (cgroup.path !== undefined) this.cache.set(id, cgroup);
    }
    return cgroup;
  }

  private lookup(id: number): Uint8Array | undefined {
    if (id === 0) return undefined;
    this.key.writeBigUInt64LE(BigInt(id));
    if ((bpf.map_lookup_elem(this.fd, this.key, this.value) as number) !== 0) return undefined;
    const view = new DataView(this.value.buffer, this.value.byteOffset, this.value.length);
    const { end, status } = this.decoder.decode(view, 0);
    if (status !== PathStatus.Complete && status !== PathStatus.Truncated) return undefined;
    const names = this.value.subarray(this.namesOffset, this.namesOffset + Math.min(end, this.decoder.sizes.names));
    return pathOfNames(names, status === PathStatus.Truncated);
  }
}

/** Where the cgroup v2 hierarchy is mounted (the first cgroup2 mount), if it is. */
export function cgroup2Mount(mountinfo = '/proc/self/mountinfo'): string | undefined {
  for (const line of readFileSync(mountinfo, 'utf8').split('\n')) {
    const [before, after] = line.split(' - ');
    if (after?.split(' ')[0] === 'cgroup2') {
      // mountinfo escapes space, tab, newline and backslash in paths as \ooo
      return before.split(' ')[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    }
  }
  return undefined;
}

/** Depth of the cgroup tree searched for a container id or pod. */
const MAX_SEARCH_DEPTH = 16;

/**
 * The cgroup directories under `root` that `value` (a CONTAINER_ARGUMENT)
 * names: those whose names carry a container id starting with it, or the
 * pod's own cgroup for a pod<uid>.
 */
export function findContainerCgroups(root: string, value: string): string[] {
  const named = value.startsWith('pod')
    ? (name: string) => podOf(name) === value
    : (name: string) => containerIdOf(name)?.startsWith(value) === true;
  const found: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // removed meanwhile
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const path = `${dir}/${entry.name}`;
      if (named(entry.name)) found.push(path);
      else if (depth < MAX_SEARCH_DEPTH) walk(path, depth + 1);
    }
  };
  walk(root, 0);
  return found;
}

/**
 * What --cgroup takes as a container: 12 to 64 lowercase hex digits of its
 * id (as docker ps, docker inspect and the CONTAINER column show it), or a
 * pod as the CONTAINER column shows it (pod<uid>), so that whatever that
 * column shows can be given back.
 */
export const CONTAINER_ARGUMENT = /^(?:[0-9a-f]{12,64}|pod[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
