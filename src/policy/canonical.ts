import path from "node:path";
import { PathError } from "../errors.js";
import type { HostFs } from "../hostfs.js";

/** Linux's own limit; beyond it the kernel gives ELOOP, and so do we. */
const MAX_SYMLINKS = 40;
const MAX_PATH_LENGTH = 4096;

/**
 * The path AppArmor will mediate when QEMU opens `hostPath`: absolute, with `.`, `..` and `//`
 * resolved and every symlink of the longest existing prefix followed (AppArmor checks the resolved
 * path, so a rule on the link name would not match). The part that does not exist yet (a socket
 * QEMU will create, a log file) is kept, lexically normalised.
 *
 * Symlinks are resolved inside the layout root: an absolute link target restarts at the root, so
 * `--root DIR` never escapes DIR.
 */
export function canonicalise(fs: HostFs, hostPath: string): string {
  if (!hostPath.startsWith("/")) throw new PathError(hostPath, "path is not absolute");
  if (hostPath.length > MAX_PATH_LENGTH) throw new PathError(hostPath.slice(0, 64) + "...", "path is too long");

  const pending = hostPath.split("/").reverse();
  const resolved: string[] = [];
  let links = 0;
  // Once a component is missing, nothing below it can be a symlink: stop asking the filesystem.
  let existing = true;

  while (pending.length > 0) {
    const part = pending.pop()!;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    resolved.push(part);
    if (!existing) continue;

    const current = "/" + resolved.join("/");
    const st = lstatOrUndefined(fs, current);
    if (st === undefined) {
      existing = false;
      continue;
    }
    if (!st.isSymbolicLink()) continue;

    if (++links > MAX_SYMLINKS) throw new PathError(hostPath, "too many levels of symbolic links");
    const target = linkTarget(fs, current, hostPath);
    resolved.pop();
    if (target.startsWith("/")) resolved.length = 0;
    pending.push(...target.split("/").reverse());
  }
  return path.posix.normalize("/" + resolved.join("/"));
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A symlink's target, decoded strictly: a lenient decode would turn invalid bytes into U+FFFD
 * and the rule would name a different file than the one QEMU opens.
 */
function linkTarget(fs: HostFs, link: string, hostPath: string): string {
  const bytes = fs.readlinkBytes(link);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new PathError(hostPath, `symbolic link ${link} has a target that is not valid UTF-8`);
  }
}

function lstatOrUndefined(fs: HostFs, hostPath: string) {
  try {
    return fs.lstat(hostPath);
  } catch (err) {
    // ENOTDIR (a file used as a directory), EACCES...: QEMU's own open will fail the same way;
    // treat the rest as not existing rather than guessing.
    if (isErrno(err)) return undefined;
    throw err;
  }
}

function isErrno(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === "string";
}
