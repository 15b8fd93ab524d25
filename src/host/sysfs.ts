import path from "node:path";
import type { HostFs } from "../hostfs.js";

/**
 * Small read-only sysfs lookups through the layout root. Every helper answers `undefined` for
 * "not there" (missing file, not a directory, unreadable) so callers decide which absence is an
 * error for the guest; nothing here throws for a missing path.
 */

/** sysfs attributes are at most a page; device IDs and numbers are a few bytes. */
const MAX_ATTRIBUTE_BYTES = 4096;

export function exists(fs: HostFs, hostPath: string): boolean {
  return quietly(() => fs.stat(hostPath)) !== undefined;
}

/** Trimmed text of a sysfs attribute file. */
export function readAttribute(fs: HostFs, hostPath: string): string | undefined {
  const st = quietly(() => fs.stat(hostPath));
  if (st === undefined || !st.isFile()) return undefined;
  const head = quietly(() => fs.readHead(hostPath, MAX_ATTRIBUTE_BYTES));
  return head?.toString("utf8").trim();
}

/** Last component of a symlink's target (`iommu_group -> ../../../kernel/iommu_groups/17` → "17"). */
export function linkTargetName(fs: HostFs, hostPath: string): string | undefined {
  const st = quietly(() => fs.lstat(hostPath));
  if (st === undefined || !st.isSymbolicLink()) return undefined;
  const target = quietly(() => fs.readlink(hostPath));
  return target === undefined ? undefined : path.posix.basename(target);
}

/** Entries of a directory (following a symlinked directory), sorted for a stable rule order. */
export function listDirectory(fs: HostFs, hostPath: string): string[] | undefined {
  const entries = quietly(() => fs.readdir(hostPath));
  return entries?.sort();
}

function quietly<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (err) {
    // ENOENT, ENOTDIR, EACCES, EINVAL (readlink of a non-link)...: all mean "cannot tell", which
    // the caller treats as absent. Anything that is not an errno is a bug and propagates.
    if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string") return undefined;
    throw err;
  }
}
