/**
 * What the network hook reads from its stdin, `<hookData><network>…</network><networkport>…
 * </networkport></hookData>` (libvirt docs/hooks.rst, formatnetworkport.rst): the port's UUID, its
 * owner domain's UUID and name, and how the port is plugged. Read with the one XML reader
 * (src/xml/reader.ts); anything else in the document is ignored.
 */
import { canonicalUuid } from "../names.js";
import { scanXml, XmlError, type XmlNode } from "../xml/reader.js";

export interface NetworkPort {
  /** The port's UUID (canonical form). */
  port: string;
  /** The owner domain's UUID (canonical form). */
  owner: string;
  /** The owner's name, as the port XML says (for messages only). */
  ownerName: string | undefined;
  /** `<plug type=…>`: network (libvirt's bridge), bridge, direct (macvtap), hostdev-pci; undefined without a plug. */
  plug: string | undefined;
}

/** The port in a hook's stdin, or a reason why there is none to act on. */
export function readPort(xml: string): NetworkPort | { none: string } {
  let roots: XmlNode[];
  try {
    roots = scanXml(xml).roots;
  } catch (err) {
    if (err instanceof XmlError) return { none: `unreadable hook data: ${err.reason}` };
    throw err;
  }
  const top = roots.length === 1 ? roots[0] : undefined;
  if (top === undefined || top.name !== "hookData") return { none: "no <hookData> document" };
  const ports = top.childrenNamed("networkport");
  if (ports.length !== 1) return { none: `${ports.length} <networkport> elements` };
  const p = ports[0]!;
  const port = canonicalUuid(only(p, "uuid")?.text()?.trim() ?? "");
  if (port === undefined) return { none: "the port has no valid <uuid>" };
  const owner = only(p, "owner");
  const ownerUuid = owner === undefined ? undefined : canonicalUuid(only(owner, "uuid")?.text()?.trim() ?? "");
  if (ownerUuid === undefined) return { none: "the port has no owner with a valid <uuid>" };
  const name = owner === undefined ? undefined : only(owner, "name")?.text();
  return { port, owner: ownerUuid, ownerName: name, plug: only(p, "plug")?.attribute("type") };
}

function only(node: XmlNode, name: string): XmlNode | undefined {
  const found = node.childrenNamed(name);
  return found.length === 1 ? found[0] : undefined;
}
