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
 *   not-asked      nothing in the XML asks for it; an element or `<vah:allow>` could, if the admin decides so
 *
 * Every command printed has its guest name and path as single-quoted shell words, and none is
 * printed for a path a shell or AppArmor would interpret (quote.ts, review19 F3); a path the XML
 * does not ask for gets no command at all (F5): the guest chose it.
 */
import type { Rule } from "../ir.js";
import type { AuditRecord } from "./parse.js";
import { guestUuidOf } from "./parse.js";
import { isPlain, visible } from "./display.js";
import { commandSafe, NO_COMMAND_FOR_PATH, shellWord, xmlAttr } from "./quote.js";
import { ADMIN_SOURCE } from "../grants/admin.js";

export const FINDING_CLASSES = ["unknown-guest", "template", "no-xml", "xml-refused", "granted-now", "partial", "refused", "not-asked"] as const;
export type FindingClass = (typeof FINDING_CLASSES)[number];

/** What is known about one guest, by UUID. */
export interface GuestFacts {
  uuid: string;
  name: string;
  /** Its per-guest profile (Layout.profilePath): the admin's file, where a rule for this guest alone goes. */
  profileFile: string;
  /** The rules its XML gives it now, runtime grants included; absent without an accepted XML. */
  rules?: readonly Rule[];
  /** Where the XML came from: libvirt's live status XML of the running guest, or its definition. */
  xmlFrom?: "live" | "defined";
  /** The policy's refusal of that XML, as the hook would say it. */
  xmlRefusal?: string;
  /** Why its rules could not be built from the XML (a fault of the host, not of the XML). */
  buildError?: string;
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

/**
 * Distinct denials a guest's profile is kept for (review19 F9): a guest chooses its denials'
 * paths, and distinct paths defeat grouping; past this, a new distinct denial of that guest is
 * only counted (`DenialGroups.notShown`). One guest's probing never hides another guest's groups.
 */
export const MAX_GROUPS_PER_GUEST = 1000;

/**
 * Identical denials (same decision, profile, operation, object, masks, command) as one group,
 * added one record at a time (nothing but the groups is held), at most `maxPerGuest` groups per
 * guest profile; records of other profiles are left out.
 */
export class DenialGroups {
  private readonly groups = new Map<string, DenialGroup>();
  private readonly perGuest = new Map<string, number>();
  /** Per guest UUID: denials not kept because the guest had `maxPerGuest` groups already. */
  readonly notShown = new Map<string, number>();

  constructor(private readonly maxPerGuest = MAX_GROUPS_PER_GUEST) {}

  add(r: AuditRecord): void {
    const uuid = guestUuidOf(r.profile);
    if (uuid === undefined) return;
    const key = JSON.stringify([r.decision, r.profile, r.operation, r.name?.toString("hex"), r.requested, r.denied, r.capname, r.comm?.toString("hex")]);
    const g = this.groups.get(key);
    if (g === undefined) {
      const n = this.perGuest.get(uuid) ?? 0;
      if (n >= this.maxPerGuest) {
        this.notShown.set(uuid, (this.notShown.get(uuid) ?? 0) + 1);
        return;
      }
      this.perGuest.set(uuid, n + 1);
      this.groups.set(key, { record: r, count: 1, ...(r.time !== undefined ? { first: r.time, last: r.time } : {}) });
      return;
    }
    g.count++;
    if (r.time !== undefined) {
      g.first = g.first === undefined ? r.time : Math.min(g.first, r.time);
      g.last = g.last === undefined ? r.time : Math.max(g.last, r.time);
    }
  }

  /** The groups in order of their first denial's time (groups without a time last), ties in the order they were read. */
  list(): DenialGroup[] {
    return [...this.groups.values()].sort((a, b) => (a.first ?? Infinity) - (b.first ?? Infinity));
  }
}

/** The groups of `records` (no limit that a handful of records could reach). */
export function groupRecords(records: readonly AuditRecord[]): DenialGroup[] {
  const groups = new DenialGroups(Infinity);
  for (const r of records) groups.add(r);
  return groups.list();
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
  if (facts === undefined) {
    return {
      ...base,
      class: "unknown-guest",
      explanation: `no domain definition, state record or kept profile names ${uuid}: it cannot be mapped to a guest`,
      fix: "none known here; if the guest is transient and runs, `virsh dumpxml` it and read `virt-aa-hook explain` of that XML",
    };
  }
  const name = visible(facts.name);
  const cmd = commandsFor(facts.name, r.name);
  const profileFile = visible(facts.profileFile);
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
    if (facts.buildError !== undefined) {
      return {
        ...base,
        class: "no-xml",
        explanation: `${name}'s rules cannot be built now: ${visible(facts.buildError)}`,
        fix: `correct that, then run denials again; \`virt-aa-hook explain\` of ${name}'s XML says the same`,
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
      fix: `none if it does not recur (the XML changed since, or a hotplug, media change or block job reached the profile later); if it does, ${cmd("sync", false)} (seclabel/wrapper) or restart the guest`,
    };
  }
  if (covering.length > 0) {
    return {
      ...found,
      class: "partial",
      explanation: `the profile grants "${granted}" via ${elements.map(visible).join(", ")}, but not "${missing}"`,
      fix: partialFix(covering, name, cmd, missing, profileFile),
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
  const element =
    r.name !== undefined && isPlain(r.name)
      ? `the element that uses it (e.g. a <disk> with <source ${path.startsWith("/dev/") ? "dev" : "file"}='${xmlAttr(shown)}'/>)${shareHint}, ` +
        `or a <vah:allow path="${xmlAttr(shown)}" access="${write ? "rw" : "r"}"/> in the domain's <metadata> (docs/metadata.md)` +
        (commandSafe(shown) ? "" : ` (the path holds characters a shell or AppArmor would interpret: a QEMU that asks for such a path is not doing what an element explains)`)
      : `the element that uses it, or a <vah:allow> in the domain's <metadata> (docs/metadata.md)${shareHint}; no snippet printed: the path holds bytes shown escaped, which no element explains`;
  // No `grant` command here (review19 F5): the guest chose the path; the admin decides whether an element names it.
  return {
    ...found,
    class: "not-asked",
    explanation: `nothing in ${name}'s ${from} asks for ${shown}${also}`,
    fix:
      `if ${name} should open it, an element of its XML must name it: ${element}; decide that yourself: a guest chooses what its QEMU tries to open, and a misconfigured or compromised one probes paths, so grant nothing you did not put there for it; ` +
      `if it should not, nothing: the profile did its job`,
  };
}

/**
 * `cmd("grant", withPath)`: the ready-to-run command with the guest's name (and the denied path)
 * as single-quoted words, or, where one of them cannot be printed as it is, the command's name and
 * why no command is printed.
 */
type Commands = (sub: "grant" | "revoke" | "sync", withPath: boolean) => string;

function commandsFor(guestName: string, pathBytes: Buffer | undefined): Commands {
  const nameOk = isPlain(Buffer.from(guestName, "utf8"));
  const path = pathBytes === undefined ? undefined : visible(pathBytes);
  return (sub, withPath) => {
    if (!nameOk) return `virt-aa-hook ${sub} (no command printed: the guest's name holds bytes shown escaped)`;
    if (!withPath) return `\`virt-aa-hook ${sub} ${shellWord(guestName)}\``;
    if (path === undefined || !commandSafe(path)) return `virt-aa-hook ${sub} (${NO_COMMAND_FOR_PATH})`;
    return `\`virt-aa-hook ${sub} ${shellWord(guestName)} ${shellWord(path)}\``;
  };
}

/**
 * What to change when rules cover the path with too few permissions, by the elements they come
 * from. The policy's merge (policy/merge.ts) leaves origins behind, so the element is read from
 * the rule's source, whose first word the rule family sets (never the XML): "disk vda",
 * "disk vda backing 1", "loader", "metadata allow 2", the runtime grants' sources.
 */
function partialFix(covering: readonly Rule[], name: string, cmd: Commands, missing: string, profileFile: string): string {
  const sources = covering.flatMap((rule) => rule.source.split(", "));
  if (sources.some((s) => /^disk \S+ backing \d/.test(s))) {
    return `it is a backing layer, read-only by design; a block job that writes into it (blockcommit) needs write access first: in helper mode libvirt asks for it, in seclabel/wrapper mode run ${cmd("grant", true)} before the job (docs/runtime-grants.md)`;
  }
  if (sources.some((s) => s.startsWith("disk "))) {
    return `if ${name} should write it, remove <readonly/> from that <disk>; for a running guest in seclabel/wrapper mode: ${cmd("grant", true)} (docs/runtime-grants.md)`;
  }
  if (sources.some((s) => /^(?:loader|kernel|initrd|dtb)\b/.test(s))) {
    return `a <loader>, kernel or initrd is read-only by design (QEMU writes only the <nvram>); if ${name}'s QEMU must write it all the same, add that rule to its profile ${profileFile} (the admin's file: never overwritten)`;
  }
  if (sources.some((s) => s.startsWith("metadata allow"))) return `set access="rw" on its <vah:allow> in the domain's <metadata> (docs/metadata.md)`;
  if (sources.some((s) => s === ADMIN_SOURCE)) return `${cmd("revoke", true)}, then ${cmd("grant", true)} (without --read-only)`;
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
