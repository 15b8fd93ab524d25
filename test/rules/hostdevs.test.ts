import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Hostdev } from "../../src/domain/model.js";
import { applyPolicy } from "../../src/policy/index.js";
import { hostdevRules as hostdevRulesWithOrigin, nvmeDiskRules as nvmeDiskRulesWithOrigin } from "../../src/rules/hostdevs.js";
import type { Rule } from "../../src/ir.js";
import { formatPciAddress } from "../../src/rules/vfio.js";
import { baseDomain, expectPathError, fileDisk, ruleContext, tempRoot, writeHostFile, withoutOrigins } from "./fixtures.js";
import { PCI_ASSIGNMENT_FILES, fakePciDevice, fakeUsbDevice, link, mkdir } from "./hosttree.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const hostdevRules = withoutOrigins(hostdevRulesWithOrigin);
const nvmeDiskRules = withoutOrigins(nvmeDiskRulesWithOrigin);

let root: string;
let cleanup: () => void;
beforeEach(() => ({ root, cleanup } = tempRoot()));
afterEach(() => cleanup());

const hostdevs = (...devs: Hostdev[]) => hostdevRules(ruleContext(baseDomain({ devices: { hostdevs: devs } }), root));
const pci = (bus: number, slot = 0, fn = 0): Hostdev => ({ type: "pci", domain: 0, bus, slot, function: fn });
const r = (path: string, perms: string, source: string, suffix: Rule["suffix"] = ""): Rule => ({ path, suffix, perms, source });

/** The rules one VFIO PCI device gets: container, its exact group, its assignment files. */
function vfioRules(addr: string, group: number, source: string): Rule[] {
  return [
    r("/dev/vfio/vfio", "rw", source),
    r(`/dev/vfio/${group}`, "rw", source),
    ...PCI_ASSIGNMENT_FILES.map((f) => r(`/sys/bus/pci/devices/${addr}/${f}`, "rw", source)),
  ];
}

describe("PCI hostdev (VFIO)", () => {
  it("grants the container, the device's exact IOMMU group and its assignment sysfs files", () => {
    fakePciDevice(root, "0000:03:00.0", 17);
    expect(hostdevs(pci(3))).toEqual(vfioRules("0000:03:00.0", 17, "hostdev pci 0000:03:00.0"));
  });

  it("gives two devices in different groups exactly their own groups, never a wildcard", () => {
    fakePciDevice(root, "0000:03:00.0", 17);
    fakePciDevice(root, "0000:04:00.1", 22);
    // A third vfio device on the host, in group 30, that this guest does not get.
    fakePciDevice(root, "0000:05:00.0", 30);
    const rules = hostdevs(pci(3), pci(4, 0, 1));
    expect(rules).toEqual([
      ...vfioRules("0000:03:00.0", 17, "hostdev pci 0000:03:00.0"),
      ...vfioRules("0000:04:00.1", 22, "hostdev pci 0000:04:00.1"),
    ]);
    expect(rules.filter((x) => x.path.startsWith("/dev/vfio/")).map((x) => x.path + x.suffix)).toEqual([
      "/dev/vfio/vfio",
      "/dev/vfio/17",
      "/dev/vfio/vfio",
      "/dev/vfio/22",
    ]);
  });

  it("treats driver='vfio' like the default and leaves other backends without rules", () => {
    fakePciDevice(root, "0000:03:00.0", 17);
    expect(hostdevs({ ...pci(3), driver: "vfio" } as Hostdev)).toEqual(vfioRules("0000:03:00.0", 17, "hostdev pci 0000:03:00.0"));
    expect(hostdevs({ ...pci(3), driver: "kvm" } as Hostdev)).toEqual([]);
  });

  it("formats addresses as lower-case %04x:%02x:%02x.%x", () => {
    expect(formatPciAddress({ domain: 0x10, bus: 0xab, slot: 0x1f, function: 7 })).toBe("0010:ab:1f.7");
  });

  it("survives the policy: sysfs files canonicalise into the PCI device directory", () => {
    fakePciDevice(root, "0000:03:00.0", 17);
    const ctx = ruleContext(baseDomain({ devices: { hostdevs: [pci(3)] } }), root);
    const paths = applyPolicy(ctx.fs, hostdevRulesWithOrigin(ctx)).map((x) => x.path);
    expect(paths).toEqual([
      "/dev/vfio/vfio",
      "/dev/vfio/17",
      ...PCI_ASSIGNMENT_FILES.map((f) => `/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0/${f}`),
    ]);
  });

  it("rejects a device that is not on the host", () => {
    expectPathError(() => hostdevs(pci(3)), "/sys/bus/pci/devices/0000:03:00.0", "hostdev pci 0000:03:00.0: PCI device not found");
  });

  it("rejects a device without an IOMMU group", () => {
    fakePciDevice(root, "0000:03:00.0", undefined);
    expectPathError(
      () => hostdevs(pci(3)),
      "/sys/bus/pci/devices/0000:03:00.0",
      "hostdev pci 0000:03:00.0: no IOMMU group: is the device bound to vfio-pci?",
    );
  });

  it("rejects an IOMMU group link whose name is not a number", () => {
    const devDir = fakePciDevice(root, "0000:03:00.0", undefined);
    link(root, `${devDir}/iommu_group`, "../../../../kernel/iommu_groups/[0-9]*");
    expectPathError(
      () => hostdevs(pci(3)),
      "/sys/bus/pci/devices/0000:03:00.0/iommu_group",
      'hostdev pci 0000:03:00.0: unexpected IOMMU group name "[0-9]*"',
    );
  });

  it("rejects out-of-range address parts instead of formatting them", () => {
    expectPathError(() => hostdevs(pci(0x100)), "pci address (0,256,0,0)", "invalid PCI address");
    expectPathError(() => hostdevs(pci(3, 0x20)), "pci address (0,3,32,0)", "invalid PCI address");
    expectPathError(() => hostdevs(pci(3, 0, 8)), "pci address (0,3,0,8)", "invalid PCI address");
    expectPathError(() => hostdevs({ ...pci(3), domain: -1 } as Hostdev), "pci address (-1,3,0,0)", "invalid PCI address");
    expectPathError(() => hostdevs(pci(1.5)), "pci address (0,1.5,0,0)", "invalid PCI address");
  });
});

describe("NVMe disks", () => {
  it("get the same VFIO rules as a PCI hostdev, named after the disk", () => {
    fakePciDevice(root, "0000:04:00.0", 9);
    const disk = fileDisk({ type: "nvme", target: "vdb", nvmeAddress: { domain: 0, bus: 4, slot: 0, function: 0 } });
    const rules = nvmeDiskRules(ruleContext(baseDomain({ devices: { disks: [fileDisk(), disk] } }), root));
    expect(rules).toEqual(vfioRules("0000:04:00.0", 9, "disk vdb nvme 0000:04:00.0"));
  });

  it("rejects an NVMe disk without an address", () => {
    const disk = fileDisk({ type: "nvme", target: "vdb" });
    expectPathError(
      () => nvmeDiskRules(ruleContext(baseDomain({ devices: { disks: [disk] } }), root)),
      "disk vdb",
      "NVMe disk without a PCI address",
    );
  });
});

describe("mdev hostdev", () => {
  const uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01";
  const mdevDir = `/sys/devices/pci0000:00/0000:00:02.0/${uuid}`;

  it("grants the container and the mdev's own IOMMU group", () => {
    mkdir(root, mdevDir);
    link(root, `${mdevDir}/iommu_group`, "../../../../kernel/iommu_groups/5");
    link(root, `/sys/bus/mdev/devices/${uuid}`, `../../../devices/pci0000:00/0000:00:02.0/${uuid}`);
    expect(hostdevs({ type: "mdev", uuid: uuid.toUpperCase(), model: "vfio-pci" })).toEqual([
      r("/dev/vfio/vfio", "rw", `hostdev mdev ${uuid}`),
      r("/dev/vfio/5", "rw", `hostdev mdev ${uuid}`),
    ]);
  });

  it("rejects a missing mdev, a missing group and a malformed UUID", () => {
    expectPathError(() => hostdevs({ type: "mdev", uuid }), `/sys/bus/mdev/devices/${uuid}`, `hostdev mdev ${uuid}: mediated device not found`);
    mkdir(root, `/sys/bus/mdev/devices/${uuid}`);
    expectPathError(
      () => hostdevs({ type: "mdev", uuid }),
      `/sys/bus/mdev/devices/${uuid}`,
      `hostdev mdev ${uuid}: no IOMMU group: is the device bound to vfio-pci?`,
    );
    expectPathError(() => hostdevs({ type: "mdev", uuid: "../../../x" }), "../../../x", "hostdev mdev ../../../x: invalid mediated device UUID");
  });
});

describe("USB hostdev", () => {
  it("uses the XML bus/device address, zero-padded", () => {
    expect(hostdevs({ type: "usb", bus: 1, device: 4 })).toEqual([r("/dev/bus/usb/001/004", "rw", "hostdev usb 001/004")]);
    expect(hostdevs({ type: "usb", vendor: "0x046d", product: "0xc52b", bus: 12, device: 123 })).toEqual([
      r("/dev/bus/usb/012/123", "rw", "hostdev usb 012/123"),
    ]);
  });

  it("finds bus and device by vendor/product in sysfs", () => {
    fakeUsbDevice(root, "usb1", { vendor: "1d6b", product: "0002", bus: 1, dev: 1 });
    fakeUsbDevice(root, "1-2", { vendor: "046d", product: "c52b", bus: 1, dev: 4 });
    fakeUsbDevice(root, "3-1", { vendor: "046d", product: "c077", bus: 3, dev: 2 });
    expect(hostdevs({ type: "usb", vendor: "0x046D", product: "0xc52b" })).toEqual([
      r("/dev/bus/usb/001/004", "rw", "hostdev usb 001/004"),
    ]);
    expect(hostdevs({ type: "usb", vendor: "0x046d", product: "49271" })).toEqual([
      r("/dev/bus/usb/003/002", "rw", "hostdev usb 003/002"),
    ]);
  });

  it("rejects a vendor/product that is absent or ambiguous", () => {
    fakeUsbDevice(root, "1-2", { vendor: "046d", product: "c52b", bus: 1, dev: 4 });
    expectPathError(
      () => hostdevs({ type: "usb", vendor: "0x1234", product: "0x5678" }),
      "/sys/bus/usb/devices",
      "hostdev usb 1234:5678: no USB device 1234:5678 found",
    );
    fakeUsbDevice(root, "2-1", { vendor: "046d", product: "c52b", bus: 2, dev: 3 });
    expectPathError(
      () => hostdevs({ type: "usb", vendor: "0x046d", product: "0xc52b" }),
      "/sys/bus/usb/devices",
      "hostdev usb 046d:c52b: 2 USB devices 046d:c52b found: give <address bus= device=> to pick one",
    );
  });

  it("rejects incomplete or malformed USB sources", () => {
    expectPathError(
      () => hostdevs({ type: "usb", vendor: "0x046d" }),
      "hostdev usb",
      "USB hostdev needs either a bus/device address or a vendor and product",
    );
    expectPathError(() => hostdevs({ type: "usb", vendor: "0x1ffff", product: "1" }), "hostdev usb vendor 0x1ffff", "invalid USB vendor id");
    expectPathError(() => hostdevs({ type: "usb", vendor: "0x1", product: "12ab" }), "hostdev usb product 12ab", "invalid USB product id");
    expectPathError(() => hostdevs({ type: "usb", bus: 1000, device: 1 }), "hostdev usb bus 1000", "invalid USB bus number");
    expectPathError(() => hostdevs({ type: "usb", bus: 1, device: -1 }), "hostdev usb device -1", "invalid USB device number");
  });
});

describe("SCSI hostdevs", () => {
  const lunDir = "/sys/devices/pci0000:00/0000:00:1f.2/ata4/host3/target3:0:0/3:0:0:0";

  it("grants the LUN's SCSI generic node", () => {
    mkdir(root, `${lunDir}/scsi_generic/sg2`);
    writeHostFile(root, `${lunDir}/scsi_generic/sg2/dev`, "21:2\n");
    link(root, "/sys/bus/scsi/devices/3:0:0:0", `../../../devices/pci0000:00/0000:00:1f.2/ata4/host3/target3:0:0/3:0:0:0`);
    expect(hostdevs({ type: "scsi", adapter: "scsi_host3", bus: 0, target: 0, unit: 0 })).toEqual([
      r("/dev/sg2", "rw", "hostdev scsi 3:0:0:0"),
    ]);
  });

  it("grants nothing for iSCSI, /dev/vhost-scsi for scsi_host", () => {
    expect(hostdevs({ type: "scsi", protocol: "iscsi" })).toEqual([]);
    expect(hostdevs({ type: "scsi_host", wwpn: "naa.5001405df3e54061" })).toEqual([
      r("/dev/vhost-scsi", "rw", "hostdev scsi_host"),
    ]);
  });

  it("rejects a missing LUN, a LUN without sg node, and a malformed adapter", () => {
    const dev: Hostdev = { type: "scsi", adapter: "scsi_host3", bus: 0, target: 0, unit: 0 };
    expectPathError(() => hostdevs(dev), "/sys/bus/scsi/devices/3:0:0:0", "hostdev scsi 3:0:0:0: SCSI device not found");
    mkdir(root, lunDir);
    link(root, "/sys/bus/scsi/devices/3:0:0:0", `../../../devices/pci0000:00/0000:00:1f.2/ata4/host3/target3:0:0/3:0:0:0`);
    expectPathError(() => hostdevs(dev), "/sys/bus/scsi/devices/3:0:0:0", "hostdev scsi 3:0:0:0: no SCSI generic device: is the sg module loaded?");
    expectPathError(
      () => hostdevs({ type: "scsi", adapter: "../host3", bus: 0, target: 0, unit: 0 }),
      "hostdev scsi ../host3",
      "SCSI hostdev needs adapter scsi_hostN and bus, target, unit",
    );
  });
});

describe("capabilities hostdevs", () => {
  it("grants the block or char device, nothing for net", () => {
    expect(
      hostdevs(
        { type: "caps", capsType: "storage", block: "/dev/sdf" },
        { type: "caps", capsType: "misc", char: "/dev/input/event3" },
        { type: "caps", capsType: "net" },
      ),
    ).toEqual([r("/dev/sdf", "rw", "hostdev storage"), r("/dev/input/event3", "rw", "hostdev misc")]);
  });

  it("rejects relative or missing device paths", () => {
    expectPathError(() => hostdevs({ type: "caps", capsType: "storage", block: "dev/sdf" }), "dev/sdf", "hostdev storage: path is not absolute");
    expectPathError(() => hostdevs({ type: "caps", capsType: "misc" }), "hostdev misc", "missing <source><char>");
  });
});
