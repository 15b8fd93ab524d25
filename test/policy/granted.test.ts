/**
 * Runtime grants (origin kind "granted"): a path a running guest is given by libvirt's helper
 * (`-F`), an admin's `grant` or the network hook is judged like any rule. Each refusal has a
 * control that the same kind grants (so the refusal is the path's, not the kind's).
 */
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { GuestError } from "../../src/errors.js";
import { Layout } from "../../src/layout.js";
import type { OriginKind, Rule, RuntimeGrant } from "../../src/ir.js";
import { refusal, type PathFacts, type PolicyInput } from "../../src/policy/index.js";
import { buildProfile, grantRules } from "../../src/pipeline.js";
import { runtimeOwnership } from "../../src/rules/ownership.js";
import { baseDomain, tempRoot } from "../rules/fixtures.js";
import { canMknod, GUEST_UUID, guestXml, plantHost } from "./fakehost.js";
import { defaultQemuConf } from "../../src/host/qemu-conf.js";

const layout = new Layout("/");
const own = runtimeOwnership(baseDomain({ name: "vm1", id: 7 }), layout, defaultQemuConf(layout));
const input: PolicyInput = { ownership: own, host: { hugetlbfsMounts: ["/dev/hugepages"] }, layout };
const missing: PathFacts = { type: "missing", swap: false, blockUse: [] };
const granted = (p: string, perms = "rwk"): Rule => ({ path: p, suffix: "", perms, source: "admin grant", origin: { kind: "granted" } });
const judge = (rule: Rule, facts: PathFacts = missing) => refusal(rule, facts, input);

describe("runtime grants: device nodes from the union of the hotplug kinds' allow-lists", () => {
  // Every node one of disk, hostdev-usb, hostdev-scsi, VFIO, net, input, chardev-dev may use.
  it.each([
    ["/dev/sdc", "block"],
    ["/dev/dm-1", "block"],
    ["/dev/nvme0n1p2", "block"],
    ["/dev/bus/usb/001/005", "char"],
    ["/dev/sg2", "char"],
    ["/dev/vfio/17", "char"],
    ["/dev/vfio/vfio", "char"],
    ["/dev/net/tun", "char"],
    ["/dev/vhost-net", "char"],
    ["/dev/tap42", "char"],
    ["/dev/vhost-vdpa-0", "char"],
    ["/dev/input/event3", "char"],
    ["/dev/ttyS0", "char"],
    ["/dev/ttyUSB1", "char"],
    ["/dev/null", "char"],
  ] as const)("grants %s", (p, type) => {
    expect(judge(granted(p), { ...missing, type })).toBeUndefined();
  });

  // Nodes other element kinds may use, but no hotplug kind: not widened for grants.
  it.each([
    "/dev/dri/renderD128",
    "/dev/vhost-vsock",
    "/dev/hwrng",
    "/dev/urandom",
    "/dev/sev",
    "/dev/tpm0",
    "/dev/vhost-scsi",
    "/dev/dax0.0",
    "/dev/kvm",
    "/dev/fuse",
    "/dev/vhost-vsock0",
  ])("refuses %s (no hotplug kind uses it)", (p) => {
    expect(judge(granted(p), { ...missing, type: "char" })).toMatch(
      new RegExp(`^admin grant: ${p.replace(/[.]/g, "\\.")} is not a device node a runtime grant may use \\(allowed: .*block devices\\); name a device of that kind or remove the element$`),
    );
  });

  it("refuses host terminals and a node that is not the type its name promises", () => {
    expect(judge(granted("/dev/pts/3"), { ...missing, type: "char" })).toBe(
      "admin grant: host terminals (pseudo-terminals, virtual consoles, the console) are never granted to guests; use <serial type='pty'> for a console, or type='dev' with a serial line such as /dev/ttyS0",
    );
    expect(judge(granted("/dev/tty1"), { ...missing, type: "char" })).toContain("host terminals");
    expect(judge(granted("/dev/mem"), { ...missing, type: "char" })).toBe("admin grant: restricted location /dev/mem is never granted to guests");
    expect(judge(granted("/dev/sdc"), { ...missing, type: "char" })).toBe("admin grant: /dev/sdc should be a block device but is a character device; name the device node itself");
    expect(judge(granted("/dev/net/tun"), { ...missing, type: "file" })).toBe("admin grant: /dev/net/tun should be a character device but is a regular file; name the device node itself");
    // outside /dev: a character device never, a regular file yes
    expect(judge(granted("/srv/tun"), { ...missing, type: "char" })).toBe("admin grant: character device nodes outside /dev are never granted; name the node in /dev");
    expect(judge(granted("/srv/vm/new.qcow2"), { ...missing, type: "file" })).toBeUndefined();
  });

  it("refuses block devices the host uses and swap; grants a free one", () => {
    expect(judge(granted("/dev/sdb"), { type: "block", swap: false, blockUse: ["sdb1 is mounted on /srv/data"] })).toBe(
      "admin grant: block device in use by the host: sdb1 is mounted on /srv/data; give the guest a device the host does not use",
    );
    expect(judge(granted("/dev/sg1"), { type: "char", swap: false, blockUse: ["sg1 is disk sdb: sdb1 is mounted on /srv/data"] })).toBe(
      "admin grant: SCSI disk in use by the host: sg1 is disk sdb: sdb1 is mounted on /srv/data; give the guest a disk the host does not use",
    );
    expect(judge(granted("/swapfile"), { type: "file", swap: true, blockUse: [] })).toBe(
      "admin grant: active swap area (listed in /proc/swaps): it holds host memory; never give it to a guest",
    );
    expect(judge(granted("/dev/sdc"), { type: "block", swap: false, blockUse: [] })).toBeUndefined();
  });
});

describe("runtime grants: locations", () => {
  it("refuses sysfs, even a PCI device's own files (a grant names no device)", () => {
    expect(judge(granted("/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0/config"))).toBe(
      "admin grant: sysfs files of a host device are granted only to the <hostdev> (or <tpm> passthrough) that assigns that very device, not to a runtime grant; assign the device with a <hostdev> instead",
    );
    expect(judge(granted("/sys/kernel/security/apparmor/.replace"))).toBe("admin grant: restricted location /sys is never granted to guests");
    // the same file to a hostdev that resolved that device: granted (the refusal is the grant's)
    const hostdev: Rule = { ...granted("/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0/config"), origin: { kind: "hostdev-pci", device: "0000:03:00.0" } };
    expect(judge(hostdev)).toBeUndefined();
  });

  it("refuses restricted locations, read-only too where they are never granted", () => {
    expect(judge(granted("/etc/shadow", "rk"))).toMatch(/^admin grant: restricted location \/etc/);
    expect(judge(granted("/proc/1/mem"))).toMatch(/^admin grant: restricted location \/proc/);
    expect(judge(granted("/var/lib/virt-aa-hook/x.json"))).toMatch(/^admin grant: /);
    expect(judge(granted("/srv/images/ok.img", "rk"))).toBeUndefined();
  });

  it("grants only this guest's own libvirt-managed runtime paths", () => {
    expect(judge(granted("/var/lib/libvirt/qemu/domain-3-other/monitor.sock"))).toMatch(
      /^admin grant: \/var\/lib\/libvirt\/qemu holds libvirt's runtime state for every guest/,
    );
    expect(judge(granted("/run/libvirt/libvirt-sock"))).toMatch(/^admin grant: \/run\/libvirt holds libvirt's runtime state/);
    expect(judge(granted("/var/lib/libvirt/qemu/domain-7-vm1/monitor.sock"))).toBeUndefined();
    expect(judge(granted("/var/lib/libvirt/images/new.qcow2"))).toBeUndefined();
  });

  it("grants the kinds it unions exactly what they are granted themselves (no wider list)", () => {
    // Sanity of the union: every kind's own nodes above are granted to that kind as well.
    const own: [string, OriginKind][] = [
      ["/dev/sg2", "hostdev-scsi"],
      ["/dev/bus/usb/001/005", "hostdev-usb"],
      ["/dev/input/event3", "input"],
      ["/dev/ttyS0", "chardev-dev"],
      ["/dev/vfio/17", "hostdev-pci"],
    ];
    for (const [p, kind] of own) expect(judge({ ...granted(p), origin: { kind } }, { ...missing, type: "char" })).toBeUndefined();
    // A macvtap's node: an <interface> gets it only as the node its family resolved (origin device).
    expect(judge({ ...granted("/dev/tap42"), origin: { kind: "net", device: "/dev/tap42" } }, { ...missing, type: "char" })).toBeUndefined();
    expect(judge(granted("/dev/tap42"), { ...missing, type: "char" })).toBeUndefined();
  });
});

describe("runtime grants through buildProfile", () => {
  let root: string;
  let cleanup: () => void;
  beforeEach(() => {
    ({ root, cleanup } = tempRoot());
    fs.mkdirSync(path.join(root, "/srv/vm"), { recursive: true });
    fs.writeFileSync(path.join(root, "/srv/vm/base.img"), Buffer.alloc(4096));
    fs.writeFileSync(path.join(root, "/srv/vm/new.qcow2"), Buffer.alloc(512));
  });
  afterEach(() => cleanup());

  const xml = guestXml(`<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/srv/vm/base.img'/><target dev='vda'/></disk>`);
  const grant = (p: string, write: boolean, source = "admin grant"): RuntimeGrant => ({ path: p, write, by: "admin", source });

  it("renders grants after the XML's rules, rwk or rk, with their source; merges a path the XML also names", () => {
    const plain = buildProfile(xml, { layout: new Layout(root) }).filesText;
    const built = buildProfile(xml, {
      layout: new Layout(root),
      grants: [grant("/srv/vm/new.qcow2", true, "admin grant"), grant("/srv/vm/base.img", false, "libvirt -F")],
    });
    const lines = built.filesText.split("\n");
    expect(lines).toContain(`  "/srv/vm/new.qcow2" rwk,  # admin grant`);
    expect(lines).toContain(`  "/srv/vm/base.img" rwk,  # disk vda, libvirt -F`);
    expect(plain.split("\n")).toContain(`  "/srv/vm/base.img" rwk,  # disk vda`);
    expect(plain).not.toContain("new.qcow2");
    expect(grantRules([grant("/a", false), grant("/b", true)]).map((r) => r.perms)).toEqual(["rk", "rwk"]);
  });

  it("a refused grant fails the whole build with the guest, the path and the reason", () => {
    let err: unknown;
    try {
      buildProfile(xml, { layout: new Layout(root), grants: [grant("/srv/vm/new.qcow2", true), grant("/etc/passwd", true, "admin grant")] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GuestError);
    expect((err as GuestError).guest).toBe("vm1");
    expect((err as GuestError).path).toBe("/etc/passwd");
    expect((err as GuestError).reason).toMatch(/^admin grant: restricted location \/etc/);
  });

  it.skipIf(!canMknod)("on a planted host: a used block device and swap refused, a free block device granted", () => {
    plantHost(root);
    const layoutR = new Layout(root);
    const reasonOf = (p: string) => {
      try {
        buildProfile(xml, { layout: layoutR, grants: [grant(p, true)] });
        return "granted";
      } catch (e) {
        return (e as GuestError).reason;
      }
    };
    expect(reasonOf("/dev/sdb")).toBe("admin grant: block device in use by the host: sdb1 is mounted on /srv/data; give the guest a device the host does not use");
    expect(reasonOf("/dev/mapper/vg-root")).toContain("block device in use by the host: dm-0 is mounted on /");
    expect(reasonOf("/dev/sdd")).toContain("active swap");
    expect(reasonOf("/swapfile")).toBe("admin grant: active swap area (listed in /proc/swaps): it holds host memory; never give it to a guest");
    expect(reasonOf("/dev/sg1")).toContain("SCSI disk in use by the host");
    expect(reasonOf("/dev/pts/3")).toContain("host terminals");
    expect(reasonOf("/dev/sdc")).toBe("granted");
    expect(reasonOf("/dev/mapper/vg-free")).toBe("granted");
    expect(reasonOf("/dev/sg2")).toBe("granted");
    expect(reasonOf("/dev/vfio/17")).toBe("granted");
    expect(buildProfile(xml, { layout: layoutR, grants: [grant("/dev/mapper/vg-free", true)] }).filesText).toContain(`  "/dev/dm-1" rwk,  # admin grant`);
    expect(GUEST_UUID).toBe(buildProfile(xml, { layout: layoutR }).domain.uuid);
  });
});
