import type { Rule } from "./ir.js";
import type { RuleContext, RuleFamily } from "./context.js";

/**
 * Every device family, in the order their rules appear in the `.files`. Each family lives in its
 * own module; adding a family means adding it here.
 */
const FAMILIES: RuleFamily[] = [];

/** Domain → raw rules (not yet canonicalised, policy-checked or deduplicated: see pipeline). */
export function deriveRules(ctx: RuleContext): Rule[] {
  return FAMILIES.flatMap((family) => family(ctx));
}
