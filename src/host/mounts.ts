import type { HostFs } from "../hostfs.js";

/** /proc/mounts is a few KiB even on busy hosts; a bound keeps a hostile root from stalling us. */
const MAX_MOUNTS_BYTES = 1024 * 1024;

/**
 * Mount points of every hugetlbfs in /proc/mounts (through the root), in file order, without
 * duplicates, as libvirt's virFileFindHugeTLBFS finds them. When none is mounted libvirt refuses
 * to start a hugepage guest anyway; we then name the conventional `/dev/hugepages` so the profile
 * still says what the guest would need. When qemu.conf sets `hugetlbfs_mount` (`configured`,
 * host/qemu-conf.ts), libvirt uses exactly those mount points and detects nothing
 * (qemu_conf.c virQEMUDriverConfigLoadProcessEntry); an empty list means none.
 * Read by the runtime rules (the guest's hugepage directory) and the policy (the mounts are
 * libvirt-managed roots), hence here rather than in either.
 */
export function hugetlbfsMounts(fs: HostFs, configured?: readonly string[]): string[] {
  if (configured !== undefined) return [...configured];
  const text = readMounts(fs, fs.layout.procMounts);
  const mounts: string[] = [];
  for (const line of text.split("\n")) {
    const [, mountPoint, fsType] = line.split(" ");
    if (fsType !== "hugetlbfs" || mountPoint === undefined) continue;
    const decoded = decodeOctalEscapes(mountPoint);
    if (decoded.startsWith("/") && !mounts.includes(decoded)) mounts.push(decoded);
  }
  return mounts.length > 0 ? mounts : [fs.layout.defaultHugepagesDir];
}

function readMounts(fs: HostFs, path: string): string {
  if (fs.stat(path) === undefined) return "";
  return fs.readHead(path, MAX_MOUNTS_BYTES).toString("utf8");
}

/** The kernel writes space, tab, newline and backslash in /proc mount and swap fields as 3-digit octal escapes. */
export function decodeOctalEscapes(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}
