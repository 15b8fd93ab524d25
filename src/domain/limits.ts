/**
 * Bounds on hostile domain XML. Each limit is far above anything libvirt produces (a 500-disk
 * domain is ~300 KB, ~5,000 elements, depth ~8 plus one level per backing-chain layer), and far
 * below what could hurt the hook (time, memory, stack).
 */

/** Whole document. libvirt's own clients cap XML at 10 MiB (virsh) and 32 MiB (RPC message). */
export const MAX_XML_BYTES = 16 * 1024 * 1024;

/**
 * Element nesting. `<backingStore>` nests one level per layer, so this must exceed the backing
 * depth the rules accept (64) plus the ~5 levels above a disk; 256 still keeps every walk up the
 * tree (error locations) short.
 */
export const MAX_DEPTH = 256;

/** Elements plus attributes in the whole document: bounds reading time and tree memory. */
export const MAX_MARKUP_ITEMS = 250_000;

/** Any single attribute value or element text we read (PATH_MAX is 4096). */
export const MAX_VALUE_CHARS = 4096;

/**
 * `<vah:allow>` entries in a domain's metadata (domain/metadata.ts). An admin pre-authorises a few
 * overlay or hotplug directories per guest; 64 is far above that and keeps what the metadata
 * alone adds to a profile small (the literal-path budget below still counts every path).
 */
export const MAX_METADATA_ALLOWS = 64;

/** Domain names (libvirt has no limit of its own; this keeps error lines and paths sane). */
export const MAX_NAME_CHARS = 1024;

/**
 * Host path limits, in UTF-8 bytes as the kernel counts them (not JS string length): a component
 * longer than NAME_MAX (255) or a path of PATH_MAX (4096, with its NUL) or more fails with
 * ENAMETOOLONG in QEMU's own open, so granting it only costs compile time.
 */
export const MAX_COMPONENT_BYTES = 255;
export const MAX_PATH_BYTES = 4095;

/**
 * Per-guest budgets on the literal paths of one profile. apparmor_parser's compile time grows
 * about with the square of each literal path's length, and libvirtd waits for the hook without a
 * timeout. Measured through the hook (docs/threat-model.md, H7): shapes with a sum of squared
 * lengths of 64 Mi (4 paths of 4090 bytes, 16 of 2040, 1,000 of 255) cost 6-8 s of CPU per start;
 * 16,384 paths of 64 bytes (1 MiB) 21 s. The budget is a quarter of that sum of squares (one path
 * of 4 KiB, 4 of 2 KiB, 16 of 1 KiB, 256 of 256 bytes) and 256 KiB in all (a legitimate 500-disk
 * guest needs ~30 KiB), which also bounds the state record.
 */
export const MAX_LITERAL_BYTES = 256 * 1024;
export const MAX_LITERAL_SQUARES = 16 * 1024 * 1024;

const encoder = new TextEncoder();

/** UTF-8 length; a lone surrogate counts as the 3 bytes of U+FFFD, as Buffer.from would write it. */
export function utf8Bytes(s: string): number {
  // ASCII fast path: most paths are.
  if (/^[\x00-\x7f]*$/.test(s)) return s.length;
  return encoder.encode(s).length;
}

/** Why this path cannot be opened by the kernel as written, or undefined. */
export function pathLimitProblem(p: string): string | undefined {
  const bytes = utf8Bytes(p);
  if (bytes > MAX_PATH_BYTES) return `path is ${bytes} bytes, more than ${MAX_PATH_BYTES} (PATH_MAX)`;
  for (const part of p.split("/")) {
    if (part.length * 3 <= MAX_COMPONENT_BYTES) continue;
    const n = utf8Bytes(part);
    if (n > MAX_COMPONENT_BYTES) return `path component "${part.slice(0, 32)}..." is ${n} bytes, more than ${MAX_COMPONENT_BYTES} (NAME_MAX)`;
  }
  return undefined;
}

/** The first path at which a profile's literal paths exceed a budget, with the reason. */
export function literalBudgetProblem(paths: Iterable<string>): { path: string; reason: string } | undefined {
  let sum = 0;
  let squares = 0;
  for (const p of paths) {
    const n = utf8Bytes(p);
    sum += n;
    squares += n * n;
    if (sum > MAX_LITERAL_BYTES) {
      return { path: p, reason: `the guest's paths add up to more than ${MAX_LITERAL_BYTES} bytes (the per-guest budget)` };
    }
    if (squares > MAX_LITERAL_SQUARES) {
      return {
        path: p,
        reason: `the guest's long paths exceed the per-guest budget (sum of squared lengths over ${MAX_LITERAL_SQUARES}: e.g. at most one path of 4 KiB, 16 of 1 KiB or 256 of 256 bytes), which bounds the profile's compile time`,
      };
    }
  }
  return undefined;
}
