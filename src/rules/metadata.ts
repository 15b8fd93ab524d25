import { absolute } from "./absolute.js";
import { ruleOf, type RuleFamily } from "./context.js";

const rule = ruleOf("metadata");

/**
 * `<metadata><vah:guest><vah:allow path=... access=... tree=.../>`: paths the admin pre-authorises
 * for the guest in its own domain XML (domain/metadata.ts, docs/metadata.md), for files libvirt
 * will hand QEMU later without a hook call: snapshot overlays next to a disk, a hotplug directory,
 * an installer ISO for change-media.
 *
 * - access="r" → `rk`, access="rw" → `rwk`. The `k`: QEMU locks every image it opens (image
 *   locking, on by default: a shared lock for a reader, an exclusive one for the writer, on the
 *   lock bytes of the file), and AppArmor mediates that lock; without `k` QEMU's open fails
 *   ("Failed to lock byte 100"). It is why the disk rules grant `rk`/`rwk` too.
 * - tree="yes" → `{,/**}`: the directory and everything below it, never a sibling named like it
 *   (`<dir>x`). The policy requires an existing directory (provenance.ts).
 *
 * The source is `metadata allow N` (1-based, document order), so `explain` and every refusal name
 * the entry. The XML is hostile: whoever may define the domain writes these, so each rule carries
 * the origin "metadata" and gets the policy's strictest allowances (no device node of any kind,
 * no sysfs, restricted locations, recursive reach, other guests' held paths: policy/provenance.ts
 * and hook/exclusive.ts).
 */
export const metadataRules: RuleFamily = (ctx) =>
  (ctx.domain.settings?.allow ?? []).map((a, i) =>
    rule(absolute(a.path, `metadata allow ${i + 1}`), a.access === "rw" ? "rwk" : "rk", `metadata allow ${i + 1}`, a.tree ? "{,/**}" : ""),
  );
