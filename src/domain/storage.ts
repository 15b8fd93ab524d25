/** Disks and the storage sources they share with backing layers, data stores and NVRAM. */
import type { BackingLayer, Disk } from "./model.js";
import type { XmlElement } from "./tree.js";
import { defined, label, path, pciAddress, requireToken, token } from "./fields.js";

/** The local path a `<source>` names for a storage type; network/volume/nvme sources have none. */
function sourcePath(source: XmlElement | undefined, type: string): string | undefined {
  switch (type) {
    case "file":
      return path(source, "file");
    case "block":
    case "vhostvdpa":
      return path(source, "dev");
    case "dir":
      return path(source, "dir");
    case "vhostuser":
      return path(source, "path");
    default:
      return undefined;
  }
}

/** `<format type=.../>` of a backing layer, data store or NVRAM source. */
function formatOf(el: XmlElement): string | undefined {
  const format = el.child("format");
  return format && token(format, "type");
}

/** A storage source element (backing layer, data store, 8.5+ NVRAM) of a given type. */
export function storageLayer(el: XmlElement, type: string): Omit<BackingLayer, "type"> & { backingStore?: BackingLayer[] } {
  const source = el.child("source");
  return defined({
    path: sourcePath(source, type),
    format: formatOf(el),
    dataStore: source && dataStore(source),
    backingStore: backingChain(el),
  });
}

/**
 * The `<backingStore>` nesting as a list, outermost first. Absent → undefined (the XML says
 * nothing, e.g. prepare XML); `<backingStore/>` → the chain ends there. Iterative, so a deep
 * chain costs no stack.
 */
function backingChain(el: XmlElement): BackingLayer[] | undefined {
  return backingChainWithEnd(el)?.layers;
}

/** The chain and whether it ends in an empty `<backingStore/>` (complete) or just stops (open). */
function backingChainWithEnd(el: XmlElement): { layers: BackingLayer[]; open: boolean } | undefined {
  let next = el.child("backingStore");
  if (!next) return undefined;
  const chain: BackingLayer[] = [];
  while (next && !next.isEmpty()) {
    // libvirt itself refuses a backing layer without a type.
    const type = requireToken(next, "type");
    const source = next.child("source");
    chain.push(defined({ type, path: sourcePath(source, type), format: formatOf(next), dataStore: source && dataStore(source) }));
    next = next.child("backingStore");
  }
  return { layers: chain, open: next === undefined };
}

/** `<source><dataStore type=...>`: a qcow2 image's external data file (libvirt 10.10+). */
function dataStore(source: XmlElement): BackingLayer | undefined {
  const el = source.child("dataStore");
  if (!el) return undefined;
  const type = requireToken(el, "type");
  return defined({ type, path: sourcePath(el.child("source"), type), format: formatOf(el) });
}

export function readDisk(el: XmlElement): Disk {
  // Defaults as libvirt applies them when the attributes are missing.
  const type = token(el, "type") ?? "file";
  const device = token(el, "device") ?? "disk";
  const source = el.child("source");
  const driver = el.child("driver");
  const target = el.child("target");
  const reservations = source?.child("reservations")?.child("source");
  const chain = backingChainWithEnd(el);
  return defined({
    type,
    device,
    path: sourcePath(source, type),
    format: driver && token(driver, "type"),
    readonly: el.has("readonly"),
    shareable: el.has("shareable"),
    target: target && label(target, "dev"),
    backingStore: chain?.layers,
    backingOpen: chain?.open === true && chain.layers.length > 0 ? true : undefined,
    dataStore: source && dataStore(source),
    reservationsSocket: path(reservations, "path"),
    volume:
      type === "volume" && source
        ? defined({
            pool: label(source, "pool") ?? source.fail('missing attribute "pool"'),
            volume: label(source, "volume") ?? source.fail('missing attribute "volume"'),
            // iSCSI volumes: mode='direct' hands QEMU the iSCSI LUN itself (no host file).
            mode: token(source, "mode"),
          })
        : undefined,
    nvmeAddress: type === "nvme" && source ? pciAddress(source.one("address")) : undefined,
  });
}
