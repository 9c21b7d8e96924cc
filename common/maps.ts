// Reading a BPF map's contents from user space, for tools that aggregate in
// the kernel (histograms, counts) instead of streaming events.
import { RuntimeError } from './errors.js';
import { bpf, errnoText } from './native.js';

const ENOENT = 2;

export interface MapEntry {
  key: Buffer;
  value: Buffer;
}

/**
 * Every key of a hash map with its value, one system call per key and one
 * per value. A key deleted while the walk is under way makes the kernel
 * restart it from the first key: keys already read are skipped, so that
 * costs time, never a duplicate. Best for maps whose keys are only ever
 * added (cumulative counters).
 */
export function readMap(fd: number, keySize: number, valueSize: number): MapEntry[] {
  const entries: MapEntry[] = [];
  const seen = new Set<string>();
  let previous: Buffer | null = null;
  for (;;) {
    const key = Buffer.alloc(keySize);
    const err = bpf.map_get_next_key(fd, previous, key) as number;
    if (err === -ENOENT) break;
    if (err) throw new RuntimeError(`cannot read a BPF map: ${errnoText(err)}`);
    previous = key;
    const id = key.toString('hex');
    if (seen.has(id)) continue;
    seen.add(id);
    const value = Buffer.alloc(valueSize);
    const lookup = bpf.map_lookup_elem(fd, key, value) as number;
    if (lookup === -ENOENT) continue; // deleted since the key was read
    if (lookup) throw new RuntimeError(`cannot read a BPF map: ${errnoText(lookup)}`);
    entries.push({ key, value });
  }
  return entries;
}

/** The value of an array map's element `index`. */
export function readArrayElement(fd: number, index: number, valueSize: number): Buffer {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(index);
  const value = Buffer.alloc(valueSize);
  const err = bpf.map_lookup_elem(fd, key, value) as number;
  if (err) throw new RuntimeError(`cannot read a BPF map: ${errnoText(err)}`);
  return value;
}
