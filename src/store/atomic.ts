import fs from "node:fs";
import path from "node:path";
import { randomHex } from "../lazy.js";

/**
 * Atomic file replacement: the new content is written to a temporary file in the same directory,
 * fsynced, renamed over the target and the directory fsynced, so a reader (apparmor_parser, an
 * admin, a crash) sees either the old file or the new one, never a mix.
 *
 * The temporary name starts with "." because apparmor_parser skips dot files when it loads a
 * whole directory (its skip list also has "~", ".dpkg-new", ".rpmnew", ...): a half-written
 * profile is never picked up by `apparmor_parser -r /etc/apparmor.d/libvirt/`.
 *
 * Arguments are real paths (already mapped through the layout).
 */

export function tempNameFor(target: string): string {
  const dir = path.dirname(target);
  const rand = randomHex(6);
  return path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${rand}`);
}

/** Is this a temporary file left by writeFileAtomic for `target` (e.g. by a killed process)? */
export function isTempNameFor(target: string, candidate: string): boolean {
  const prefix = `.${path.basename(target)}.tmp-`;
  return path.basename(candidate).startsWith(prefix);
}

export interface AtomicWriteOptions {
  mode?: number;
}

/** Replace `target` with `data` atomically. On failure the target is untouched and no temp file remains. */
export function writeFileAtomic(target: string, data: string | Buffer, opts: AtomicWriteOptions = {}): void {
  const tmp = tempNameFor(target);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, opts.mode ?? 0o644);
    // The umask must not loosen or tighten what we asked for.
    fs.fchmodSync(fd, opts.mode ?? 0o644);
    writeAll(fd, typeof data === "string" ? Buffer.from(data, "utf8") : data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(path.dirname(target));
}

/** Put an already written and fsynced file in place by rename, then make the rename durable. */
export function renameDurably(from: string, to: string): void {
  fs.renameSync(from, to);
  fsyncDir(path.dirname(to));
  if (path.dirname(from) !== path.dirname(to)) fsyncDir(path.dirname(from));
}

/**
 * Put `from` at `to` only if `to` does not exist: a file someone else made is never overwritten.
 * Returns false (and leaves `from`) when `to` already existed.
 *
 * A check then rename, not link(2): the hook's own AppArmor profile grants no link permission.
 * The window between the two is the admin creating the very same profile file during the few
 * milliseconds this hook holds the guest's lock; every other writer of it takes that lock.
 */
export function installIfAbsent(from: string, to: string): boolean {
  if (fs.lstatSync(to, { throwIfNoEntry: false }) !== undefined) return false;
  renameDurably(from, to);
  return true;
}

/** Write a new file (fails if it exists), fsynced; used for staging before a rename. */
export function writeNewFile(target: string, data: string | Buffer, mode = 0o644): void {
  const fd = fs.openSync(target, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
  try {
    fs.fchmodSync(fd, mode);
    writeAll(fd, typeof data === "string" ? Buffer.from(data, "utf8") : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Remove a file if present and make the removal durable. Returns whether it existed. */
export function removeDurably(target: string): boolean {
  try {
    fs.unlinkSync(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  fsyncDir(path.dirname(target));
  return true;
}

/** The file's bytes, or undefined when it does not exist. */
export function readIfExists(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}
