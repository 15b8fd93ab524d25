import path from "node:path";
import type { HostFs } from "../hostfs.js";
import { decodeOctalEscapes, hugetlbfsMounts } from "../host/mounts.js";
import { listDirectory, readAttribute } from "../host/sysfs.js";
import type { Layout } from "../layout.js";
import { PathError } from "../errors.js";
import { canonicalise } from "./canonical.js";
import type { QemuConf } from "../host/qemu-conf.js";

/**
 * The edge of the policy: everything it needs to know about the host, read through the layout
 * (so `--root DIR` confines it and tests use fake trees), and handed to the pure judgement in
 * provenance.ts as plain data. Each file is read at most once per build, and only when a rule
 * needs it: a guest without block devices never reads mountinfo or sysfs.
 */

const SCSI_GENERIC = /^\/dev\/(sg[0-9]+)$/;

/** These files are a few KiB even on busy hosts; a bound keeps a hostile root from stalling us. */
const MAX_PROC_BYTES = 1024 * 1024;

export type FileType = "missing" | "file" | "dir" | "block" | "char" | "socket" | "fifo";

/** What the host says about one canonical rule path. */
export interface PathFacts {
  type: FileType;
  /** The path is an active swap area (a swap file or device listed in /proc/swaps). */
  swap: boolean;
  /**
   * For a block device: each way the host uses it (mounted, swap, held by device-mapper/LVM/md,
   * the same for its partitions and for the disk a partition belongs to); for a SCSI generic
   * node, the same for the disk behind it. Empty when it is free.
   */
  blockUse: string[];
}

/** Host facts the judgement needs for every rule, not per path. */
export interface HostView {
  /** Mount points of every hugetlbfs (libvirt puts guests' hugepage RAM below them). */
  hugetlbfsMounts: readonly string[];
  /**
   * The firmware code images qemu.conf's `nvram` list names (canonical): the admin declared them
   * firmware, so a guest may read them wherever they are (only read; provenance.ts class 2).
   */
  firmwareLoaders?: readonly string[];
}

export class HostFacts {
  private mounts: Map<string, string> | null | undefined;
  private swaps: SwapAreas | undefined;
  private hugetlbfs: string[] | undefined;

  private loaders: string[] | undefined;

  /** `qemu`: qemu.conf's values (hugetlbfs_mount, the nvram list); undefined = libvirt's defaults. */
  constructor(
    private readonly fs: HostFs,
    private readonly layout: Layout,
    private readonly qemu?: Pick<QemuConf, "hugetlbfsMount" | "nvram">,
  ) {}

  view(): HostView {
    this.hugetlbfs ??= hugetlbfsMounts(this.fs, this.qemu?.hugetlbfsMount);
    this.loaders ??= (this.qemu?.nvram ?? []).flatMap(({ loader }) => {
      const canonical = quietly(() => canonicalise(this.fs, loader));
      return canonical === undefined || canonical === loader ? [loader] : [loader, canonical];
    });
    return { hugetlbfsMounts: this.hugetlbfs, firmwareLoaders: this.loaders };
  }

  /** Facts about `canonicalPath` (already canonical: no symlink left in it). */
  about(canonicalPath: string): PathFacts {
    const st = quietly(() => this.fs.lstat(canonicalPath));
    const type = fileType(st);
    const swaps = this.swapAreas();
    const rdev = type === "block" && st !== undefined ? devNumber(st.rdev) : undefined;
    const swap = swaps.paths.has(canonicalPath) || (rdev !== undefined && swaps.devices.has(rdev));
    if (rdev !== undefined) return { type, swap, blockUse: this.blockUse(rdev) };
    const sg = type === "char" ? SCSI_GENERIC.exec(canonicalPath)?.[1] : undefined;
    return { type, swap, blockUse: sg === undefined ? [] : this.scsiGenericUse(sg) };
  }

  /**
   * A SCSI generic node (`/dev/sgN`) passes raw SCSI commands to the disk behind it, so the disk's
   * use is the node's: `/sys/class/scsi_generic/sgN/device/block/<disk>` names it.
   */
  private scsiGenericUse(sg: string): string[] {
    const blockDir = `${this.layout.sysfsClassDir}/scsi_generic/${sg}/device/block`;
    const reasons: string[] = [];
    for (const disk of listDirectory(this.fs, blockDir) ?? []) {
      const dev = readAttribute(this.fs, `${blockDir}/${disk}/dev`);
      if (dev === undefined || !/^[0-9]+:[0-9]+$/.test(dev)) {
        reasons.push(`the host's sysfs does not give ${disk}'s device number, so whether it is in use cannot be told`);
        continue;
      }
      reasons.push(...this.blockUse(dev).map((why) => `${sg} is disk ${disk}: ${why}`));
    }
    return reasons;
  }

  /**
   * How the host uses block device `rdev` ("major:minor"), found through sysfs: the device's
   * directory `/sys/dev/block/M:m` resolves to `/sys/devices/.../block/<disk>[/<partition>]`. A
   * device sysfs does not know cannot be judged, so it counts as in use (fail closed).
   */
  private blockUse(rdev: string): string[] {
    const dir = quietly(() => canonicalise(this.fs, `${this.layout.sysDevBlock}/${rdev}`));
    if (dir === undefined || listDirectory(this.fs, dir) === undefined) {
      return [`the host's sysfs does not know it (${this.layout.sysDevBlock}/${rdev} is missing), so whether it is in use cannot be told`];
    }
    const members = [dir, ...partitionsOf(this.fs, dir)];
    const reasons: string[] = [];
    const mounts = this.mountedDevices();
    const swaps = this.swapAreas();
    // Without the lists nothing can be told free: fail closed.
    if (mounts === null) reasons.push(`${this.layout.procMountinfo} cannot be read, so whether it is mounted cannot be told`);
    if (!swaps.readable) reasons.push(`${this.layout.procSwaps} cannot be read, so whether it is swap cannot be told`);
    for (const member of members) {
      const name = path.posix.basename(member);
      const dev = readAttribute(this.fs, `${member}/dev`);
      if (dev !== undefined && mounts?.has(dev)) reasons.push(`${name} is mounted on ${mounts.get(dev)}`);
      if (dev !== undefined && swaps.devices.has(dev)) reasons.push(`${name} is active swap`);
      const holders = listDirectory(this.fs, `${member}/holders`) ?? [];
      if (holders.length > 0) reasons.push(`${name} is held by ${holders.join(", ")} (device-mapper, LVM, md or bcache)`);
    }
    // A partition of a disk that device-mapper holds as a whole (multipath, a PV on the disk).
    if (readAttribute(this.fs, `${dir}/partition`) !== undefined) {
      const disk = path.posix.dirname(dir);
      const holders = listDirectory(this.fs, `${disk}/holders`) ?? [];
      if (holders.length > 0) reasons.push(`its disk ${path.posix.basename(disk)} is held by ${holders.join(", ")}`);
    }
    return reasons;
  }

  /** "major:minor" → mount point, from mountinfo's device field and each mount's block-device source. */
  private mountedDevices(): Map<string, string> | null {
    if (this.mounts !== undefined) return this.mounts;
    const text = readSmall(this.fs, this.layout.procMountinfo);
    if (text === undefined) return (this.mounts = null);
    const mounts = new Map<string, string>();
    for (const line of text.split("\n")) {
      const fields = line.split(" ");
      const sep = fields.indexOf("-");
      if (sep < 5 || fields.length < sep + 3) continue;
      const mountPoint = decodeOctalEscapes(fields[4]!);
      const dev = fields[2]!;
      // btrfs and other multi-device filesystems report an anonymous 0:N here; the source names the device.
      if (!dev.startsWith("0:") && !mounts.has(dev)) mounts.set(dev, mountPoint);
      const source = decodeOctalEscapes(fields[sep + 2]!);
      if (source.startsWith("/")) {
        const sourceDev = blockDeviceNumber(this.fs, source);
        if (sourceDev !== undefined && !mounts.has(sourceDev)) mounts.set(sourceDev, mountPoint);
      }
    }
    this.mounts = mounts;
    return mounts;
  }

  /** Active swap areas: canonical paths (swap files) and device numbers (swap partitions). */
  private swapAreas(): SwapAreas {
    if (this.swaps !== undefined) return this.swaps;
    const text = readSmall(this.fs, this.layout.procSwaps);
    const swaps: SwapAreas = { readable: text !== undefined, paths: new Set<string>(), devices: new Set<string>() };
    const lines = (text ?? "").split("\n").slice(1); // a header line first
    for (const line of lines) {
      const name = line.split(/[ \t]+/)[0];
      if (name === undefined || !name.startsWith("/")) continue;
      const decoded = decodeOctalEscapes(name);
      const canonical = quietly(() => canonicalise(this.fs, decoded)) ?? decoded;
      swaps.paths.add(canonical);
      const dev = blockDeviceNumber(this.fs, canonical);
      if (dev !== undefined) swaps.devices.add(dev);
    }
    this.swaps = swaps;
    return swaps;
  }
}

interface SwapAreas {
  readable: boolean;
  paths: Set<string>;
  devices: Set<string>;
}

/** Entries of a disk's sysfs directory that are its partitions (they carry a `partition` file). */
function partitionsOf(fs: HostFs, diskDir: string): string[] {
  if (readAttribute(fs, `${diskDir}/partition`) !== undefined) return []; // a partition has none
  return (listDirectory(fs, diskDir) ?? [])
    .map((entry) => `${diskDir}/${entry}`)
    .filter((entry) => readAttribute(fs, `${entry}/partition`) !== undefined);
}

function blockDeviceNumber(fs: HostFs, hostPath: string): string | undefined {
  const st = quietly(() => fs.stat(hostPath));
  return st?.isBlockDevice() ? devNumber(st.rdev) : undefined;
}

/** Linux's dev_t split (glibc's gnu_dev_major/minor) as "major:minor", like mountinfo and sysfs. */
export function devNumber(rdev: number): string {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

function fileType(st: import("node:fs").Stats | undefined): FileType {
  if (st === undefined) return "missing";
  if (st.isBlockDevice()) return "block";
  if (st.isCharacterDevice()) return "char";
  if (st.isDirectory()) return "dir";
  if (st.isSocket()) return "socket";
  if (st.isFIFO()) return "fifo";
  return "file";
}

/** The text of a small /proc file, or undefined when it cannot be read. */
function readSmall(fs: HostFs, hostPath: string): string | undefined {
  return quietly(() => fs.readHead(hostPath, MAX_PROC_BYTES).toString("utf8"));
}

function quietly<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (err) {
    if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string") return undefined;
    if (err instanceof PathError) return undefined;
    throw err;
  }
}
