import { PathError } from "../errors.js";
import type { HostFs } from "../hostfs.js";
import type { Hostdev } from "../domain/model.js";
import type { OriginRule } from "../ir.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { absolute } from "./absolute.js";
import { listDirectory, readAttribute } from "../host/sysfs.js";
import { formatPciAddress, iommufdRules, mdevVfioRules, pciVfioRules } from "./vfio.js";

/**
 * `<hostdev>` devices: PCI and mdev through VFIO, USB device nodes, SCSI generic nodes,
 * vhost-scsi, and `mode='capabilities'` block/char devices.
 *
 * libvirt opens some of these itself and hands QEMU the descriptor, but AppArmor revalidates
 * inherited and passed descriptors against the new profile, so QEMU's profile must still allow
 * the path.
 */
export const hostdevRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.hostdevs.flatMap((dev) => hostdevRulesFor(ctx.fs, dev));

/** `<disk type='nvme'>`: QEMU drives the NVMe controller through VFIO, like a PCI hostdev. */
export const nvmeDiskRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.disks
    .filter((disk) => disk.type === "nvme")
    .flatMap((disk) => {
      const element = `disk ${disk.target ?? "?"}`;
      if (disk.nvmeAddress === undefined) throw new PathError(element, "NVMe disk without a PCI address");
      const source = `${element} nvme ${formatPciAddress(disk.nvmeAddress)}`;
      return pciVfioRules(ctx.fs, disk.nvmeAddress, source, "nvme");
    });

function hostdevRulesFor(fs: HostFs, dev: Hostdev): OriginRule[] {
  switch (dev.type) {
    case "pci": {
      // Only VFIO exists for QEMU today; the legacy "kvm" and "xen" backends need no files of ours
      // (libvirt refuses to start them), so they get nothing rather than a guess.
      if (dev.driver !== undefined && dev.driver !== "vfio") return [];
      const source = `hostdev pci ${formatPciAddress(dev)}`;
      const vfio = pciVfioRules(fs, dev, source, "hostdev-pci");
      return dev.iommufd === true ? [...vfio, ...iommufdRules(fs, dev, source, "hostdev-pci")] : vfio;
    }
    case "mdev":
      return mdevVfioRules(fs, dev.uuid, `hostdev mdev ${dev.uuid.toLowerCase()}`);
    case "usb":
      return [usbRule(fs, dev)];
    case "scsi":
      return scsiRules(fs, dev);
    case "scsi_host":
      // vhost-scsi: libvirt opens /dev/vhost-scsi and passes the descriptor.
      return [ruleOf("hostdev-scsi-host")("/dev/vhost-scsi", "rw", "hostdev scsi_host")];
    case "caps":
      return capsRules(dev);
  }
}

// ---- USB ---------------------------------------------------------------------------------------

type UsbHostdev = Extract<Hostdev, { type: "usb" }>;

/** `/dev/bus/usb/BBB/DDD`, from the XML address or, failing that, a vendor/product scan of sysfs. */
function usbRule(fs: HostFs, dev: UsbHostdev): OriginRule {
  const { bus, device } =
    dev.bus !== undefined && dev.device !== undefined ? { bus: dev.bus, device: dev.device } : findUsbByVendor(fs, dev);
  const node = `${pad3(bus, "bus")}/${pad3(device, "device")}`;
  return ruleOf("hostdev-usb")(`/dev/bus/usb/${node}`, "rw", `hostdev usb ${node}`);
}

function pad3(n: number, what: string): string {
  if (!Number.isInteger(n) || n < 0 || n > 999) throw new PathError(`hostdev usb ${what} ${n}`, `invalid USB ${what} number`);
  return String(n).padStart(3, "0");
}

/**
 * Like libvirt's virUSBDeviceSearch: every `/sys/bus/usb/devices/*` entry (interfaces, which
 * carry a ':', skipped) whose idVendor/idProduct match; exactly one match is required, as libvirt
 * refuses to guess between identical devices.
 */
function findUsbByVendor(fs: HostFs, dev: UsbHostdev): { bus: number; device: number } {
  if (dev.vendor === undefined || dev.product === undefined) {
    throw new PathError("hostdev usb", "USB hostdev needs either a bus/device address or a vendor and product");
  }
  const vendor = parseUsbId(dev.vendor, "vendor");
  const product = parseUsbId(dev.product, "product");
  const wanted = `${hex4(vendor)}:${hex4(product)}`;

  const matches: { bus: number; device: number }[] = [];
  const devices = fs.layout.sysfsUsbDevices;
  for (const entry of listDirectory(fs, devices) ?? []) {
    if (entry.includes(":")) continue;
    const dir = `${devices}/${entry}`;
    const found = `${readAttribute(fs, `${dir}/idVendor`)}:${readAttribute(fs, `${dir}/idProduct`)}`.toLowerCase();
    if (found !== wanted) continue;
    const bus = decimal(readAttribute(fs, `${dir}/busnum`));
    const device = decimal(readAttribute(fs, `${dir}/devnum`));
    if (bus === undefined || device === undefined) continue;
    matches.push({ bus, device });
  }
  if (matches.length === 0) throw new PathError(devices, `no USB device ${wanted} found`);
  if (matches.length > 1) {
    throw new PathError(devices, `${matches.length} USB devices ${wanted} found: give <address bus= device=> to pick one`);
  }
  return matches[0]!;
}

/** USB IDs as libvirt reads them (strtol base 0: `0x1d6b`, octal `0...`, decimal), 16 bits. */
function parseUsbId(text: string, what: string): number {
  let n: number;
  if (/^0x[0-9a-f]+$/i.test(text)) n = parseInt(text.slice(2), 16);
  else if (/^0[0-7]*$/.test(text)) n = parseInt(text, 8);
  else if (/^[1-9][0-9]*$/.test(text)) n = parseInt(text, 10);
  else n = NaN;
  if (!(n >= 0 && n <= 0xffff)) throw new PathError(`hostdev usb ${what} ${text}`, `invalid USB ${what} id`);
  return n;
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, "0");
}

function decimal(text: string | undefined): number | undefined {
  return text !== undefined && /^[0-9]{1,3}$/.test(text) ? Number(text) : undefined;
}

// ---- SCSI --------------------------------------------------------------------------------------

type ScsiHostdev = Extract<Hostdev, { type: "scsi" }>;

/** A local SCSI LUN is reached through its generic node `/dev/sgN`; iSCSI goes over the network. */
function scsiRules(fs: HostFs, dev: ScsiHostdev): OriginRule[] {
  if (dev.protocol === "iscsi") return [];
  const host = /^scsi_host([0-9]+)$/.exec(dev.adapter ?? "")?.[1];
  const { bus, target, unit } = dev;
  if (host === undefined || !isIndex(bus) || !isIndex(target) || !isIndex(unit)) {
    throw new PathError(`hostdev scsi ${dev.adapter ?? "?"}`, "SCSI hostdev needs adapter scsi_hostN and bus, target, unit");
  }
  const lun = `${Number(host)}:${bus}:${target}:${unit}`;
  const dir = `${fs.layout.sysfsScsiDevices}/${lun}`;
  if (listDirectory(fs, dir) === undefined) throw new PathError(dir, "SCSI device not found");
  // libvirt takes the single entry of scsi_generic/ (virSCSIDeviceGetSgName).
  const sg = listDirectory(fs, `${dir}/scsi_generic`)?.find((e) => /^sg[0-9]+$/.test(e));
  if (sg === undefined) throw new PathError(dir, "no SCSI generic device: is the sg module loaded?");
  return [ruleOf("hostdev-scsi")(`/dev/${sg}`, "rw", `hostdev scsi ${lun}`)];
}

function isIndex(n: number | undefined): n is number {
  return n !== undefined && Number.isInteger(n) && n >= 0;
}

// ---- mode='capabilities' -----------------------------------------------------------------------

type CapsHostdev = Extract<Hostdev, { type: "caps" }>;

function capsRules(dev: CapsHostdev): OriginRule[] {
  switch (dev.capsType) {
    case "storage":
      if (dev.block === undefined) throw new PathError("hostdev storage", "missing <source><block>");
      return [ruleOf("hostdev-storage")(absolute(dev.block), "rw", "hostdev storage")];
    case "misc":
      if (dev.char === undefined) throw new PathError("hostdev misc", "missing <source><char>");
      return [ruleOf("hostdev-misc")(absolute(dev.char), "rw", "hostdev misc")];
    default:
      // "net" moves a host interface into the guest's namespace (containers only): no file.
      return [];
  }
}
