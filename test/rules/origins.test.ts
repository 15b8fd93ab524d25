/**
 * The origin every rule family gives its rules: the kind of element the policy judges a path
 * against (src/policy/provenance.ts). Set by the family, never by XML text; PCI hostdevs, NVMe
 * disks and TPM passthrough are bound to the device they resolved.
 */
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deriveRules } from "../../src/rules/index.js";
import type { OriginRule } from "../../src/ir.js";
import { baseDomain, fileDisk, ruleContext, tempRoot, writeHostFile } from "./fixtures.js";
import { canMknod, charDevice, fakeDrmGpu, fakePciDevice, link } from "./hosttree.js";

let root: string;
let cleanup: () => void;
beforeEach(() => {
  ({ root, cleanup } = tempRoot());
});
afterEach(() => cleanup());

const origins = (rules: OriginRule[]) => rules.map((r) => [r.source, r.origin.device === undefined ? r.origin.kind : `${r.origin.kind} ${r.origin.device}`]);

describe("every family's rules carry the origin of the element that asked for them", () => {
  it("one domain with an element of every kind", () => {
    fakePciDevice(root, "0000:03:00.0", 17);
    fakePciDevice(root, "0000:01:00.0", 5);
    writeHostFile(root, "/sys/class/misc/tpm0/device/cancel", "");
    writeHostFile(root, "/sys/bus/mdev/devices/c2177883-f1bb-47f0-914d-32a22e3a8804/x", "");
    const domain = baseDomain({
      launchSecurity: "sev",
      os: { loader: { path: "/usr/share/OVMF/OVMF_CODE.fd", readonly: true }, kernel: "/var/lib/libvirt/boot/vmlinuz" },
      devices: {
        disks: [fileDisk({ path: "/var/lib/libvirt/images/a.img" }), { type: "nvme", device: "disk", readonly: false, shareable: false, target: "vdn", nvmeAddress: { domain: 0, bus: 1, slot: 0, function: 0 } }],
        filesystems: [{ type: "mount", source: "/srv/share", target: "share", readonly: false }],
        chardevs: [
          { source: "serial 0", type: "file", path: "/srv/serial.log", logFile: "/srv/serial0.log" },
          { source: "serial 1", type: "dev", path: "/dev/ttyS0" },
          { source: "serial 2", type: "pipe", path: "/srv/pipe" },
          { source: "channel c", type: "unix", path: "/srv/c.sock" },
        ],
        graphics: [{ type: "vnc", sockets: ["/srv/vnc.sock"], glEnabled: false }],
        inputs: [{ type: "evdev", dev: "/dev/input/event3" }],
        interfaces: [
          { type: "vdpa", vdpaDev: "/dev/vhost-vdpa-0" },
          { type: "direct", targetDev: "macvtap0" },
          { type: "user", backendType: "passt", alias: "net2" },
        ],
        dbusDisplays: [{ p2p: false }],
        pstores: [{ backend: "acpi-erst", path: "/srv/pstore.raw" }],
        smartcards: [{ mode: "host" }],
        rngs: [{ backend: "random" }],
        shmems: [{ name: "shm0", hasServer: false }],
        memoryDevices: [{ model: "nvdimm", path: "/dev/dax0.0" }, { model: "sgx-epc" }],
        tpms: [{ backend: "passthrough" }, { backend: "external", socket: "/srv/swtpm.sock" }, { backend: "emulator" }],
        vsocks: [{}],
        hostdevs: [
          { type: "pci", domain: 0, bus: 3, slot: 0, function: 0 },
          { type: "mdev", uuid: "c2177883-f1bb-47f0-914d-32a22e3a8804" },
          { type: "usb", bus: 1, device: 5 },
          { type: "scsi_host" },
          { type: "caps", capsType: "storage", block: "/dev/sdc" },
          { type: "caps", capsType: "misc", char: "/dev/input/event4" },
        ],
      },
    });
    // A macvtap link with ifindex 23: its tap node is bound to the interface's rule.
    writeHostFile(root, "/sys/class/net/macvtap0/ifindex", "23\n");
    fs.mkdirSync(`${root}/sys/class/net/macvtap0/macvtap/tap23`, { recursive: true });
    // mdev needs an iommu_group link; give it the PCI device's group.
    fs.symlinkSync("../../../../kernel/iommu_groups/17", `${root}/sys/bus/mdev/devices/c2177883-f1bb-47f0-914d-32a22e3a8804/iommu_group`);
    const PCI = "0000:03:00.0";
    const NVME = "0000:01:00.0";
    const pciFiles = (source: string, kind: string) =>
      ["config", "device", "reset", "resource", "resource0", "resource2_wc", "rom", "vendor"].map((): [string, string] => [source, kind]);
    expect(origins(deriveRules(ruleContext(domain, root, 64, 'stdio_handler = "file"')))).toEqual([
      ["disk vda", "disk"],
      ["filesystem share", "filesystem"],
      ["loader", "firmware"],
      ["kernel", "firmware"],
      ["serial 0", "chardev-file"],
      ["serial 0 log", "chardev-file"],
      ["serial 1", "chardev-dev"],
      ["serial 2", "chardev-file"],
      ["serial 2", "chardev-file"],
      ["serial 2", "chardev-file"],
      ["channel c", "chardev-socket"],
      [`disk vdn nvme ${NVME}`, `nvme ${NVME}`],
      [`disk vdn nvme ${NVME}`, `nvme ${NVME}`],
      ...pciFiles(`disk vdn nvme ${NVME}`, `nvme ${NVME}`),
      ["graphics vnc socket", "graphics"],
      ["graphics dbus 0", "graphics"],
      ["input evdev", "input"],
      ["interface 0 vdpa", "net"],
      ["interface 1 macvtap macvtap0", "net /dev/tap23"],
      ["interface 2 passt", "net"],
      ["vsock", "vsock"],
      ["rng 0 random", "rng"],
      ["shmem shm0", "shmem"],
      ["memory 0 nvdimm", "memory"],
      ["memory 1 sgx-epc", "sgx"],
      ["memory 1 sgx-epc", "sgx"],
      ["pstore 0 acpi-erst", "pstore"],
      ["smartcard 0 database", "smartcard"],
      ["smartcard 0 database", "smartcard"],
      ["tpm passthrough device", "tpm-passthrough tpm0"],
      ["tpm passthrough cancel", "tpm-passthrough tpm0"],
      ["tpm external socket", "tpm-socket"],
      ["tpm emulator socket", "tpm-emulator"],
      ["tpm emulator state", "tpm-emulator"],
      ["tpm emulator state", "tpm-emulator"],
      ["tpm emulator log", "tpm-emulator"],
      ["tpm emulator pid", "tpm-emulator"],
      ["launchSecurity sev", "launch-security"],
      [`hostdev pci ${PCI}`, `hostdev-pci ${PCI}`],
      [`hostdev pci ${PCI}`, `hostdev-pci ${PCI}`],
      ...pciFiles(`hostdev pci ${PCI}`, `hostdev-pci ${PCI}`),
      ["hostdev mdev c2177883-f1bb-47f0-914d-32a22e3a8804", "hostdev-mdev"],
      ["hostdev mdev c2177883-f1bb-47f0-914d-32a22e3a8804", "hostdev-mdev"],
      ["hostdev usb 001/005", "hostdev-usb"],
      ["hostdev scsi_host", "hostdev-scsi-host"],
      ["hostdev storage", "hostdev-storage"],
      ["hostdev misc", "hostdev-misc"],
      ["log", "runtime"],
      ["pidfile", "runtime"],
      ["private dir", "runtime"],
      ["channel dir", "runtime"],
    ]);
  });

  it.skipIf(!canMknod)("GL: the node is the element's; the render path's files are gl, sysfs bound to the GPU found", () => {
    const gpu = fakeDrmGpu(root, "0000:00:02.0", [128]);
    writeHostFile(root, "/usr/share/glvnd/egl_vendor.d/50_mesa.json", "{}");
    charDevice(root, "/dev/nvidiactl", 195, 255);
    link(root, `${gpu}/driver`, "../../../bus/pci/drivers/nvidia"); // an NVIDIA GPU: only then NVIDIA's nodes
    const domain = baseDomain({
      devices: {
        graphics: [
          { type: "egl-headless", sockets: [], glEnabled: true, glRendernode: "/dev/dri/renderD128" },
          { type: "sdl", sockets: [], glEnabled: false, xauth: "/home/alice/.Xauthority" },
        ],
        videos: [{ model: "virtio", accel3d: true, vhostUser: false, blob: true }],
      },
    });
    const sysfs = (n: number): [string, string][] => Array.from({ length: n }, () => ["gl renderD128 sysfs", `gl ${gpu}`]);
    expect(origins(deriveRules(ruleContext(domain, root))).filter(([source]) => /^(?:graphics|video|gl) /.test(source!))).toEqual([
      ["graphics egl-headless rendernode", "graphics"],
      ["graphics sdl xauth", "xauth"],
      ["video 0 blob", "graphics"],
      ["gl dri", "gl"],
      ...sysfs(8),
      ["gl config", "gl"],
      ["gl config", "gl"],
      ["gl nvidia", "gl"],
      ["gl nvidia", "gl"],
      ["gl nvidia", "gl"],
    ]);
  });
});
