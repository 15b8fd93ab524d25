import { normalisePerms, type Rule } from "../ir.js";

/**
 * One rule per (path, suffix), in first-appearance order, with the union of permissions and every
 * source that asked for it. Two XML elements naming the same file (through different symlinks,
 * say) must not yield two rules that look independent in `explain`. Origins are left behind: each
 * rule has been judged by its own before this point, and a merged rule has more than one.
 */
export function mergeRules(rules: readonly Rule[]): Rule[] {
  const byKey = new Map<string, Rule>();
  for (const { origin: _judged, ...r } of rules) {
    const key = `${r.path}\u0000${r.suffix}`;
    const seen = byKey.get(key);
    if (seen === undefined) {
      byKey.set(key, { ...r, perms: normalisePerms(r.perms) });
      continue;
    }
    seen.perms = normalisePerms(seen.perms + r.perms);
    if (!seen.source.split(", ").includes(r.source)) seen.source += `, ${r.source}`;
  }
  return [...byKey.values()];
}
