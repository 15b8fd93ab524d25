/** Host devices handed to the guest: `<hostdev>` and the PCI/USB function of `<interface type='hostdev'>`. */
import type { Hostdev } from "./model.js";
import type { XmlElement } from "./tree.js";
import { cUnsigned, defined, pciAddress, requireToken, textPath, token, uuidAttr, yesNo } from "./fields.js";
import { InvalidValue, preview } from "./fault.js";

export function readHostdev(el: XmlElement): Hostdev {
  const mode = el.attr("mode") ?? "subsystem";
  if (mode === "capabilities") return readCapsHostdev(el);
  if (mode !== "subsystem") el.fail(`unsupported hostdev mode "${preview(mode)}"`);
  const type = requireToken(el, "type");
  const source = el.one("source");
  switch (type) {
    case "usb":
      return readUsb(source);
    case "pci": {
      const driver = el.child("driver");
      return defined({ type: "pci", driver: driver && token(driver, "name"), iommufd: iommufd(driver), ...pciAddress(source.one("address")) });
    }
    case "scsi":
      return readScsi(source);
    case "scsi_host": {
      const raw = source.attr("wwpn");
      return defined({ type: "scsi_host", wwpn: raw === undefined ? undefined : source.convert('attribute "wwpn"', raw, wwpn) });
    }
    case "mdev":
      return defined({ type: "mdev", uuid: uuidAttr(source.one("address"), "uuid"), model: token(el, "model") });
    default:
      // libvirt refuses unknown types at define time, so this XML is newer than we are: say so.
      return el.fail(`unsupported hostdev type "${type}"`);
  }
}

/** USB by vendor/product and/or by bus/device (the address is what maps to /dev/bus/usb/BBB/DDD). */
function readUsb(source: XmlElement): Hostdev {
  const vendor = source.child("vendor");
  const product = source.child("product");
  const address = source.child("address");
  return defined({
    type: "usb" as const,
    vendor: vendor && usbId(vendor),
    product: product && usbId(product),
    // Linux numbers at most 64 buses and 127 devices per bus; 255 leaves room and stays 3 digits.
    bus: address && cUnsigned(address, "bus", 255),
    device: address && cUnsigned(address, "device", 255),
  });
}

function usbId(el: XmlElement): string {
  const raw = el.requireAttr("id");
  cUnsigned(el, "id", 0xffff);
  return raw;
}

function readScsi(source: XmlElement): Hostdev {
  const protocol = token(source, "protocol");
  const adapter = source.child("adapter");
  const address = source.child("address");
  return defined({
    type: "scsi" as const,
    protocol,
    // "scsi_hostN" is the only form libvirt accepts; anything else could steer a sysfs lookup.
    adapter: adapter && adapter.convert('attribute "name"', adapter.requireAttr("name"), scsiHost),
    bus: address && cUnsigned(address, "bus", 0xffffffff),
    target: address && cUnsigned(address, "target", 0xffffffff),
    unit: address && cUnsigned(address, "unit", Number.MAX_SAFE_INTEGER),
  });
}

function scsiHost(raw: string): string {
  if (!/^scsi_host[0-9]{1,9}$/.test(raw)) throw new InvalidValue(`invalid SCSI adapter "${preview(raw)}" (expected scsi_hostN)`);
  return raw;
}

function wwpn(raw: string): string {
  if (!/^naa\.[0-9a-fA-F]{16}$/.test(raw)) throw new InvalidValue(`invalid WWPN "${preview(raw)}" (expected naa. and 16 hex digits)`);
  return raw;
}

/** `<hostdev mode='capabilities' type='storage|misc|net'>`: a block/char device node or a net interface. */
function readCapsHostdev(el: XmlElement): Hostdev {
  const capsType = requireToken(el, "type");
  const source = el.one("source");
  return defined({
    type: "caps" as const,
    capsType,
    block: textPath(source.child("block")),
    char: textPath(source.child("char")),
  });
}

/**
 * `<interface type='hostdev'>` passes a host PCI (SR-IOV VF) or USB device through just like a
 * `<hostdev>`; libvirt lists it among its hostdevs internally, so we do too.
 */
export function readInterfaceHostdev(el: XmlElement): Hostdev | undefined {
  if (el.attr("type") !== "hostdev") return undefined;
  const address = el.child("source")?.child("address");
  if (!address) return undefined;
  const kind = address.attr("type") ?? "pci";
  if (kind === "usb") {
    return defined({ type: "usb" as const, bus: cUnsigned(address, "bus", 255), device: cUnsigned(address, "device", 255) });
  }
  if (kind !== "pci") address.fail(`unsupported address type "${preview(kind)}"`);
  const driver = el.child("driver");
  return defined({ type: "pci" as const, driver: driver && token(driver, "name"), iommufd: iommufd(driver), ...pciAddress(address) });
}

/** `<driver iommufd='yes'/>` (libvirt 11.x, virDomainHostdevSubsysPCIDriverInfo): true, or absent. */
function iommufd(driver: XmlElement | undefined): true | undefined {
  return driver !== undefined && yesNo(driver, "iommufd") ? true : undefined;
}

