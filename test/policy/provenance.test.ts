import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostFs } from "../../src/hostfs.js";
import { Layout } from "../../src/layout.js";
import { HostFacts, refusal, type PathFacts, type PolicyInput } from "../../src/policy/index.js";
import { noRuntimeOwnership, type OriginKind, type Rule } from "../../src/ir.js";
import { runtimeOwnership } from "../../src/rules/ownership.js";
import { baseDomain, tempRoot } from "../rules/fixtures.js";
import { canMknod, plantHost } from "./fakehost.js";
import { defaultQemuConf } from "../../src/host/qemu-conf.js";

const layout = new Layout("/");
/** vm1, id 7: short name 7-vm1. */
const vm1 = baseDomain({ name: "vm1", id: 7 });
vm1.os.nvram = { path: "/var/lib/libvirt/qemu/nvram/vm1_VARS.fd" };
const own = runtimeOwnership(vm1, layout, defaultQemuConf(layout));
const input: PolicyInput = { ownership: own, host: { hugetlbfsMounts: ["/dev/hugepages"] }, layout };
const missing: PathFacts = { type: "missing", swap: false, blockUse: [] };

const r = (path: string, kind: OriginKind | undefined, opts: { perms?: string; suffix?: Rule["suffix"]; device?: string; source?: string } = {}): Rule => ({
  path,
  perms: opts.perms ?? "rw",
  suffix: opts.suffix ?? "",
  source: opts.source ?? "el",
  ...(kind === undefined ? {} : { origin: opts.device === undefined ? { kind } : { kind, device: opts.device } }),
});
const judge = (rule: Rule, facts: PathFacts = missing, inp: PolicyInput = input) => refusal(rule, facts, inp);

const PCI3 = "/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0";

describe("sysfs: only the device the element resolved", () => {
  it("grants a PCI hostdev or NVMe disk the assignment files of its own device only", () => {
    for (const kind of ["hostdev-pci", "nvme"] as const) {
      for (const f of ["config", "resource0", "resource2_wc", "rom", "reset", "vendor", "device"]) {
        expect(judge(r(`${PCI3}/${f}`, kind, { device: "0000:03:00.0" }))).toBeUndefined();
      }
      expect(judge(r("/sys/bus/pci/devices/0000:03:00.0/config", kind, { device: "0000:03:00.0" }))).toBeUndefined();
    }
  });

  it("refuses another device's files, files assignment never uses, a parent bridge's, and recursion", () => {
    const sysfs = "sysfs files of a host device are granted only to the <hostdev> (or <tpm> passthrough) that assigns that very device";
    expect(judge(r(`${PCI3}/config`, "hostdev-pci", { device: "0000:04:00.0" }))).toContain(sysfs);
    expect(judge(r(`${PCI3}/remove`, "hostdev-pci", { device: "0000:03:00.0" }))).toContain(sysfs);
    expect(judge(r(`${PCI3}/driver_override`, "hostdev-pci", { device: "0000:03:00.0" }))).toContain(sysfs);
    expect(judge(r("/sys/devices/pci0000:00/0000:00:02.0/config", "hostdev-pci", { device: "0000:03:00.0" }))).toContain(sysfs);
    expect(judge(r(PCI3, "hostdev-pci", { device: "0000:03:00.0", suffix: "/**" }))).toContain(sysfs);
    expect(judge(r("/sys/devices/pci0000:00", "hostdev-pci", { device: "0000:03:00.0", suffix: "/**" }))).toBe("el: restricted location /sys is never granted to guests");
    expect(judge(r(`${PCI3}/config`, "disk"))).toBe(`el: ${sysfs}, not to a <disk>; assign the device with a <hostdev> instead`);
    expect(judge(r(`${PCI3}/config`, undefined))).toBe(`el: ${sysfs}, not to this element; assign the device with a <hostdev> instead`);
    expect(judge(r("/sys/kernel/security/apparmor/.replace", "hostdev-pci", { device: "0000:03:00.0" }))).toBe("el: restricted location /sys is never granted to guests");
  });

  it("grants a TPM passthrough its cancel file, nobody else", () => {
    expect(judge(r("/sys/devices/pnp0/00:05/tpm/tpm0/device/cancel", "tpm-passthrough", { device: "tpm0" }))).toBeUndefined();
    expect(judge(r("/sys/devices/pnp0/00:05/cancel", "tpm-passthrough", { device: "tpm0" }))).toBeUndefined();
    expect(judge(r("/sys/devices/pnp0/00:05/cancel", "chardev-file"))).toContain("sysfs files of a host device are granted only to");
  });
});

describe("device nodes: an allow-list per element kind", () => {
  it.each([
    ["/dev/ttyS0", "chardev-dev"],
    ["/dev/ttyUSB3", "chardev-dev"],
    ["/dev/parport0", "chardev-dev"],
    ["/dev/null", "chardev-file"],
    ["/dev/input/event3", "input"],
    ["/dev/dri/renderD128", "graphics"],
    ["/dev/vhost-net", "net"],
    ["/dev/net/tun", "net"],
    ["/dev/vhost-vdpa-0", "net"],
    ["/dev/vhost-vsock", "vsock"],
    ["/dev/hwrng", "rng"],
    ["/dev/sev", "launch-security"],
    ["/dev/tpm0", "tpm-passthrough"],
    ["/dev/vfio/17", "hostdev-pci"],
    ["/dev/vfio/vfio", "nvme"],
    ["/dev/vfio/5", "hostdev-mdev"],
    ["/dev/bus/usb/001/005", "hostdev-usb"],
    ["/dev/sg2", "hostdev-scsi"],
    ["/dev/vhost-scsi", "hostdev-scsi-host"],
    ["/dev/dax0.0", "memory"],
    ["/dev/sdc", "disk"],
    ["/dev/nvme0n1p2", "hostdev-storage"],
    ["/dev/dm-3", "disk"],
    ["/dev/mapper/vg-lv", "disk"],
    ["/dev/pmem0", "memory"],
  ] as const)("grants %s to a %s element", (p, kind) => {
    expect(judge(r(p, kind))).toBeUndefined();
  });

  it.each([
    ["/dev/pts/3", "chardev-dev", "host terminals"],
    ["/dev/ptmx", "chardev-dev", "host terminals"],
    ["/dev/tty", "chardev-file", "host terminals"],
    ["/dev/tty1", "hostdev-misc", "host terminals"],
    ["/dev/vcsa1", "chardev-dev", "host terminals"],
    ["/dev/console", "disk", "host terminals"],
    ["/dev/hvc0", "chardev-dev", "host terminals"],
    ["/dev/vfio/17", "chardev-dev", "VFIO devices are granted only to the <hostdev> or <disk type='nvme'> whose device is in that IOMMU group, not to a chardev of type='dev'"],
    ["/dev/vfio/17", "input", "VFIO devices are granted only"],
    ["/dev/ttyS0", "chardev-file", "/dev/ttyS0 is not a device node a file or pipe chardev or log may use (allowed: /dev/null)"],
    ["/dev/ttyS0", "chardev-socket", "/dev/ttyS0 is not a device node a unix socket chardev may use (it may use none)"],
    ["/dev/sdb", "chardev-dev", "/dev/sdb is not a device node a chardev of type='dev' may use"],
    ["/dev/uinput", "input", "/dev/uinput is not a device node a passthrough <input> may use (allowed: /dev/input/event<N>)"],
    ["/dev/input/event3", "disk", "/dev/input/event3 is not a device node a <disk> may use (allowed: block devices)"],
    ["/dev/kvm", "firmware", "/dev/kvm is not a device node a firmware or boot file may use (it may use none)"],
    ["/dev/ttyS0", undefined, "/dev/ttyS0 is not a device node this element may use (it may use none)"],
  ] as const)("refuses %s to a %s element", (p, kind, why) => {
    expect(judge(r(p, kind))).toContain(why);
  });

  it("an existing node must have the type its name promises; character devices outside /dev are refused", () => {
    expect(judge(r("/dev/ttyS0", "chardev-dev"), { ...missing, type: "block" })).toBe(
      "el: /dev/ttyS0 should be a character device but is a block device; name the device node itself",
    );
    expect(judge(r("/dev/sdc", "disk"), { ...missing, type: "char" })).toBe("el: /dev/sdc should be a block device but is a character device; name the device node itself");
    expect(judge(r("/dev/sdc", "disk"), { ...missing, type: "block" })).toBeUndefined();
    expect(judge(r("/srv/tty", "disk"), { ...missing, type: "char" })).toBe("el: character device nodes outside /dev are never granted; name the node in /dev");
  });

  it("block devices: only disk-like elements, never one the host uses", () => {
    const used: PathFacts = { type: "block", swap: false, blockUse: ["sdb1 is mounted on /srv/data"] };
    expect(judge(r("/dev/sdb", "disk"), used)).toBe("el: block device in use by the host: sdb1 is mounted on /srv/data; give the guest a device the host does not use");
    expect(judge(r("/srv/blk", "disk"), { ...missing, type: "block" })).toBeUndefined();
    expect(judge(r("/srv/blk", "chardev-file"), { ...missing, type: "block" })).toBe(
      "el: block devices are granted only to a <disk>, a storage <hostdev>, a <filesystem> or an nvdimm, not to a file or pipe chardev or log",
    );
    expect(judge(r("/swapfile", "disk"), { ...missing, type: "file", swap: true })).toBe(
      "el: active swap area (listed in /proc/swaps): it holds host memory; never give it to a guest",
    );
  });

  it("/dev/shm objects only for a <shmem>", () => {
    expect(judge(r("/dev/shm/ivshmem0", "shmem"))).toBeUndefined();
    expect(judge(r("/dev/shm/pulse-shm-1", "disk"))).toBe("el: /dev/shm holds the shared memory of other host processes; only a <shmem> may name an object there; use another directory");
  });
});

describe("libvirt-managed runtime paths: only this guest's own", () => {
  it.each([
    ["/var/lib/libvirt/qemu/domain-7-vm1", "{,/**}"],
    ["/var/lib/libvirt/qemu/domain-7-vm1/monitor.sock", ""],
    ["/var/lib/libvirt/qemu/channel/target/domain-7-vm1", "{,/**}"],
    ["/var/lib/libvirt/qemu/ram/7-vm1", "{,/**}"],
    ["/run/libvirt/qemu/vm1.pid", ""],
    ["/run/libvirt/qemu/swtpm/7-vm1-swtpm.sock", ""],
    ["/run/libvirt/qemu/dbus/7-vm1-dbus.sock", ""],
    [`/var/lib/libvirt/swtpm/${own.ownTrees[0]!.split("/").pop()}/tpm2`, "/**"],
    ["/var/log/swtpm/libvirt/qemu/vm1-swtpm.log", ""],
    ["/dev/hugepages/libvirt/qemu/7-vm1", "{,/**}"],
    ["/var/lib/libvirt/qemu/nvram/vm1_VARS.fd", ""],
    ["/var/log/libvirt/qemu/vm1.log", ""],
    ["/var/log/libvirt/qemu/vm1-serial0.log", ""],
  ] as const)("grants %s%s", (p, suffix) => {
    expect(judge(r(p, "runtime", { suffix }))).toBeUndefined();
  });

  it.each([
    ["/var/lib/libvirt/qemu/domain-3-other/monitor.sock", "", "/var/lib/libvirt/qemu"],
    ["/var/lib/libvirt/qemu/domain-17-vm1/monitor.sock", "", "/var/lib/libvirt/qemu"],
    ["/var/lib/libvirt/qemu/domain-7-vm10", "{,/**}", "/var/lib/libvirt/qemu"],
    ["/var/lib/libvirt/qemu/save/other.save", "", "/var/lib/libvirt/qemu"],
    ["/var/lib/libvirt/qemu/channel/target/vm1.org.qemu.guest_agent.0", "", "/var/lib/libvirt/qemu"],
    ["/run/libvirt/qemu/vm1.xml", "", "/run/libvirt"],
    ["/run/libvirt/qemu/other.pid", "", "/run/libvirt"],
    ["/run/libvirt/qemu/swtpm/17-vm1-swtpm.sock", "", "/run/libvirt"],
    ["/run/libvirt/qemu/swtpm/7-vm1-x/deeper", "", "/run/libvirt"],
    ["/run/libvirt/virtqemud-sock", "", "/run/libvirt"],
    ["/var/log/swtpm/libvirt/qemu/other-swtpm.log", "", "/var/log/swtpm/libvirt/qemu"],
    ["/dev/hugepages/libvirt/qemu/3-other", "{,/**}", "/dev/hugepages"],
    ["/dev/hugepages/rtemap_0", "", "/dev/hugepages"],
    // NVRAM: only the file this guest's XML names, never the shared directory (review finding #2).
    ["/var/lib/libvirt/qemu/nvram/other_VARS.fd", "", "/var/lib/libvirt/qemu"],
    ["/var/lib/libvirt/qemu/nvram/vm1_VARS.fd.bak", "", "/var/lib/libvirt/qemu"],
    ["/var/lib/libvirt/qemu/nvram", "{,/**}", "/var/lib/libvirt/qemu"],
    ["/var/lib/libvirt/qemu/nvram/sub", "{,/**}", "/var/lib/libvirt/qemu"],
    ["/var/lib/libvirt/qemu", "{,/**}", "/var/lib/libvirt/qemu"],
    // libvirt's logs: only this guest's own (review finding #5).
    ["/var/log/libvirt/qemu/other.log", "", "/var/log/libvirt"],
    ["/var/log/libvirt/qemu/vm10.log", "", "/var/log/libvirt"],
    ["/var/log/libvirt/qemu/vm1-x/deeper.log", "", "/var/log/libvirt"],
    ["/var/log/libvirt/libvirtd.log", "", "/var/log/libvirt"],
    ["/var/log/libvirt/qemu", "{,/**}", "/var/log/libvirt"],
    ["/var/log/libvirt/qemu/vm1-dir", "{,/**}", "/var/log/libvirt"],
  ] as const)("refuses %s%s", (p, suffix, root) => {
    const why = judge(r(p, "chardev-socket", { suffix }));
    if (suffix === "") {
      expect(why).toBe(`el: ${root} holds libvirt's runtime state for every guest and for libvirt itself; only this guest's own entries (named after its id, name and UUID) are granted; name a path outside ${root}`);
    } else {
      expect(why).toBe(`el: recursive access would include ${root}, libvirt's runtime state for other guests and for itself; share a directory of its own instead`);
    }
  });

  it("trees above the NVRAM and log directories are refused too (by the first thing they would reach)", () => {
    expect(judge(r("/var/lib/libvirt", "metadata", { suffix: "{,/**}" }), { ...missing, type: "dir" })).toContain("el: recursive access would include ");
    expect(judge(r("/var/log", "filesystem", { suffix: "{,/**}" }), { ...missing, type: "dir" })).toContain("el: recursive access would include ");
    // Control: a tree of the guest's own elsewhere.
    expect(judge(r("/srv/vm1", "metadata", { suffix: "{,/**}" }), { ...missing, type: "dir" })).toBeUndefined();
  });

  it("a guest whose XML names no NVRAM owns none: its old default file is another guest's too", () => {
    const noNvram: PolicyInput = { ...input, ownership: runtimeOwnership(baseDomain({ name: "vm1", id: 7 }), layout, defaultQemuConf(layout)) };
    expect(judge(r("/var/lib/libvirt/qemu/nvram/vm1_VARS.fd", "chardev-file"), missing, noNvram)).toContain("/var/lib/libvirt/qemu holds libvirt's runtime state");
    expect(judge(r("/var/lib/libvirt/qemu/nvram/vm1_VARS.fd", "chardev-file"), missing, input)).toBeUndefined();
  });

  it("without an id (stopped/release XML) or without ownership (the pre-read check) nothing id-based is the guest's", () => {
    const stopped: PolicyInput = { ...input, ownership: runtimeOwnership(baseDomain({ name: "vm1", id: undefined }), layout, defaultQemuConf(layout)) };
    expect(judge(r("/run/libvirt/qemu/vm1.pid", "runtime"), missing, stopped)).toBeUndefined();
    expect(judge(r("/var/lib/libvirt/qemu/domain-7-vm1", "runtime", { suffix: "{,/**}" }), missing, stopped)).toContain("recursive access would include /var/lib/libvirt/qemu");
    const stranger: PolicyInput = { ownership: noRuntimeOwnership(layout), host: { hugetlbfsMounts: [] }, layout };
    expect(judge(r("/run/libvirt/qemu/vm1.pid", "runtime"), missing, stranger)).toContain("/run/libvirt holds libvirt's runtime state");
  });

  it("recursive grants over device trees and /dev/shm are refused", () => {
    expect(judge(r("/dev/input", "filesystem", { suffix: "{,/**}" }))).toBe("el: recursive access would include the device nodes below /dev/input; share a directory of its own instead");
    expect(judge(r("/dev/shm", "filesystem", { suffix: "{,/**}" }))).toBe("el: recursive access would include /dev/shm, the shared memory of other host processes; share a directory of its own instead");
    expect(judge(r("/srv/share", "filesystem", { suffix: "{,/**}" }))).toBeUndefined();
  });
});

describe.skipIf(!canMknod)("HostFacts: what the host says, read through the root", () => {
  let root: string;
  let cleanup: () => void;
  beforeEach(() => {
    ({ root, cleanup } = tempRoot());
    plantHost(root);
  });
  afterEach(() => cleanup());
  const facts = () => new HostFacts(new HostFs(new Layout(root)), new Layout(root));

  it("names every way the host uses a block device, and nothing for a free one", () => {
    const f = facts();
    expect(f.about("/dev/sdb")).toEqual({ type: "block", swap: false, blockUse: ["sdb1 is mounted on /srv/data"] });
    expect(f.about("/dev/sdb1")).toEqual({ type: "block", swap: false, blockUse: ["sdb1 is mounted on /srv/data"] });
    expect(f.about("/dev/sdd")).toEqual({ type: "block", swap: true, blockUse: ["sdd is active swap"] });
    expect(f.about("/dev/sde").blockUse).toEqual(["sde1 is held by dm-0 (device-mapper, LVM, md or bcache)"]);
    expect(f.about("/dev/dm-0").blockUse).toEqual(["dm-0 is mounted on /"]);
    expect(f.about("/dev/sdf").blockUse).toEqual(["sdf is mounted on /srv/btr"]);
    expect(f.about("/dev/sdc")).toEqual({ type: "block", swap: false, blockUse: [] });
    expect(f.about("/dev/dm-1")).toEqual({ type: "block", swap: false, blockUse: [] });
    expect(f.about("/swapfile")).toEqual({ type: "file", swap: true, blockUse: [] });
    expect(f.about("/dev/ttyS0")).toEqual({ type: "char", swap: false, blockUse: [] });
    expect(f.about("/dev/sg1")).toEqual({ type: "char", swap: false, blockUse: ["sg1 is disk sdb: sdb1 is mounted on /srv/data"] });
    expect(f.about("/dev/sg2")).toEqual({ type: "char", swap: false, blockUse: [] });
    expect(f.about("/nowhere")).toEqual({ type: "missing", swap: false, blockUse: [] });
    expect(f.view()).toEqual({ hugetlbfsMounts: ["/dev/hugepages"], firmwareLoaders: [] });
  });

  it("a partition of a disk device-mapper holds whole (multipath) is in use", () => {
    fs.mkdirSync(path.join(root, "/sys/devices/virtual/block/sdc/holders/dm-5"), { recursive: true });
    expect(facts().about("/dev/sdc1").blockUse).toEqual(["its disk sdc is held by dm-5"]);
  });

  it("fails closed when sysfs, mountinfo or swaps cannot tell", () => {
    execFileSync("/usr/bin/mknod", [path.join(root, "/dev/sdz"), "b", "65", "144"]);
    expect(facts().about("/dev/sdz").blockUse).toEqual([
      "the host's sysfs does not know it (/sys/dev/block/65:144 is missing), so whether it is in use cannot be told",
    ]);
    fs.rmSync(path.join(root, "/proc/self/mountinfo"));
    fs.rmSync(path.join(root, "/proc/swaps"));
    expect(facts().about("/dev/sdc").blockUse).toEqual([
      "/proc/self/mountinfo cannot be read, so whether it is mounted cannot be told",
      "/proc/swaps cannot be read, so whether it is swap cannot be told",
    ]);
    // A regular file needs no block facts: an unreadable /proc/swaps only means no swap file is known.
    expect(facts().about("/var/lib/libvirt/images/vm1.img")).toEqual({ type: "file", swap: false, blockUse: [] });
  });

  it("reads mountinfo and sysfs only when a rule is a block device", () => {
    // A directory in its place makes any read of mountinfo fail (root reads mode-000 files anyway).
    fs.rmSync(path.join(root, "/proc/self/mountinfo"));
    fs.mkdirSync(path.join(root, "/proc/self/mountinfo"));
    expect(facts().about("/var/lib/libvirt/images/vm1.img").blockUse).toEqual([]);
    expect(facts().about("/dev/sdc").blockUse).toEqual(["/proc/self/mountinfo cannot be read, so whether it is mounted cannot be told"]);
  });
});
