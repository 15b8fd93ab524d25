import { PathError } from "../errors.js";
import type { HostFs } from "../hostfs.js";
import type { PciAddress } from "../domain/model.js";
import type { OriginRule } from "../ir.js";
import { ruleOf, type RuleConstructor } from "./context.js";
import { linkTargetName, listDirectory } from "../host/sysfs.js";
import { isCanonicalUuid } from "../names.js";

/**
 * VFIO device access: the container device plus the ONE IOMMU group a device belongs to.
 *
 * libvirt's own generator grants `/dev/vfio/[0-9]*`, i.e. every group on the host, so a guest
 * given one GPU could open any other vfio-bound device. We read the device's `iommu_group` link
 * and grant exactly that group.
 */

/** `%04x:%02x:%02x.%x` after range checks; anything else in the XML is rejected, not formatted. */
export function formatPciAddress(addr: PciAddress): string {
  const ok =
    inRange(addr.domain, 0xffff) && inRange(addr.bus, 0xff) && inRange(addr.slot, 0x1f) && inRange(addr.function, 0x7);
  if (!ok) {
    const shown = [addr.domain, addr.bus, addr.slot, addr.function].map(String).join(",");
    throw new PathError(`pci address (${shown})`, "invalid PCI address");
  }
  const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");
  return `${hex(addr.domain, 4)}:${hex(addr.bus, 2)}:${hex(addr.slot, 2)}.${hex(addr.function, 1)}`;
}

function inRange(n: number, max: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= max;
}

/**
 * The sysfs files of a PCI device that device assignment opens (libvirt's
 * virPCIDeviceFileIterate list): config, resource*, rom, vendor, device, reset.
 */
function isAssignmentFile(name: string): boolean {
  return ["config", "rom", "vendor", "device", "reset"].includes(name) || name.startsWith("resource");
}

/**
 * Rules for one VFIO-assigned PCI device: the container, its exact group device, and the device's
 * sysfs files that exist (named through `/sys/bus/pci/devices/<addr>/`; policy canonicalises them
 * to `/sys/devices/pci.../<addr>/<file>`).
 */
export function pciVfioRules(fs: HostFs, addr: PciAddress, source: string, kind: "hostdev-pci" | "nvme"): OriginRule[] {
  const name = formatPciAddress(addr);
  // Bound to the device it resolved: the policy grants this origin only that device's sysfs files.
  const rule = ruleOf(kind, name);
  const dir = `${fs.layout.sysfsPciDevices}/${name}`;
  const entries = listDirectory(fs, dir);
  if (entries === undefined) throw new PathError(dir, "PCI device not found");

  const group = iommuGroupOf(fs, dir);
  const sysfsFiles = entries
    .filter(isAssignmentFile)
    // Only regular attribute files: a stray directory or link must not widen the grant.
    .filter((entry) => fs.lstat(`${dir}/${entry}`)?.isFile() === true)
    .map((entry) => rule(`${dir}/${entry}`, "rw", source));

  return [...groupRules(fs, group, rule, source), ...sysfsFiles];
}

/**
 * iommufd (`<hostdev><driver iommufd='yes'/>`, libvirt 11.x): QEMU gets the device through the
 * iommufd interface instead of a VFIO container: `/dev/iommu` and the device's own VFIO character
 * device `/dev/vfio/devices/vfio<N>`, which libvirt opens and passes as descriptors
 * (`-object iommufd,fd=`, `vfio-pci,fd=`), revalidated by AppArmor at the exec. N comes from
 * sysfs (`<device>/vfio-dev/vfio<N>`, the kernel's vfio-dev class entry), never from the XML, so
 * only the assigned device's node is granted. libvirt's virt-aa-helper.c grants
 * `/dev/vfio/devices/vfio[0-9]*` (every device's) with `rwm`; `rw` is enough: AppArmor asks for
 * `m` only for PROT_EXEC mappings (security/apparmor/lsm.c common_mmap), and QEMU maps BARs
 * read/write. The container and group rules of pciVfioRules stay (libvirt grants them too).
 */
export function iommufdRules(fs: HostFs, addr: PciAddress, source: string, kind: "hostdev-pci" | "nvme"): OriginRule[] {
  const name = formatPciAddress(addr);
  const rule = ruleOf(kind, name);
  const dir = `${fs.layout.sysfsPciDevices}/${name}/vfio-dev`;
  const cdevs = (listDirectory(fs, dir) ?? []).filter((e) => /^vfio[0-9]+$/.test(e));
  if (cdevs.length !== 1) {
    throw new PathError(dir, cdevs.length === 0 ? "no VFIO device node: is the device bound to vfio-pci on a kernel with VFIO cdev support?" : `several VFIO device nodes (${cdevs.join(", ")})`);
  }
  return [rule("/dev/iommu", "rw", source), rule(`${fs.layout.vfioDir}/devices/${cdevs[0]}`, "rw", source)];
}

/** Rules for a mediated device (vfio-pci/ccw/ap mdev): the container and the mdev's group. */
export function mdevVfioRules(fs: HostFs, uuid: string, source: string): OriginRule[] {
  const rule = ruleOf("hostdev-mdev");
  // sysfs names mdevs by the lower-case UUID; a malformed one must not become a path.
  if (!isCanonicalUuid(uuid.toLowerCase())) {
    throw new PathError(uuid, "invalid mediated device UUID");
  }
  const dir = `${fs.layout.sysfsMdevDevices}/${uuid.toLowerCase()}`;
  if (listDirectory(fs, dir) === undefined) throw new PathError(dir, "mediated device not found");
  const group = iommuGroupOf(fs, dir);
  return groupRules(fs, group, rule, source);
}

/** The VFIO container and the node of one IOMMU group. */
function groupRules(fs: HostFs, group: string, rule: RuleConstructor, source: string): OriginRule[] {
  const vfio = fs.layout.vfioDir;
  return [rule(`${vfio}/vfio`, "rw", source), rule(`${vfio}/${group}`, "rw", source)];
}

/** Group number from `<device dir>/iommu_group`, a link to `.../kernel/iommu_groups/<N>`. */
function iommuGroupOf(fs: HostFs, deviceDir: string): string {
  const group = linkTargetName(fs, `${deviceDir}/iommu_group`);
  if (group === undefined) throw new PathError(deviceDir, "no IOMMU group: is the device bound to vfio-pci?");
  // The group name becomes a /dev path: only a plain number is a group.
  if (!/^[0-9]+$/.test(group)) throw new PathError(`${deviceDir}/iommu_group`, `unexpected IOMMU group name "${group}"`);
  return group;
}
