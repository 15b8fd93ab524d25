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
  const canonical = rules.map((r) => {
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
  });
  return mergeRules(canonical);
}
