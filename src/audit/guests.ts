/**
 * What the host says about the guests whose profiles appear in the denials, read as files under
 * the layout (no virsh, no libvirt): a guest is found by its UUID in libvirt's live status XML
 * (`/run/libvirt/qemu/<name>.xml`, while it runs), its persistent definition
 * (`/etc/libvirt/qemu/<name>.xml`, adopted/defined.ts), our state record
 * (`/var/lib/virt-aa-hook/<uuid>.json`) or the record of a kept profile (`kept/<uuid>.json`).
 * The name comes from the first of those that has it; the rules from the XML (live first: it
 * has what was hot-plugged), through the same pipeline as `explain` (pipeline.ts buildProfile),
 * with the runtime grants of the state record.
 */
import fs from "node:fs";
import { listDefined } from "../adopted/defined.js";
import { parseDomain, type Domain } from "../domain/index.js";
import { GuestError, PathError } from "../errors.js";
import { HostFs } from "../hostfs.js";
import { loadQemuConf, type QemuConf } from "../host/qemu-conf.js";
import { noRuntimeOwnership, type RuntimeOwnership } from "../ir.js";
import type { Layout } from "../layout.js";
import { buildProfile } from "../pipeline.js";
import { checkRule, policyContext } from "../policy/index.js";
import { runtimeOwnership } from "../rules/ownership.js";
import { listStates, readKept, type GuestState } from "../store/state.js";
import type { GuestFacts } from "./map.js";

/** libvirt's own XML files are far smaller; a bigger file is not one of them. */
const MAX_XML_BYTES = 16 * 1024 * 1024;

interface Known {
  uuid: string;
  name: string;
  xml?: { text: string; from: "live" | "defined" };
  state?: GuestState;
}

/** Every guest the host has a trace of, by UUID (live XML, definition, state record, kept profile). */
function knownGuests(layout: Layout): Map<string, Known> {
  const known = new Map<string, Known>();
  for (const live of liveDomains(layout)) known.set(live.uuid, { uuid: live.uuid, name: live.name, xml: { text: live.xml, from: "live" } });
  for (const d of listDefined(layout)) {
    if (!known.has(d.uuid)) known.set(d.uuid, { uuid: d.uuid, name: d.name, xml: { text: d.xml, from: "defined" } });
  }
  for (const s of listStates(layout.host(layout.stateDir))) {
    const k = known.get(s.uuid);
    if (k !== undefined) k.state = s;
    else known.set(s.uuid, { uuid: s.uuid, name: s.name, state: s });
  }
  const keptDir = layout.host(`${layout.stateDir}/kept`);
  for (const f of readdirOrEmpty(keptDir)) {
    if (!f.endsWith(".json") || f.startsWith(".")) continue;
    const k = readKept(`${keptDir}/${f}`);
    if (k !== undefined && !known.has(k.uuid)) known.set(k.uuid, { uuid: k.uuid, name: k.name });
  }
  return known;
}

/**
 * The running guests' live `<domain>` from libvirt's status XML (`<domstatus>` around it): from
 * the first `<domain` to the last `</domain>`, so a `<domain>` inside the guest's own metadata
 * cannot end it early. Parsed by the strict domain parser; files that do not parse are left out.
 */
function liveDomains(layout: Layout): { uuid: string; name: string; xml: string }[] {
  const dir = layout.host(layout.libvirtRunDir);
  const out: { uuid: string; name: string; xml: string }[] = [];
  for (const f of readdirOrEmpty(dir).sort()) {
    if (!f.endsWith(".xml") || f.startsWith(".")) continue;
    const text = readSmall(`${dir}/${f}`);
    if (text === undefined) continue;
    const start = text.search(/<domain[\s>]/);
    const end = text.lastIndexOf("</domain>");
    if (start < 0 || end < start) continue;
    const xml = text.slice(start, end + "</domain>".length);
    try {
      const d = parseDomain(xml);
      out.push({ uuid: d.uuid, name: d.name, xml });
    } catch {
      // Not a domain we can read: the guest is then known by its definition or record, if any.
    }
  }
  return out;
}

/** The facts of each guest in `uuids` the host knows, and a name → UUIDs index of every known guest. */
export function guestFacts(layout: Layout, uuids: ReadonlySet<string>): { facts: Map<string, GuestFacts>; byName: Map<string, string[]> } {
  const known = knownGuests(layout);
  const fs_ = new HostFs(layout);
  let qemu: QemuConf | undefined;
  const qemuConf = () => (qemu ??= loadQemuConf(fs_));
  const facts = new Map<string, GuestFacts>();
  const byName = new Map<string, string[]>();
  for (const k of known.values()) byName.set(k.name, [...(byName.get(k.name) ?? []), k.uuid]);
  for (const uuid of uuids) {
    const k = known.get(uuid);
    if (k !== undefined) facts.set(uuid, factsOf(k, layout, fs_, qemuConf));
  }
  // Other guests' rules are compared too (whose XML asks for a path a guest was denied).
  for (const k of known.values()) {
    if (!facts.has(k.uuid) && k.xml !== undefined) facts.set(k.uuid, factsOf(k, layout, fs_, qemuConf));
  }
  return { facts, byName };
}

function factsOf(k: Known, layout: Layout, hostFs: HostFs, qemuConf: () => QemuConf): GuestFacts {
  let domain: Domain | undefined;
  const base = { uuid: k.uuid, name: k.name };
  const judge = (path: string, perms: string) => refusalOf(hostFs, path, perms, ownershipOf(domain, layout, qemuConf));
  if (k.xml === undefined) return { ...base, judge };
  try {
    domain = parseDomain(k.xml.text);
    const built = buildProfile(domain, { layout, qemu: qemuConf(), ...(k.state?.grants !== undefined ? { grants: k.state.grants } : {}) });
    return { ...base, rules: built.rules, xmlFrom: k.xml.from, judge };
  } catch (err) {
    if (err instanceof PathError) return { ...base, xmlFrom: k.xml.from, xmlRefusal: err instanceof GuestError ? `${err.path}: ${err.reason}` : err.message, judge };
    throw err;
  }
}

function ownershipOf(domain: Domain | undefined, layout: Layout, qemuConf: () => QemuConf): RuntimeOwnership {
  return domain === undefined ? noRuntimeOwnership(layout) : runtimeOwnership(domain, layout, qemuConf());
}

/** The label a refusal of ours carries for the rule judged here, stripped from the reason. */
const ASKED = "runtime grant";

/**
 * How the policy would judge `path` if it were asked for now as a runtime grant (origin
 * "granted", what `virt-aa-hook grant` asks: every device class a disk, hostdev, NIC or input may
 * name; docs/runtime-grants.md): its reason when refused, else undefined.
 */
function refusalOf(hostFs: HostFs, path: string, perms: string, ownership: RuntimeOwnership): string | undefined {
  const letters = perms.replace(/[^rwalkm]/g, "") || "r";
  try {
    checkRule(hostFs, { path, suffix: "", perms: letters, source: ASKED, origin: { kind: "granted" } }, policyContext(hostFs, ownership));
    return undefined;
  } catch (err) {
    if (!(err instanceof PathError)) throw err;
    return err.reason.startsWith(`${ASKED}: `) ? err.reason.slice(ASKED.length + 2) : err.reason;
  }
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function readSmall(file: string): string | undefined {
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size > MAX_XML_BYTES) return undefined;
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}
