import type { HostFs } from "../hostfs.js";
import { noRuntimeOwnership, type OriginRule, type Rule, type RuntimeOwnership } from "../ir.js";
import { canonicalise } from "./canonical.js";
import { HostFacts, type PathFacts } from "./host-facts.js";
import { mergeRules } from "./merge.js";
import { refusal } from "./provenance.js";
import { PathError } from "../errors.js";
import type { QemuConf } from "../host/qemu-conf.js";

export { canonicalise } from "./canonical.js";
export { checkRestricted, isUnder, locationRefusal, restrictedLocations } from "./restricted.js";
export { mergeRules } from "./merge.js";
export { refusal, type PolicyInput } from "./provenance.js";
export { HostFacts, type HostView, type PathFacts } from "./host-facts.js";

/** Nothing known about the file: judged by its name (a missing file is judged by its name only). */
const UNKNOWN_FILE: PathFacts = { type: "missing", swap: false, blockUse: [] };

/** What the policy knows about the guest and the host while it judges one guest's rules. */
export interface PolicyContext {
  /** This guest's own entries in libvirt's managed directories (ir.ts, computed by rules/ownership.ts). */
  ownership: RuntimeOwnership;
  /** Host facts, read lazily through the layout root and cached for the whole build. */
  host: HostFacts;
}

/**
 * A context for one build: host facts read once, through `fs`'s root. `qemu`: qemu.conf's values
 * (its hugetlbfs mounts are managed roots); libvirt's defaults when absent.
 */
export function policyContext(fs: HostFs, ownership: RuntimeOwnership, qemu?: QemuConf): PolicyContext {
  return { ownership, host: new HostFacts(fs, fs.layout, qemu) };
}

/**
 * Raw rules → canonical, policy-checked, merged rules. Throws PathError on the first violation.
 * Each rule is judged on its own (with its origin) before rules for the same path are merged.
 * Without `ownership` nothing in libvirt's managed directories is the guest's own (stricter).
 */
export function applyPolicy(fs: HostFs, rules: readonly OriginRule[], ownership: RuntimeOwnership = noRuntimeOwnership(fs.layout), qemu?: QemuConf): Rule[] {
  const context = policyContext(fs, ownership, qemu);
  return mergeRules(rules.map((r) => checkRule(fs, r, context)));
}

/**
 * One rule → its canonical form, or PathError if the policy refuses it. Also used before an image
 * header is read (rules/storage.ts): the hook runs as root, so reading a file the guest may never
 * have would let its error messages tell the XML's author about that file (size, type, content).
 * Without a context (that pre-read check) the rule is judged by its path and origin only, with
 * nothing in libvirt's managed directories counted as the guest's own; what the host says about
 * the file (its type, block device use, swap) is judged by the final check, after the image code
 * has refused the file types it never reads.
 */
export function checkRule(fs: HostFs, r: Rule, context?: PolicyContext): Rule {
  const resolved = { ...r, path: canonicalise(fs, r.path) };
  const why =
    context === undefined
      ? refusal(resolved, UNKNOWN_FILE, { ownership: noRuntimeOwnership(fs.layout), host: { hugetlbfsMounts: [] }, layout: fs.layout })
      : refusal(resolved, context.host.about(resolved.path), { ownership: context.ownership, host: context.host.view(), layout: fs.layout });
  if (why === undefined) return resolved;
  // Name the path the XML used too, or a symlink trick would read as a mystery.
  if (resolved.path !== r.path) throw new PathError(r.path, `resolves to ${resolved.path}: ${why}`);
  throw new PathError(resolved.path, why);
}
