/**
 * Fake host device trees under a temporary root, laid out as on a real host: sysfs bus entries
 * are relative symlinks into /sys/devices, and IOMMU groups are links into /sys/kernel.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { writeHostFile } from "./fixtures.js";

/** Creating device nodes needs root; tests that need them are skipped otherwise. */
export const canMknod = process.getuid?.() === 0;

/** A symlink at host path `at` pointing to `target` (kept verbatim, usually relative). */
export function link(root: string, at: string, target: string): void {
  const real = path.join(root, at);
  fs.mkdirSync(path.dirname(real), { recursive: true });
  fs.symlinkSync(target, real);
}

export function mkdir(root: string, hostPath: string): void {
  fs.mkdirSync(path.join(root, hostPath), { recursive: true });
}

/** A character device node (major 226 = DRM) at host path `hostPath`. */
export function charDevice(root: string, hostPath: string, major = 226, minor = 128): void {
  const real = path.join(root, hostPath);
  fs.mkdirSync(path.dirname(real), { recursive: true });
  execFileSync("/usr/bin/mknod", [real, "c", String(major), String(minor)]);
}

/**
 * A PCI device `addr` behind root port `0000:00:02.0`, as the kernel shows it:
 *   /sys/devices/pci0000:00/0000:00:02.0/<addr>/{config,resource,resource0,resource2_wc,rom,
 *       vendor,device,reset,irq,enable,remove,driver_override,power/,msi_irqs/,driver->,subsystem->}
 *   /sys/devices/.../<addr>/iommu_group -> ../../../../kernel/iommu_groups/<group>
 *   /sys/bus/pci/devices/<addr> -> ../../../devices/pci0000:00/0000:00:02.0/<addr>
 * `group` undefined leaves out the iommu_group link (device not bound to vfio / no IOMMU).
 */
export function fakePciDevice(root: string, addr: string, group: number | undefined): string {
  const devDir = `/sys/devices/pci0000:00/0000:00:02.0/${addr}`;
  for (const file of ["config", "resource", "resource0", "resource2_wc", "rom", "vendor", "device", "reset", "irq", "enable", "remove", "driver_override"]) {
    writeHostFile(root, `${devDir}/${file}`, "0x0\n");
  }
  mkdir(root, `${devDir}/power`);
  mkdir(root, `${devDir}/msi_irqs`);
  mkdir(root, "/sys/bus/pci/drivers/vfio-pci");
  link(root, `${devDir}/driver`, "../../../../bus/pci/drivers/vfio-pci");
  link(root, `${devDir}/subsystem`, "../../../../bus/pci");
  if (group !== undefined) {
    mkdir(root, `/sys/kernel/iommu_groups/${group}/devices`);
    link(root, `${devDir}/iommu_group`, `../../../../kernel/iommu_groups/${group}`);
  }
  link(root, `/sys/bus/pci/devices/${addr}`, `../../../devices/pci0000:00/0000:00:02.0/${addr}`);
  return devDir;
}

/** The assignment files of a fakePciDevice, in the order the VFIO rules list them. */
export const PCI_ASSIGNMENT_FILES = ["config", "device", "reset", "resource", "resource0", "resource2_wc", "rom", "vendor"];

/**
 * A USB device `name` (e.g. "1-2") on xHCI `0000:00:14.0`:
 *   /sys/devices/pci0000:00/0000:00:14.0/usb<bus>/<name>/{idVendor,idProduct,busnum,devnum}
 *   /sys/bus/usb/devices/<name> -> ../../../devices/pci0000:00/0000:00:14.0/usb<bus>/<name>
 * plus its interface `<name>:1.0`, which has no idVendor.
 */
export function fakeUsbDevice(root: string, name: string, ids: { vendor: string; product: string; bus: number; dev: number }): void {
  const devDir = `/sys/devices/pci0000:00/0000:00:14.0/usb${ids.bus}/${name}`;
  writeHostFile(root, `${devDir}/idVendor`, `${ids.vendor}\n`);
  writeHostFile(root, `${devDir}/idProduct`, `${ids.product}\n`);
  writeHostFile(root, `${devDir}/busnum`, `${ids.bus}\n`);
  writeHostFile(root, `${devDir}/devnum`, `${ids.dev}\n`);
  writeHostFile(root, `${devDir}/${name}:1.0/bInterfaceClass`, "03\n");
  link(root, `/sys/bus/usb/devices/${name}`, `../../../devices/pci0000:00/0000:00:14.0/usb${ids.bus}/${name}`);
  link(root, `/sys/bus/usb/devices/${name}:1.0`, `../../../devices/pci0000:00/0000:00:14.0/usb${ids.bus}/${name}/${name}:1.0`);
}

/**
 * A DRM GPU at PCI address `addr` (behind `0000:00`), with one DRM minor per entry of `minors`
 * (0..63 → card<N>, 128.. → renderD<N>), as the kernel and udev lay it out:
 *   /sys/devices/pci0000:00/<addr>/{uevent,vendor,device,subsystem_vendor,subsystem_device,revision,config,remove}
 *   /sys/devices/pci0000:00/<addr>/subsystem -> ../../../bus/pci
 *   /sys/devices/pci0000:00/<addr>/drm/<minor>/{uevent,dev}, .../<minor>/device -> ../../../<addr>
 *   /sys/dev/char/226:<m> -> ../../devices/pci0000:00/<addr>/drm/<minor>
 *   /dev/dri/<minor> (character device 226:<m>; needs root)
 * `revision: false` leaves out `revision` (kernels before it existed).
 */
export function fakeDrmGpu(root: string, addr: string, minors: number[], opts: { revision?: boolean } = {}): string {
  const devDir = `/sys/devices/pci0000:00/${addr}`;
  writeHostFile(root, `${devDir}/uevent`, `DRIVER=i915\nPCI_CLASS=30000\nPCI_ID=8086:3E92\nPCI_SLOT_NAME=${addr}\n`);
  for (const [file, value] of [["vendor", "0x8086"], ["device", "0x3e92"], ["subsystem_vendor", "0x1028"], ["subsystem_device", "0x085a"], ["config", "\u0086\u0080"], ["remove", ""]]) {
    writeHostFile(root, `${devDir}/${file}`, `${value}\n`);
  }
  if (opts.revision !== false) writeHostFile(root, `${devDir}/revision`, "0x02\n");
  mkdir(root, "/sys/bus/pci/devices");
  if (!fs.existsSync(path.join(root, devDir, "subsystem"))) link(root, `${devDir}/subsystem`, "../../../bus/pci");
  for (const m of minors) {
    const name = m >= 128 ? `renderD${m}` : `card${m}`;
    const minorDir = `${devDir}/drm/${name}`;
    writeHostFile(root, `${minorDir}/uevent`, `MAJOR=226\nMINOR=${m}\nDEVNAME=dri/${name}\nDEVTYPE=drm_minor\n`);
    writeHostFile(root, `${minorDir}/dev`, `226:${m}\n`);
    link(root, `${minorDir}/device`, `../../../${addr}`);
    link(root, `/sys/dev/char/226:${m}`, `../../devices/pci0000:00/${addr}/drm/${name}`);
    charDevice(root, `/dev/dri/${name}`, 226, m);
  }
  return devDir;
}
