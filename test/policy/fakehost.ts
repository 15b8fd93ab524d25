/**
 * A fake host for the policy-by-provenance tests, planted under a temporary root the way the
 * kernel shows a real one: block device nodes (mknod, so the tests need root) with their sysfs
 * directories reached through /sys/dev/block/<major:minor> links, partitions, holders,
 * /proc/self/mountinfo, /proc/mounts and /proc/swaps; host terminals, VFIO and input nodes; a
 * PCI device bound to vfio-pci; and another running guest's libvirt-managed runtime files.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { writeHostFile } from "../rules/fixtures.js";
import { fakePciDevice, link, mkdir } from "../rules/hosttree.js";

/** The guest under test: vm1, id 7 (short name 7-vm1). */
export const GUEST_UUID = "6a1e3c2b-9d84-4f0a-b1c2-d3e4f5a6b7c8";
/** Another running guest: other, id 3 (short name 3-other). */
export const OTHER_UUID = "0f9e8d7c-6b5a-4938-a271-605f4e3d2c1b";

/** A domain XML for vm1 (id 7) with these devices, and `extra` elements before <devices>. */
export function guestXml(devices: string, extra = ""): string {
  return `<domain type='kvm' id='7'><name>vm1</name><uuid>${GUEST_UUID}</uuid>${extra}<devices>${devices}</devices></domain>\n`;
}

export const canMknod = process.getuid?.() === 0;

function mknod(root: string, hostPath: string, type: "b" | "c", major: number, minor: number): void {
  const real = path.join(root, hostPath);
  fs.mkdirSync(path.dirname(real), { recursive: true });
  execFileSync("/usr/bin/mknod", [real, type, String(major), String(minor)]);
}

/**
 * A block device `/dev/<name>` (major:minor) with its sysfs directory
 * `/sys/devices/virtual/block/<disk>[/<name>]`, `dev`, `holders/` and, for a partition, `partition`.
 */
function blockDevice(root: string, name: string, major: number, minor: number, opts: { partitionOf?: string; holders?: string[] } = {}): void {
  mknod(root, `/dev/${name}`, "b", major, minor);
  const dir = opts.partitionOf === undefined ? `/sys/devices/virtual/block/${name}` : `/sys/devices/virtual/block/${opts.partitionOf}/${name}`;
  writeHostFile(root, `${dir}/dev`, `${major}:${minor}\n`);
  mkdir(root, `${dir}/holders`);
  for (const holder of opts.holders ?? []) link(root, `${dir}/holders/${holder}`, `../../../${holder}`);
  if (opts.partitionOf !== undefined) writeHostFile(root, `${dir}/partition`, "1\n");
  const depth = opts.partitionOf === undefined ? "../../devices/virtual/block" : `../../devices/virtual/block/${opts.partitionOf}`;
  link(root, `/sys/dev/block/${major}:${minor}`, `${depth}/${name}`);
}

export function plantHost(root: string): void {
  // Block devices and how the host uses them.
  blockDevice(root, "sdb", 8, 16);
  blockDevice(root, "sdb1", 8, 17, { partitionOf: "sdb" }); // mounted on /srv/data
  blockDevice(root, "sdc", 8, 32); // free, with a free partition: a control
  blockDevice(root, "sdc1", 8, 33, { partitionOf: "sdc" });
  blockDevice(root, "sdd", 8, 48); // active swap
  blockDevice(root, "sde", 8, 64);
  blockDevice(root, "sde1", 8, 65, { partitionOf: "sde", holders: ["dm-0"] }); // an LVM PV of the active VG
  blockDevice(root, "sdf", 8, 80); // btrfs: mountinfo shows an anonymous 0:N, the source names it
  blockDevice(root, "dm-0", 253, 0); // the host's root LV, mounted on /
  blockDevice(root, "dm-1", 253, 1); // a free LV: a control
  link(root, "/dev/mapper/vg-root", "../dm-0");
  link(root, "/dev/mapper/vg-free", "../dm-1");
  link(root, "/dev/vg/free", "../dm-1");
  writeHostFile(
    root,
    "/proc/self/mountinfo",
    [
      "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/mapper/vg-root rw",
      "30 22 8:17 / /srv/data rw,relatime shared:2 - ext4 /dev/sdb1 rw",
      "31 22 0:45 / /srv/btr rw,relatime shared:3 - btrfs /dev/sdf rw,space_cache=v2",
      "32 22 0:46 / /dev/hugepages rw,relatime shared:4 - hugetlbfs hugetlbfs rw,pagesize=2M",
      "",
    ].join("\n"),
  );
  writeHostFile(root, "/proc/mounts", "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n");
  writeHostFile(
    root,
    "/proc/swaps",
    "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sdd                                partition\t8388604\t\t0\t\t-2\n/swapfile                               file\t\t1048572\t\t0\t\t-3\n",
  );
  writeHostFile(root, "/swapfile", "");

  // Character devices: host terminals, a serial line, VFIO, input.
  mknod(root, "/dev/pts/3", "c", 136, 3);
  mknod(root, "/dev/tty1", "c", 4, 1);
  mknod(root, "/dev/ttyS0", "c", 4, 64);
  mknod(root, "/dev/vcs1", "c", 7, 1);
  mknod(root, "/dev/console", "c", 5, 1);
  mknod(root, "/dev/vfio/vfio", "c", 10, 196);
  mknod(root, "/dev/vfio/17", "c", 243, 0);
  mknod(root, "/dev/vfio/18", "c", 243, 1);
  mknod(root, "/dev/input/event3", "c", 13, 67);
  // SCSI LUNs 0:0:0:1 (disk sdb, whose partition is mounted) and 0:0:0:2 (disk sdc, free), with
  // their SCSI generic nodes sg1 and sg2, as /sys/bus/scsi and /sys/class/scsi_generic show them.
  for (const [lun, sg, disk, dev] of [["0:0:0:1", "sg1", "sdb", "8:16"], ["0:0:0:2", "sg2", "sdc", "8:32"]] as const) {
    const dir = `/sys/devices/scsi/${lun}`;
    mkdir(root, `${dir}/scsi_generic/${sg}`);
    writeHostFile(root, `${dir}/block/${disk}/dev`, `${dev}\n`);
    link(root, `${dir}/scsi_generic/${sg}/device`, "../../../" + lun);
    link(root, `/sys/bus/scsi/devices/${lun}`, `../../../devices/scsi/${lun}`);
    link(root, `/sys/class/scsi_generic/${sg}`, `../../devices/scsi/${lun}/scsi_generic/${sg}`);
    mknod(root, `/dev/${sg}`, "c", 21, Number(sg.slice(2)));
  }
  fakePciDevice(root, "0000:03:00.0", 17);
  fakePciDevice(root, "0000:04:00.0", 18);

  // Another guest's libvirt-managed runtime files.
  for (const file of [
    "/var/lib/libvirt/qemu/domain-3-other/monitor.sock",
    "/var/lib/libvirt/qemu/domain-3-other/master-key.aes",
    "/var/lib/libvirt/qemu/channel/target/domain-3-other/org.qemu.guest_agent.0",
    "/run/libvirt/qemu/other.xml",
    "/run/libvirt/qemu/other.pid",
    "/run/libvirt/qemu/swtpm/3-other-swtpm.sock",
    `/var/lib/libvirt/swtpm/${OTHER_UUID}/tpm2/tpm2-00.permall`,
    "/dev/hugepages/libvirt/qemu/3-other/qemu_back_mem.pc.ram",
    "/var/lib/libvirt/qemu/ram/3-other/pc.ram",
    "/run/libvirt/libvirt-sock",
    "/var/lib/libvirt/images/vm1.img",
    "/srv/share/readme",
  ]) {
    writeHostFile(root, file, "");
  }
}
