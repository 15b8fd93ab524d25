import { PathError } from "../errors.js";

/** Longest file name we accept from any header (PATH_MAX, as QEMU's own name buffers). */
export const MAX_NAME_BYTES = 4096;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Header bytes → file name. The bytes come from whoever can write the image, so anything QEMU
 * would read differently from us (a NUL ends a C string early) or that cannot be a clean path
 * is rejected rather than guessed at.
 */
export function decodeName(bytes: Buffer, imagePath: string, what: string, corrupt: string): string {
  if (bytes.length > MAX_NAME_BYTES) {
    throw new PathError(imagePath, `${corrupt}: ${what} is longer than ${MAX_NAME_BYTES} bytes`);
  }
  if (bytes.includes(0)) throw new PathError(imagePath, `${corrupt}: ${what} contains a NUL byte`);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new PathError(imagePath, `${corrupt}: ${what} is not valid UTF-8`);
  }
}

/** What a backing or data-file name refers to once QEMU's protocol rules are applied. */
export type NamedTarget = { kind: "none" } | { kind: "file"; path: string } | { kind: "network" };

/**
 * QEMU's rule (path_has_protocol): a name has a protocol prefix when a ':' comes before any '/'.
 * "file:" is the local file protocol; anything else (nbd:, rbd:, http://, gluster://, ...) is
 * served over the network and needs no file rule.
 */
function protocolOf(name: string): string | undefined {
  const stop = name.search(/[:/]/);
  return stop > 0 && name[stop] === ":" ? name.slice(0, stop) : undefined;
}

function shortForMessage(name: string): string {
  return name.length > 48 ? `${name.slice(0, 48)}...` : name;
}

/**
 * Resolve a backing file name the way QEMU does: a plain relative name is joined onto the
 * directory of the image that names it. `dir` is that directory with its symlinks already
 * resolved (the kernel resolves `dir/../x` by following `dir` first, so a lexical `..` would name
 * another file); the result is not normalised: `..` in the name is the canonicaliser's job too.
 */
export function resolveBackingName(name: string, referrer: string, dir: string): NamedTarget {
  return resolveName(name, referrer, dir, "backing file");
}

/**
 * Resolve a qcow2 external data file name against the image's directory, like a backing name.
 * This is libvirt's rule since it learnt about data files (10.10, `<dataStore>`): it resolves the
 * name from the header and hands QEMU the result. Older libvirt leaves the name to QEMU, which
 * opens a relative one against its own working directory; such an image cannot work there under
 * any policy, and granting the file beside the image over-grants nothing the image's owner did
 * not name.
 */
export function resolveDataFileName(name: string, referrer: string, dir: string): NamedTarget {
  return resolveName(name, referrer, dir, "external data file");
}

function resolveName(name: string, referrer: string, dir: string, what: string): NamedTarget {
  if (name === "") return { kind: "none" };
  // json: is a pseudo-protocol carrying a whole block-driver option tree; following it would
  // mean re-implementing QEMU's option parser, and it can name any file or driver.
  if (name.startsWith("json:")) {
    throw new PathError(referrer, `${what} name ${shortForMessage(name)} is not supported`);
  }
  const protocol = protocolOf(name);
  let local = name;
  if (protocol !== undefined) {
    if (protocol !== "file") return { kind: "network" };
    local = name.slice("file:".length);
    // QEMU only makes a name relative to the image when it has no protocol prefix; behind
    // "file:" it is opened relative to QEMU's working directory, which we cannot know.
    if (!local.startsWith("/")) {
      throw new PathError(referrer, `${what} name ${shortForMessage(name)} is relative behind "file:"; use an absolute name`);
    }
  }
  return { kind: "file", path: joinName(dir, local) };
}

/** `name` as the kernel reaches it from `dir`: absolute names as they are, relative ones appended. */
function joinName(dir: string, name: string): string {
  if (name.startsWith("/")) return name;
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

/**
 * Resolve a vmdk extent name. QEMU glues a relative name onto the descriptor's directory without
 * any protocol parsing (vmdk_parse_extents), so "nbd:x" there is just a file called "nbd:x".
 * `dir` is the descriptor's directory with its symlinks resolved, as for backing names.
 */
export function resolveExtentName(name: string, dir: string): string {
  return joinName(dir, name);
}
