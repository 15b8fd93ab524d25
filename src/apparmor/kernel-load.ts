import fs from "node:fs";
import { HostError } from "../errors.js";
import type { LoadTarget } from "./environment.js";

/**
 * Load an already compiled policy (the bytes `apparmor_parser -S` prints and its cache stores)
 * into the kernel without running the parser: open `<target.dir>/.replace` and write the whole
 * blob in ONE write(2).
 *
 * Why one write: the kernel's policy interface unpacks each write on its own and refuses a write
 * at a non-zero offset (security/apparmor/apparmorfs.c: policy_update -> aa_simple_write_to_buffer,
 * "only one write per policy"), so a policy split over two writes is two broken policies.
 * apparmor_parser does the same: libapparmor's kernel_interface.c write_policy_buffer hands the
 * whole buffer to write_buffer, which calls write(2) once and treats a short write as EPROTO (with
 * atomic set loads, which every kernel since 3.x supports, there is no splitting per profile
 * either; the blobs the hook loads hold one profile). Large policies are written in one go too:
 * the kernel copies the whole write into one buffer (kvmalloc), there is no size at which the
 * parser splits.
 *
 * The file is opened like libapparmor opens it (write_policy_to_iface: O_WRONLY | O_CLOEXEC, no
 * O_CREAT, no O_TRUNC; node adds O_CLOEXEC itself): a `.replace` that does not exist means this is
 * not an AppArmor filesystem, which is an error, not a file to create. No fsync: the kernel has
 * taken (or refused) the policy when write(2) returns.
 *
 * Throws HostError "cannot load <profile>: <errno text>"; callers fall back to the parser on any
 * throw (the kernel refusing a blob, e.g. EPROTO for a truncated one, is such a throw).
 */
export function writeBinaryPolicy(target: LoadTarget, blob: Buffer, op: "replace"): void {
  const file = `${target.dir}/.${op}`;
  const what = profileNameOf(blob) ?? `compiled policy (${blob.length} bytes)`;
  if (blob.length === 0) throw new HostError(`cannot load ${what}: ${file}: empty policy`);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY);
  } catch (err) {
    throw new HostError(`cannot load ${what}: ${file}: ${errnoText(err)}`);
  }
  try {
    // One writeSync of the whole buffer is one write(2) unless the kernel takes less; apparmorfs
    // takes all or fails, so a short count is reported (as libapparmor reports EPROTO), never
    // continued.
    const written = fs.writeSync(fd, blob, 0, blob.length, null);
    if (written !== blob.length) {
      throw new HostError(`cannot load ${what}: ${file}: short write (${written} of ${blob.length} bytes)`);
    }
  } catch (err) {
    if (err instanceof HostError) throw err;
    throw new HostError(`cannot load ${what}: ${file}: ${errnoText(err)}`);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The first profile's name in a compiled policy, for error messages only (the blob is the hook's
 * own store's, but a damaged one must not break the message): the kernel's format
 * (security/apparmor/policy_unpack.c unpack_profile) starts a profile with the name "profile"
 * (AA_NAME 0x04, u16 length, "profile\0"), AA_STRUCT (0x07), then AA_STRING (0x05, u16 length,
 * the name with its NUL).
 */
export function profileNameOf(blob: Buffer): string | undefined {
  const marker = Buffer.from("\x04\x08\x00profile\x00\x07\x05", "latin1");
  const at = blob.indexOf(marker);
  if (at < 0 || at + marker.length + 2 > blob.length) return undefined;
  const len = blob.readUInt16LE(at + marker.length);
  const start = at + marker.length + 2;
  if (len < 2 || len > 512 || start + len > blob.length) return undefined;
  const name = blob.toString("latin1", start, start + len - 1);
  return /^[\x21-\x7e]+$/.test(name) ? name : undefined;
}

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === "string") {
    // "EPROTO (Protocol error)": the code admins grep for, and the text that explains it.
    const m = /^[A-Z0-9]+: (.*?),/.exec(e.message ?? "");
    return m ? `${e.code} (${m[1]})` : e.code;
  }
  return err instanceof Error ? err.message : String(err);
}
