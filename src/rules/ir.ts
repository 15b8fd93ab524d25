/**
 * The rule IR: what one guest's QEMU may touch, before any profile text exists.
 *
 * `path` is always a literal, canonical host path (never a pattern). The only way to widen a rule
 * beyond that single path is `suffix`, chosen from a fixed list, which the renderer appends after
 * escaping the literal part.
 */

/** Glob suffixes a rule may carry. Anything else is not expressible on purpose. */
export const GLOB_SUFFIXES = ["", "/", "/**", "{,/**}", "/*"] as const;
export type GlobSuffix = (typeof GLOB_SUFFIXES)[number];

/**
 * AppArmor file permissions we emit, in canonical order. `r` read, `w` write, `k` lock,
 * `m` mmap-exec (firmware/pflash is never needed executable, so `m` is rare), `a` append.
 */
export type Perm = "r" | "w" | "a" | "k" | "m";
export const PERM_ORDER: readonly Perm[] = ["r", "w", "a", "k", "m"];

export interface Rule {
  /** Literal canonical absolute host path, unescaped. */
  path: string;
  /** "" or one of GLOB_SUFFIXES, appended after escaping. */
  suffix: GlobSuffix;
  /** Permission string built from PERM_ORDER letters, e.g. "rwk", "rk", "r", "rw". */
  perms: string;
  /** The XML element (or derivation) that caused the rule, e.g. "disk vda", "serial 0 log". */
  source: string;
}

/** Normalise a permission string to canonical order without duplicates; throws on unknown letters. */
export function normalisePerms(perms: string): string {
  for (const c of perms) {
    if (!PERM_ORDER.includes(c as Perm)) throw new Error(`unknown permission letter ${JSON.stringify(c)}`);
  }
  return PERM_ORDER.filter((p) => perms.includes(p)).join("");
}
