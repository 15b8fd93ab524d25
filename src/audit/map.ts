/**
 * Denials → findings: which guest, which element of its XML, what to do. Pure: the audit records
 * and what is known about the guests (guests.ts reads it) come in as data; the policy's verdict on
 * a path the XML does not ask for comes in as a function of the guest's facts.
 *
 * Classes (docs/denials.md), judged in this order:
 *   unknown-guest  no definition, state record or kept profile names the UUID
 *   template       a capability, a signal, running a program...: the template decides it, not the XML
 *   no-xml         the guest is known by name only (undefined, not running): no element to name
 *   xml-refused    its XML is refused by the policy now (the hook would refuse its start)
 *   granted-now    the XML's rules grant all of it now: the profile that denied it was older
 *   partial        a rule covers the path with fewer permissions than QEMU asked for
 *   refused        nothing in the XML asks for it, and the policy refuses it to every element
 *   not-asked      nothing in the XML asks for it; an element, `<vah:allow>` or `grant` could
 */
import type { Rule } from "../ir.js";
import type { AuditRecord } from "./parse.js";
import { guestUuidOf } from "./parse.js";
import { isPlain, visible } from "./display.js";
import { ADMIN_SOURCE } from "../grants/admin.js";

export const FINDING_CLASSES = ["unknown-guest", "template", "no-xml", "xml-refused", "granted-now", "partial", "refused", "not-asked"] as const;
export type FindingClass = (typeof FINDING_CLASSES)[number];

/** What is known about one guest, by UUID. */
export interface GuestFacts {
  uuid: string;
  name: string;
  /** The rules its XML gives it now, runtime grants included; absent without an accepted XML. */
  rules?: readonly Rule[];
  /** Where the XML came from: libvirt's live status XML of the running guest, or its definition. */
  xmlFrom?: "live" | "defined";
  /** The policy's refusal of that XML, as the hook would say it. */
  xmlRefusal?: string;
  /** The policy's refusal of `path` with `perms` asked for by a runtime grant, or undefined when it would be granted. */
  judge(path: string, perms: string): string | undefined;
}

/** Identical denials, counted. */
export interface DenialGroup {
  record: AuditRecord;
  count: number;
  first?: number;
  last?: number;
}

export interface Finding extends DenialGroup {
  uuid?: string;
  guest?: string;
  class: FindingClass;
  /** The XML elements (rule sources) whose rules cover the path. */
  elements: string[];
  /** Permissions those rules grant, in AppArmor's order. */
  granted?: string;
  /** Other guests whose XML asks for the path: "lab-b (disk vda)". */
  others: string[];
  explanation: string;
  fix: string;
}

/** Identical denials (same decision, profile, operation, object, masks, command) as one group, in order of first appearance. */
export function groupRecords(records: readonly AuditRecord[]): DenialGroup[] {
  const groups = new Map<string, DenialGroup>();
  for (const r of records) {
    const key = JSON.stringify([r.decision, r.profile, r.operation, r.name?.toString("hex"), r.requested, r.denied, r.capname, r.comm?.toString("hex")]);
    const g = groups.get(key);
    if (g === undefined) {
      groups.set(key, { record: r, count: 1, ...(r.time !== undefined ? { first: r.time, last: r.time } : {}) });
      continue;
    }
    g.count++;
    if (r.time !== undefined) {
      g.first = g.first === undefined ? r.time : Math.min(g.first, r.time);
      g.last = g.last === undefined ? r.time : Math.max(g.last, r.time);
    }
  }
  return [...groups.values()];
}

/** One finding per group of a guest profile (`libvirt-<uuid>`); other profiles' groups are left out. */
export function mapDenials(groups: readonly DenialGroup[], guests: ReadonlyMap<string, GuestFacts>): Finding[] {
  const out: Finding[] = [];
  for (const g of groups) {
    const uuid = guestUuidOf(g.record.profile);
    if (uuid === undefined) continue;
    out.push(explain(g, uuid, guests));
  }
  return out;
}

function explain(g: DenialGroup, uuid: string, guests: ReadonlyMap<string, GuestFacts>): Finding {
  const r = g.record;
  const facts = guests.get(uuid);
  const base = { ...g, uuid, ...(facts !== undefined ? { guest: facts.name } : {}), elements: [] as string[], others: [] as string[] };
  const profileFile = `/etc/apparmor.d/libvirt/libvirt-${uuid}`;
  if (facts === undefined) {
    return {
      ...base,
      class: "unknown-guest",
      explanation: `no domain definition, state record or kept profile names ${uuid}: it cannot be mapped to a guest`,
      fix: "none known here; if the guest is transient and runs, `virsh dumpxml` it and read `virt-aa-hook explain` of that XML",
    };
  }
  const name = visible(facts.name);
  const path = r.name === undefined ? undefined : r.name.toString("utf8");
  const shown = r.name === undefined ? "" : visible(r.name);
  const asked = r.requested ?? r.denied ?? "";
  // No element of the XML makes QEMU's profile run a program (`x`) or hold a capability: those
  // rules are the template's (TEMPLATE.qemu and its abstractions).
  if (path === undefined || asked === "" || !path.startsWith("/") || asked.includes("x")) {
    const what = r.capname !== undefined ? `capability ${r.capname}` : r.name !== undefined ? `${visible(r.operation)} of ${shown}` : `operation ${visible(r.operation)}`;
    return {
      ...base,
      class: "template",
      explanation: `${what} is nothing an element of the XML asks for: the profile's template decides it (TEMPLATE.qemu and its abstractions)`,
      fix: `to allow it for ${name} alone, add a rule to its profile ${profileFile} (the admin's file: never overwritten)`,
    };
  }
  if (facts.rules === undefined) {
    if (facts.xmlRefusal !== undefined) {
      return {
        ...base,
        class: "xml-refused",
        explanation: `${name}'s XML is refused by the policy now: ${visible(facts.xmlRefusal)}`,
        fix: "correct the XML as that says (`virt-aa-hook explain` of it shows the same); the hook refuses the guest's start until then",
      };
    }
    return {
      ...base,
      class: "no-xml",
      explanation: `${name} is neither defined nor running: no XML to say which element asks for ${shown}`,
      fix: `define ${name} again, or read \`virt-aa-hook explain\` of its XML`,
    };
  }
  const covering = facts.rules.filter((rule) => covers(rule, path));
  const elements = unique(covering.map((rule) => rule.source));
  const granted = orderPerms(covering.map((rule) => rule.perms).join(""));
  const others: string[] = [];
  for (const other of guests.values()) {
    if (other.uuid === uuid || other.rules === undefined) continue;
    const theirs = unique(other.rules.filter((rule) => covers(rule, path)).map((rule) => rule.source));
    if (theirs.length > 0) others.push(`${visible(other.name)} (${theirs.map(visible).join(", ")})`);
  }
  const found = { ...base, elements, others, ...(covering.length > 0 ? { granted } : {}) };
  const from = facts.xmlFrom === "live" ? "live XML" : "XML";
  const missing = [...asked].filter((p) => !grants(granted, p)).join("");
  if (covering.length > 0 && missing === "") {
    return {
      ...found,
      class: "granted-now",
      explanation: `${name}'s ${from} now grants "${granted}" via ${elements.map(visible).join(", ")}: the denial came from an earlier profile`,
      fix: `none if it does not recur (the XML changed since, or a hotplug, media change or block job reached the profile later); if it does, \`virt-aa-hook sync ${name}\` (seclabel/wrapper) or restart the guest`,
    };
  }
  if (covering.length > 0) {
    return {
      ...found,
      class: "partial",
      explanation: `the profile grants "${granted}" via ${elements.map(visible).join(", ")}, but not "${missing}"`,
      fix: partialFix(covering, name, shown, missing, profileFile),
    };
  }
  const also = others.length > 0 ? `; another guest's XML asks for it: ${others.join(", ")}` : "";
  const refusal = facts.judge(path, asked.replace(/x/g, ""));
  if (refusal !== undefined) {
    return {
      ...found,
      class: "refused",
      explanation: `nothing in ${name}'s ${from} asks for ${shown}, and the policy refuses ${shown}: ${visible(refusal)}${also}`,
      fix: `none: the policy gives it to no element, <metadata> entry or grant; if the guest needs it, change what the refusal names`,
    };
  }
  const write = /[wa]/.test(asked);
  const shareHint = others.length > 0 ? ` (another guest's file: both disks <shareable/> if either writes it; docs/threat-model.md)` : "";
  return {
    ...found,
    class: "not-asked",
    explanation: `nothing in ${name}'s ${from} asks for ${shown}${also}`,
    fix:
      `if ${name} should open it: name it in the element that uses it (e.g. a <disk> with <source ${path.startsWith("/dev/") ? "dev" : "file"}='${shown}'/>)${shareHint}, ` +
      `or pre-authorise it in the domain's <metadata>: <vah:allow path="${shown}" access="${write ? "rw" : "r"}"/> (docs/metadata.md), ` +
      `or for a running guest in seclabel/wrapper mode: virt-aa-hook grant ${name} ${shown}${write ? "" : " --read-only"} (docs/runtime-grants.md); ` +
      `if it should not, nothing: the profile did its job`,
  };
}

/**
 * What to change when rules cover the path with too few permissions, by the elements they come
 * from. The policy's merge (policy/merge.ts) leaves origins behind, so the element is read from
 * the rule's source, whose first word the rule family sets (never the XML): "disk vda",
 * "disk vda backing 1", "loader", "metadata allow 2", the runtime grants' sources.
 */
function partialFix(covering: readonly Rule[], name: string, path: string, missing: string, profileFile: string): string {
  const sources = covering.flatMap((rule) => rule.source.split(", "));
  if (sources.some((s) => /^disk \S+ backing \d/.test(s))) {
    return `it is a backing layer, read-only by design; a block job that writes into it (blockcommit) needs write access first: in helper mode libvirt asks for it, in seclabel/wrapper mode run virt-aa-hook grant ${name} ${path} before the job (docs/runtime-grants.md)`;
  }
  if (sources.some((s) => s.startsWith("disk "))) {
    return `if ${name} should write it, remove <readonly/> from that <disk>; for a running guest in seclabel/wrapper mode: virt-aa-hook grant ${name} ${path} (docs/runtime-grants.md)`;
  }
  if (sources.some((s) => /^(?:loader|kernel|initrd|dtb)\b/.test(s))) {
    return `a <loader>, kernel or initrd is read-only by design (QEMU writes only the <nvram>); if ${name}'s QEMU must write it all the same, add that rule to its profile ${profileFile} (the admin's file: never overwritten)`;
  }
  if (sources.some((s) => s.startsWith("metadata allow"))) return `set access="rw" on its <vah:allow> in the domain's <metadata> (docs/metadata.md)`;
  if (sources.some((s) => s === ADMIN_SOURCE)) return `virt-aa-hook revoke ${name} ${path}, then virt-aa-hook grant ${name} ${path} without --read-only`;
  return `the element needs no "${missing}" as virt-aa-hook reads it; to allow it for ${name} alone, add a rule to its profile ${profileFile} (the admin's file: never overwritten)`;
}

/** Does `rule` match the (canonical) path the kernel logged? A directory is logged with a trailing "/". */
export function covers(rule: Rule, path: string): boolean {
  const p = rule.path;
  const below = path.startsWith(p.endsWith("/") ? p : `${p}/`) && path.length > p.length + 1;
  switch (rule.suffix) {
    case "":
      return path === p;
    case "/":
      return path === `${p}/` || path === p;
    case "/**":
      return below;
    case "{,/**}":
      return path === p || path === `${p}/` || below;
    case "/*":
      return below && !path.slice(p.length + 1).replace(/\/$/, "").includes("/");
  }
}

/** Does a rule's `perms` grant the kernel's permission letter `p`? (`w` covers append.) */
function grants(perms: string, p: string): boolean {
  return perms.includes(p) || (p === "a" && perms.includes("w"));
}

function orderPerms(perms: string): string {
  const order = "rwalkmx";
  return [...new Set(perms)].sort((a, b) => order.indexOf(a) - order.indexOf(b)).join("");
}

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}

/** The path as JSON carries it: escaped like the text, and the raw bytes in hex when escaping changed them (else null). */
export function jsonPath(name: Buffer | undefined): { path: string | null; rawPath: string | null } {
  if (name === undefined) return { path: null, rawPath: null };
  return { path: visible(name), rawPath: isPlain(name) ? null : name.toString("hex") };
}
