import type { HostFs } from "../hostfs.js";
import type { Rule } from "../rules/ir.js";
import { canonicalise } from "./canonical.js";
import { mergeRules } from "./merge.js";
import { checkRestricted } from "./restricted.js";
import { PathError } from "../errors.js";

export { canonicalise } from "./canonical.js";
export { checkRestricted, isUnder } from "./restricted.js";
export { mergeRules } from "./merge.js";

/** Raw rules → canonical, policy-checked, merged rules. Throws PathError on the first violation. */
export function applyPolicy(fs: HostFs, rules: readonly Rule[]): Rule[] {
  return mergeRules(rules.map((r) => checkRule(fs, r)));
}

/**
 * One rule → its canonical form, or PathError if the policy refuses it. Also used before an image
 * header is read (rules/storage.ts): the hook runs as root, so reading a file the guest may never
 * have would let its error messages tell the XML's author about that file (size, type, content).
 */
export function checkRule(fs: HostFs, r: Rule): Rule {
  const resolved = { ...r, path: canonicalise(fs, r.path) };
  try {
    checkRestricted(resolved);
  } catch (err) {
    // Name the path the XML used too, or a symlink trick would read as a mystery.
    if (err instanceof PathError && resolved.path !== r.path) {
      throw new PathError(r.path, `resolves to ${resolved.path}: ${err.reason}`);
    }
    throw err;
  }
  return resolved;
}
