/**
 * Policy by provenance, through the shipped bundle: for each class of host file that a domain XML
 * could hand to its guest through an element that has no business with it, the exact one-line
 * refusal from `explain FILE` (exit 1, nothing on stdout) and from the real `hooks/qemu` at
 * `prepare begin` (exit 1, the same line, no .files written). Controls: the same elements naming
 * what they legitimately use are granted, exactly.
 *
 * The host is a fake tree under a temporary root (test/policy/fakehost.ts): block devices made
 * with mknod (so this file needs root, as the image-attack tests do) with sysfs, mountinfo and
 * swaps saying which ones the host uses, terminals, VFIO groups, a PCI device, and another running
 * guest's runtime files.
 *
 * Every refusal here was granted, with exit 0, before src/policy/provenance.ts (checked by running
 * this file against a bundle built from the previous src/).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callHook, installHook } from "../lifecycle/harness.js";
import { canMknod, GUEST_UUID, guestXml, OTHER_UUID, plantHost } from "../policy/fakehost.js";
import { TEST_NODE } from "../helpers/node.js";

let t: TestRoot;
beforeAll(() => {
  if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build first`);
  t = makeTestRoot("vaah-provenance-");
  plantHost(t.root);
  installHook(t);
});
afterAll(() => t.remove());

function explain(xml: string): { status: number | null; stdout: string; stderr: string } {
  const file = path.join(t.root, "tmp-domain.xml");
  fs.writeFileSync(file, xml);
  const r = spawnSync(TEST_NODE, [BUNDLE, "explain", "--root", t.root, file], { env: { LC_ALL: "C" }, cwd: "/", timeout: 20_000 });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

const FILES = `/etc/apparmor.d/libvirt/libvirt-${GUEST_UUID}.files`;

const disk = (p: string, type = "file") =>
  `<disk type='${type}' device='disk'><driver name='qemu' type='raw'/><source ${type === "block" ? "dev" : "file"}='${p}'/><target dev='vdb' bus='virtio'/></disk>`;
const serial = (type: string, p: string) => `<serial type='${type}'><source path='${p}'/><target port='0'/></serial>`;
const logOnly = (p: string) => `<serial type='pty'><log file='${p}'/><target port='0'/></serial>`;
const unixChannel = (p: string) => `<channel type='unix'><source mode='connect' path='${p}'/><target type='virtio' name='org.example.0'/></channel>`;
const share = (dir: string) => `<filesystem type='mount' accessmode='passthrough'><source dir='${dir}'/><target dir='t'/></filesystem>`;
const evdev = (p: string) => `<input type='evdev'><source dev='${p}'/></input>`;
const pciHostdev = (bus: string) =>
  `<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/><source><address domain='0x0000' bus='${bus}' slot='0x00' function='0x0'/></source></hostdev>`;
const storageHostdev = (p: string) => `<hostdev mode='capabilities' type='storage'><source><block>${p}</block></source></hostdev>`;
const scsiHostdev = (unit: number) =>
  `<hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host0'/><address bus='0' target='0' unit='${unit}'/></source></hostdev>`;
const nvdimm = (p: string) => `<memory model='nvdimm'><source><path>${p}</path></source><target><size unit='KiB'>524288</size></target></memory>`;
const tpmPassthrough = (p: string) => `<tpm model='tpm-tis'><backend type='passthrough'><device path='${p}'/></backend></tpm>`;
const tpmExternal = (p: string) => `<tpm model='tpm-crb'><backend type='external'><source type='unix' mode='connect' path='${p}'/></backend></tpm>`;

const RUNTIME = "holds libvirt's runtime state for every guest and for libvirt itself; only this guest's own entries (named after its id, name and UUID) are granted";
const TERMINALS =
  "host terminals (pseudo-terminals, virtual consoles, the console) are never granted to guests; use <serial type='pty'> for a console, or type='dev' with a serial line such as /dev/ttyS0";
const SYSFS = "sysfs files of a host device are granted only to the <hostdev> (or <tpm> passthrough) that assigns that very device, not to a <disk>; assign the device with a <hostdev> instead";
const PCI3 = "/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0";

/** [class, case, devices XML, the exact error line] */
const REFUSED: Array<[string, string, string, string]> = [
  // Places the host executes, loads policy from, or controls daemons through.
  ["restricted places", "a disk in the compiled-policy cache", disk("/var/cache/apparmor/26b63962.0/x.img"), "/var/cache/apparmor/26b63962.0/x.img: disk vdb: restricted location /var/cache/apparmor is never granted to guests"],
  ["restricted places", "a serial log in /var/lib/apparmor", logOnly("/var/lib/apparmor/profiles/x"), "/var/lib/apparmor/profiles/x: serial 0 log: restricted location /var/lib/apparmor is never granted to guests"],
  ["restricted places", "a 9p share of snapd's profiles", share("/var/lib/snapd/apparmor"), "/var/lib/snapd/apparmor: filesystem t: restricted location /var/lib/snapd is never granted to guests"],
  ["restricted places", "root's crontab as a serial file", serial("file", "/var/spool/cron/crontabs/root"), "/var/spool/cron/crontabs/root: serial 0: restricted location /var/spool/cron is never granted to guests"],
  ["restricted places", "a dpkg maintainer script as a disk", disk("/var/lib/dpkg/info/bash.postinst"), "/var/lib/dpkg/info/bash.postinst: disk vdb: restricted location /var/lib/dpkg is never granted to guests"],
  ["restricted places", "a systemd unit in /run as a serial file", serial("file", "/run/systemd/system/evil.service"), "/run/systemd/system/evil.service: serial 0: restricted location /run/systemd is never granted to guests"],
  ["restricted places", "a udev rule in /run as a serial log", logOnly("/run/udev/rules.d/99-x.rules"), "/run/udev/rules.d/99-x.rules: serial 0 log: restricted location /run/udev is never granted to guests"],
  ["restricted places", "/usr/local/etc as a disk", disk("/usr/local/etc/x.conf"), "/usr/local/etc/x.conf: disk vdb: restricted location /usr is never granted to guests"],
  ["restricted places", "a path through /var/run (the legacy spelling of /run)", disk("/var/run/x.img"), "/var/run/x.img: disk vdb: restricted location /var/run is never granted to guests"],
  // Daemons' control sockets.
  ["sockets", "libvirt's own socket", unixChannel("/run/libvirt/libvirt-sock"), `/run/libvirt/libvirt-sock: channel org.example.0: /run/libvirt ${RUNTIME}; name a path outside /run/libvirt`],
  ["sockets", "the system D-Bus", unixChannel("/run/dbus/system_bus_socket"), "/run/dbus/system_bus_socket: channel org.example.0: restricted location /run/dbus is never granted to guests"],
  ["sockets", "docker's socket", unixChannel("/run/docker.sock"), "/run/docker.sock: channel org.example.0: restricted location /run/docker.sock is never granted to guests"],
  ["sockets", "containerd's socket", unixChannel("/run/containerd/containerd.sock"), "/run/containerd/containerd.sock: channel org.example.0: restricted location /run/containerd is never granted to guests"],
  // Block devices the host uses.
  ["block devices", "a disk holding a mounted partition", disk("/dev/sdb", "block"), "/dev/sdb: disk vdb: block device in use by the host: sdb1 is mounted on /srv/data; give the guest a device the host does not use"],
  ["block devices", "the mounted partition itself, as a storage <hostdev>", storageHostdev("/dev/sdb1"), "/dev/sdb1: hostdev storage: block device in use by the host: sdb1 is mounted on /srv/data; give the guest a device the host does not use"],
  ["block devices", "a swap partition", disk("/dev/sdd", "block"), "/dev/sdd: disk vdb: block device in use by the host: sdd is active swap; give the guest a device the host does not use"],
  ["block devices", "a disk whose partition is a PV of an active LV", disk("/dev/sde", "block"), "/dev/sde: disk vdb: block device in use by the host: sde1 is held by dm-0 (device-mapper, LVM, md or bcache); give the guest a device the host does not use"],
  ["block devices", "the host's mounted root LV through /dev/mapper", disk("/dev/mapper/vg-root", "block"), "/dev/mapper/vg-root: resolves to /dev/dm-0: disk vdb: block device in use by the host: dm-0 is mounted on /; give the guest a device the host does not use"],
  ["block devices", "a btrfs device (mountinfo shows 0:N, the source names it)", disk("/dev/sdf", "block"), "/dev/sdf: disk vdb: block device in use by the host: sdf is mounted on /srv/btr; give the guest a device the host does not use"],
  ["block devices", "a swap file as a disk", disk("/swapfile"), "/swapfile: disk vdb: active swap area (listed in /proc/swaps): it holds host memory; never give it to a guest"],
  ["block devices", "a block device as TPM passthrough", tpmPassthrough("/dev/sdc"), "/dev/sdc: tpm passthrough device: /dev/sdc is not a device node a passthrough <tpm> may use (allowed: /dev/tpm{rm}<N>); name a device of that kind or remove the element"],
  ["block devices", "a block device as an nvdimm while mounted", nvdimm("/dev/sdb1"), "/dev/sdb1: memory 0 nvdimm: block device in use by the host: sdb1 is mounted on /srv/data; give the guest a device the host does not use"],
  ["block devices", "a SCSI <hostdev> whose disk holds a mounted partition", scsiHostdev(1), "/dev/sg1: hostdev scsi 0:0:0:1: SCSI disk in use by the host: sg1 is disk sdb: sdb1 is mounted on /srv/data; give the guest a disk the host does not use"],
  // Host terminals.
  ["terminals", "a pseudo-terminal as a serial line", serial("dev", "/dev/pts/3"), `/dev/pts/3: serial 0: ${TERMINALS}`],
  ["terminals", "a virtual console as a serial file", serial("file", "/dev/tty1"), `/dev/tty1: serial 0: ${TERMINALS}`],
  ["terminals", "virtual console memory as a serial line", serial("dev", "/dev/vcs1"), `/dev/vcs1: serial 0: ${TERMINALS}`],
  ["terminals", "the console as a serial line", serial("dev", "/dev/console"), `/dev/console: serial 0: ${TERMINALS}`],
  // VFIO through the wrong element, next to a real <hostdev>.
  [
    "vfio",
    "another IOMMU group through a serial line",
    pciHostdev("0x03") + serial("dev", "/dev/vfio/18"),
    "/dev/vfio/18: serial 0: VFIO devices are granted only to the <hostdev> or <disk type='nvme'> whose device is in that IOMMU group, not to a chardev of type='dev'; assign the device with a <hostdev>",
  ],
  [
    "vfio",
    "the hostdev's own group through an input",
    pciHostdev("0x03") + evdev("/dev/vfio/17"),
    "/dev/vfio/17: input evdev: VFIO devices are granted only to the <hostdev> or <disk type='nvme'> whose device is in that IOMMU group, not to a passthrough <input>; assign the device with a <hostdev>",
  ],
  // Devices libvirt 10-12 added (src/rules/{smartcard,pstore,dbus,network,vfio}.ts).
  [
    "libvirt 10-12 devices",
    "a smartcard database in /etc/ssl/private",
    "<smartcard mode='host-certificates'><certificate>a</certificate><certificate>b</certificate><certificate>c</certificate><database>/etc/ssl/private</database></smartcard>",
    "/etc/ssl/private: smartcard 0 database: restricted location /etc is never granted to guests",
  ],
  [
    "libvirt 10-12 devices",
    "another guest's macvtap node as a tap backend",
    "<interface type='ethernet'><backend tap='/dev/tap24'/><model type='virtio'/></interface>",
    "/dev/tap24: interface 0 backend tap: /dev/tap24 is not a device node a <interface> may use (allowed: /dev/vhost-net, /dev/net/tun, /dev/vhost-vdpa-<N>); name a device of that kind or remove the element",
  ],
  [
    "libvirt 10-12 devices",
    "a pstore file in another guest's private directory",
    "<pstore backend='acpi-erst'><path>/var/lib/libvirt/qemu/domain-3-other/master-key.aes</path><size unit='KiB'>8</size></pstore>",
    `/var/lib/libvirt/qemu/domain-3-other/master-key.aes: pstore 0 acpi-erst: /var/lib/libvirt/qemu ${RUNTIME}; name a path outside /var/lib/libvirt/qemu`,
  ],
  [
    "libvirt 10-12 devices",
    "another device's VFIO cdev through a serial line",
    serial("dev", "/dev/vfio/devices/vfio3"),
    "/dev/vfio/devices/vfio3: serial 0: VFIO devices are granted only to the <hostdev> or <disk type='nvme'> whose device is in that IOMMU group, not to a chardev of type='dev'; assign the device with a <hostdev>",
  ],
  [
    "libvirt 10-12 devices",
    "another guest's D-Bus display bus",
    "<graphics type='dbus' address='unix:path=/run/libvirt/qemu/dbus/3-other-dbus.sock'/>",
    `/run/libvirt/qemu/dbus/3-other-dbus.sock: graphics dbus 0: /run/libvirt ${RUNTIME}; name a path outside /run/libvirt`,
  ],
  // A PCI device's sysfs files named by a disk.
  ["pci sysfs", "resource0 as a disk", disk("/sys/bus/pci/devices/0000:03:00.0/resource0"), `/sys/bus/pci/devices/0000:03:00.0/resource0: resolves to ${PCI3}/resource0: disk vdb: ${SYSFS}`],
  ["pci sysfs", "config as a disk, next to the <hostdev> that owns it", pciHostdev("0x03") + disk("/sys/bus/pci/devices/0000:03:00.0/config"), `/sys/bus/pci/devices/0000:03:00.0/config: resolves to ${PCI3}/config: disk vdb: ${SYSFS}`],
  ["pci sysfs", "remove as a disk", disk("/sys/bus/pci/devices/0000:03:00.0/remove"), `/sys/bus/pci/devices/0000:03:00.0/remove: resolves to ${PCI3}/remove: disk vdb: ${SYSFS}`],
  // Another guest's runtime files.
  ["other guests", "its QMP monitor socket", unixChannel("/var/lib/libvirt/qemu/domain-3-other/monitor.sock"), `/var/lib/libvirt/qemu/domain-3-other/monitor.sock: channel org.example.0: /var/lib/libvirt/qemu ${RUNTIME}; name a path outside /var/lib/libvirt/qemu`],
  ["other guests", "its guest-agent channel", unixChannel("/var/lib/libvirt/qemu/channel/target/domain-3-other/org.qemu.guest_agent.0"), `/var/lib/libvirt/qemu/channel/target/domain-3-other/org.qemu.guest_agent.0: channel org.example.0: /var/lib/libvirt/qemu ${RUNTIME}; name a path outside /var/lib/libvirt/qemu`],
  ["other guests", "its live XML (VNC passwords)", disk("/run/libvirt/qemu/other.xml"), `/run/libvirt/qemu/other.xml: disk vdb: /run/libvirt ${RUNTIME}; name a path outside /run/libvirt`],
  ["other guests", "its swtpm socket", tpmExternal("/run/libvirt/qemu/swtpm/3-other-swtpm.sock"), `/run/libvirt/qemu/swtpm/3-other-swtpm.sock: tpm external socket: /run/libvirt ${RUNTIME}; name a path outside /run/libvirt`],
  ["other guests", "its swtpm state", disk(`/var/lib/libvirt/swtpm/${OTHER_UUID}/tpm2/tpm2-00.permall`), `/var/lib/libvirt/swtpm/${OTHER_UUID}/tpm2/tpm2-00.permall: disk vdb: /var/lib/libvirt/swtpm ${RUNTIME}; name a path outside /var/lib/libvirt/swtpm`],
  ["other guests", "its hugepage RAM", nvdimm("/dev/hugepages/libvirt/qemu/3-other/qemu_back_mem.pc.ram"), `/dev/hugepages/libvirt/qemu/3-other/qemu_back_mem.pc.ram: memory 0 nvdimm: /dev/hugepages ${RUNTIME}; name a path outside /dev/hugepages`],
  ["other guests", "its managed save image (its memory)", disk("/var/lib/libvirt/qemu/save/other.save"), `/var/lib/libvirt/qemu/save/other.save: disk vdb: /var/lib/libvirt/qemu ${RUNTIME}; name a path outside /var/lib/libvirt/qemu`],
  ["other guests", "its file-backed RAM", disk("/var/lib/libvirt/qemu/ram/3-other/pc.ram"), `/var/lib/libvirt/qemu/ram/3-other/pc.ram: disk vdb: /var/lib/libvirt/qemu ${RUNTIME}; name a path outside /var/lib/libvirt/qemu`],
  // Recursive grants over trees of devices, shared memory and libvirt's state.
  ["recursive grants", "9p over /dev/shm", share("/dev/shm"), "/dev/shm: filesystem t: recursive access would include /dev/shm, the shared memory of other host processes; share a directory of its own instead"],
  ["recursive grants", "9p over /dev/input", share("/dev/input"), "/dev/input: filesystem t: recursive access would include the device nodes below /dev/input; share a directory of its own instead"],
  ["recursive grants", "9p over /var/lib/libvirt/qemu", share("/var/lib/libvirt/qemu"), "/var/lib/libvirt/qemu: filesystem t: recursive access would include /var/lib/libvirt/qemu, libvirt's runtime state for other guests and for itself; share a directory of its own instead"],
  ["recursive grants", "9p over /run/libvirt", share("/run/libvirt"), "/run/libvirt: filesystem t: recursive access would include /run/libvirt, libvirt's runtime state for other guests and for itself; share a directory of its own instead"],
  ["recursive grants", "9p over /var/lib/libvirt", share("/var/lib/libvirt"), "/var/lib/libvirt: filesystem t: recursive access would include the restricted location /var/lib/libvirt/dnsmasq"],
];

describe.skipIf(!canMknod)("policy by provenance through the bundle: refused with one exact line", () => {
  it.each(REFUSED)("%s: %s (explain)", (_class, _case, devices, reason) => {
    expect(explain(guestXml(devices))).toEqual({ status: 1, stdout: "", stderr: `virt-aa-hook: error: vm1: ${reason}\n` });
  });

  it.each(REFUSED)("%s: %s (hook prepare begin: exit 1, nothing written)", (_class, _case, devices, reason) => {
    const r = callHook(t, ["vm1", "prepare", "begin", "-"], guestXml(devices));
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: `virt-aa-hook: error: vm1: ${reason}\n` });
    expect(t.exists(FILES)).toBe(false);
  });
});

describe.skipIf(!canMknod)("controls: the same elements naming what they legitimately use are granted", () => {
  it("free block devices (whole disk with a free partition, an LV through /dev/mapper and /dev/<vg>), a serial line, an input node, a hostdev's own files", () => {
    const devices = [
      disk("/dev/sdc", "block"),
      disk("/dev/mapper/vg-free", "block").replace("vdb", "vdc"),
      disk("/dev/vg/free", "block").replace("vdb", "vdd"),
      storageHostdev("/dev/sdc1"),
      scsiHostdev(2),
      serial("dev", "/dev/ttyS0"),
      evdev("/dev/input/event3"),
      pciHostdev("0x03"),
      share("/srv/share"),
      unixChannel("/var/lib/libvirt/qemu/channel/target/domain-7-vm1/org.example.0"),
      tpmExternal("/run/libvirt/qemu/swtpm/7-vm1-swtpm.sock"),
    ].join("");
    const r = explain(guestXml(devices, "<memoryBacking><hugepages/></memoryBacking>"));
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(r.stdout.split("\n").filter((l) => l.startsWith("  "))).toEqual([
      '  "/dev/sdc" rwk,  # disk vdb',
      '  "/dev/dm-1" rwk,  # disk vdc, disk vdd',
      '  "/srv/share{,/**}" rwl,  # filesystem t',
      '  "/dev/ttyS0" rw,  # serial 0',
      '  "/var/lib/libvirt/qemu/channel/target/domain-7-vm1/org.example.0" rw,  # channel org.example.0',
      '  "/dev/input/event3" rw,  # input evdev',
      '  "/run/libvirt/qemu/swtpm/7-vm1-swtpm.sock" rw,  # tpm external socket',
      '  "/dev/sdc1" rw,  # hostdev storage',
      '  "/dev/sg2" rw,  # hostdev scsi 0:0:0:2',
      '  "/dev/vfio/vfio" rw,  # hostdev pci 0000:03:00.0',
      '  "/dev/vfio/17" rw,  # hostdev pci 0000:03:00.0',
      ...["config", "device", "reset", "resource", "resource0", "resource2_wc", "rom", "vendor"].map((f) => `  "${PCI3}/${f}" rw,  # hostdev pci 0000:03:00.0`),
      '  "/run/libvirt/qemu/vm1.pid" rwk,  # pidfile',
      '  "/var/lib/libvirt/qemu/domain-7-vm1{,/**}" rwk,  # private dir',
      '  "/var/lib/libvirt/qemu/channel/target/domain-7-vm1{,/**}" rw,  # channel dir',
      '  "/dev/hugepages/libvirt/qemu/7-vm1{,/**}" rw,  # hugepages',
    ]);
  });

  it("the hook prepares the same guest: exit 0, the .files written", () => {
    const xml = guestXml([disk("/dev/sdc", "block"), serial("dev", "/dev/ttyS0"), pciHostdev("0x03")].join(""));
    const r = callHook(t, ["vm1", "prepare", "begin", "-"], xml);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(t.read(FILES)).toContain('  "/dev/sdc" rwk,  # disk vdb\n');
    callHook(t, ["vm1", "release", "end", "-"], xml);
  });
});
