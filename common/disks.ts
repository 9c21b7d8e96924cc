// Block devices by name and by number. The kernel side identifies a disk
// by its internal dev_t, MKDEV(major, first minor) with 20 minor bits
// (bio.bpf.h); people name it (vda, sdc, nvme0n1). Names come from sysfs,
// which lists every block device, or from /proc/partitions where sysfs is
// not mounted.
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { invalidValue } from './errors.js';

const MINOR_BITS = 20;
const SYS_CLASS_BLOCK = '/sys/class/block';
const PROC_PARTITIONS = '/proc/partitions';

/** The kernel's internal dev_t of major:minor. */
export function mkdev(major: number, minor: number): number {
  return major * 2 ** MINOR_BITS + minor;
}

/** "major:minor" of an internal dev_t. */
export function devText(dev: number): string {
  return `${Math.floor(dev / 2 ** MINOR_BITS)}:${dev % 2 ** MINOR_BITS}`;
}

export interface BlockDevice {
  name: string;
  dev: number;
  /** for a partition, the disk it is part of */
  disk?: string;
}

function parseMajorMinor(text: string): number | undefined {
  const match = /^(\d+):(\d+)$/.exec(text.trim());
  return match ? mkdev(Number(match[1]), Number(match[2])) : undefined;
}

function fromSysfs(): BlockDevice[] {
  const devices: BlockDevice[] = [];
  for (const name of readdirSync(SYS_CLASS_BLOCK)) {
    const path = `${SYS_CLASS_BLOCK}/${name}`;
    let dev: number | undefined;
    try {
      dev = parseMajorMinor(readFileSync(`${path}/dev`, 'utf8'));
    } catch {
      continue; // removed while listing
    }
    if (dev === undefined) continue;
    const partition = existsSync(`${path}/partition`);
    devices.push(partition ? { name, dev, disk: basename(dirname(realpathSync(path))) } : { name, dev });
  }
  return devices;
}

/** Whether `name` is the kernel's name for a partition of `disk`: sda1 of sda, nvme0n1p1 of nvme0n1. */
function isPartitionName(name: string, disk: string): boolean {
  const number = name.slice(disk.length);
  return name.startsWith(disk) && (/\d$/.test(disk) ? /^p\d+$/ : /^\d+$/).test(number);
}

/** /proc/partitions: "major minor #blocks name" rows, each disk before its partitions. */
export function parseProcPartitions(text: string): BlockDevice[] {
  const devices: BlockDevice[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length !== 4 || !/^\d+$/.test(fields[0])) continue;
    const [major, minor, , name] = fields;
    const dev = mkdev(Number(major), Number(minor));
    const disk = devices.find((d) => d.disk === undefined && isPartitionName(name, d.name));
    devices.push(disk ? { name, dev, disk: disk.name } : { name, dev });
  }
  return devices;
}

/** Every block device of the system, disks and partitions. */
export function blockDevices(): BlockDevice[] {
  if (existsSync(SYS_CLASS_BLOCK)) return fromSysfs();
  return parseProcPartitions(readFileSync(PROC_PARTITIONS, 'utf8'));
}

/** Sorts names as people expect: sda, sdb, ..., sdz, sdaa; loop2 before loop10. */
function byName(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/**
 * The dev_t of the disk a -d option names (with or without /dev/), or a
 * usage error that lists the disks. Requests are traced per disk, so a
 * partition is refused with the name of its disk.
 */
export function resolveDisk(option: string, name: string, devices = blockDevices()): number {
  const wanted = name.replace(/^\/dev\//, '');
  const found = devices.find((d) => d.name === wanted);
  if (found?.disk !== undefined) {
    throw invalidValue(option, name, `a partition of ${found.disk}; block I/O is traced per disk: use ${found.disk}`);
  }
  if (!found) {
    const disks = devices.filter((d) => d.disk === undefined).map((d) => d.name).sort(byName);
    throw invalidValue(option, name, `no such disk (disks: ${disks.join(', ') || 'none'})`);
  }
  return found.dev;
}

/**
 * Names of disks by dev_t, for output. A disk that appeared after the tool
 * started (a new loop device) is found by reading the list again, once per
 * unknown number; a number with no name is shown as major:minor.
 */
export class DiskNames {
  private readonly names = new Map<number, string>();
  private readonly missed = new Set<number>();

  constructor(devices = blockDevices()) {
    this.add(devices);
  }

  private add(devices: BlockDevice[]): void {
    for (const d of devices) this.names.set(d.dev, d.name);
  }

  name(dev: number): string {
    let name = this.names.get(dev);
    if (name === undefined && !this.missed.has(dev)) {
      this.missed.add(dev);
      this.add(blockDevices());
      name = this.names.get(dev);
    }
    return name ?? devText(dev);
  }
}
