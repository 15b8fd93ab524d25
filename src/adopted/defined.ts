/**
 * What libvirt has on disk about a domain, read as files under the layout (the hook never calls
 * libvirt): its persistent definition `<name>.xml` in Layout.libvirtDomainsDir, and whether it
 * runs (Layout.libvirtStatusXml, the status XML libvirt keeps while the domain is active, or a
 * pid file naming a live process).
 */
import fs from "node:fs";
import { attachFacts, hasOurStaticLabel } from "../attach/index.js";
import { runningPid } from "../host/qemu-process.js";
import { canonicalUuid, isFileNameComponent } from "../names.js";
import type { Layout } from "../layout.js";

/** libvirt's own limit for a domain XML is far below this; a bigger file is not a domain. */
const MAX_XML_BYTES = 16 * 1024 * 1024;

export interface DefinedDomain {
  name: string;
  uuid: string;
  /** Host path of the definition. */
  file: string;
  xml: string;
  /** Carries virt-aa-hook's static AppArmor label `libvirt-<uuid>` (adopted for attach = "seclabel"). */
  ourLabel: boolean;
}

/** A regular file of at most MAX_XML_BYTES, as text; undefined otherwise (also read by audit/guests.ts). */
export function readSmall(file: string): string | undefined {
  try {
    const st = fs.statSync(file);
    if (!st.isFile() || st.size > MAX_XML_BYTES) return undefined;
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

/** Does this XML carry our static label for its own UUID? Unreadable XML does not. */
export function carriesOurLabel(xml: string): { uuid: string; name: string } | undefined {
  try {
    const facts = attachFacts(xml);
    return hasOurStaticLabel(facts) ? { uuid: facts.uuid, name: facts.name } : undefined;
  } catch {
    return undefined;
  }
}

/** The persistent definition of `name`, or undefined when there is none (or it cannot be read). */
export function definedDomain(layout: Layout, name: string): DefinedDomain | undefined {
  if (!isFileNameComponent(name)) return undefined;
  const file = `${layout.libvirtDomainsDir}/${name}.xml`;
  const xml = readSmall(layout.host(file));
  if (xml === undefined) return undefined;
  let facts: ReturnType<typeof attachFacts>;
  try {
    facts = attachFacts(xml);
  } catch {
    return undefined;
  }
  const ourLabel = hasOurStaticLabel(facts);
  return { name: facts.name, uuid: facts.uuid, file, xml, ourLabel };
}

/** Every persistent definition, by file name, sorted. Files that do not parse are left out. */
export function listDefined(layout: Layout): DefinedDomain[] {
  let names: string[];
  try {
    names = fs.readdirSync(layout.host(layout.libvirtDomainsDir));
  } catch {
    return [];
  }
  return names
    .filter((f) => f.endsWith(".xml") && !f.startsWith("."))
    .sort()
    .map((f) => definedDomain(layout, f.slice(0, -4)))
    .filter((d): d is DefinedDomain => d !== undefined);
}

/** Is `name` (with this UUID) defined with our static label? Then libvirt verifies its profile is loaded. */
export function definedWithOurLabel(layout: Layout, name: string, uuid: string): boolean {
  const d = definedDomain(layout, name);
  return d !== undefined && d.uuid === uuid && d.ourLabel;
}

/** libvirt's status XML for an active domain: `<domstatus>` around the live `<domain>`. */
export function statusUuid(layout: Layout, name: string): string | undefined {
  if (!isFileNameComponent(name)) return undefined;
  const xml = readSmall(layout.host(layout.libvirtStatusXml(name)));
  // A regex, not the XML reader: only the first <uuid> inside <domain> is wanted from a file libvirt
  // wrote; anything that is not a UUID libvirt accepts counts as none.
  const m = xml === undefined ? null : /<domain[\s>][\s\S]*?<uuid>\s*([^<\s]{1,64})\s*<\/uuid>/.exec(xml);
  return m ? canonicalUuid(m[1]!) : undefined;
}

/** Is the domain `name` with this UUID active, as far as libvirt's run directory says? */
export function isActive(layout: Layout, name: string, uuid: string): boolean {
  const su = statusUuid(layout, name);
  if (su !== undefined) return su === uuid;
  return runningPid(layout, name) !== undefined;
}
