import { afterEach, describe, expect, it } from "vitest";
import { resolveVolume } from "../../src/rules/volumes.js";
import { baseDomain, expectPathError, ruleContext, tempRoot, writeHostFile } from "./fixtures.js";
import { POOLS, poolRoot } from "./pools.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** resolveVolume against a root holding /etc/libvirt/storage/<pool>.xml = `xml`. */
function resolve(xml: string, volume = "disk.img"): () => string | undefined {
  const t = tempRoot();
  cleanups.push(t.cleanup);
  writeHostFile(t.root, "/etc/libvirt/storage/p.xml", xml);
  return () => resolveVolume(ruleContext(baseDomain(), t.root), "disk vda", { pool: "p", volume });
}

describe("pool definitions, read with the one XML reader", () => {
  it("decodes references and trims the values it reads", () => {
    expect(resolve("<pool type=' dir '><target><path>\n  /srv/a&#x26;b&#47;c&lt;d&gt;  \n</path></target></pool>")()).toBe("/srv/a&b/c<d>/disk.img");
    expect(resolve("<?xml version='1.0'?><!-- by libvirt --><pool type='logical'><source><name>vg&amp;1</name></source></pool>")()).toBe("/dev/vg&1/disk.img");
  });

  it.each([
    ["<pool type='dir'><target><path>/srv/&nbsp;</path></target></pool>", 'is not well-formed XML: unknown entity "&nbsp;"'],
    ["<pool type='dir'><target><path>/srv/&#0;</path></target></pool>", 'is not well-formed XML: character reference "&#0;" is not allowed in XML'],
    ["<pool type='dir'><target><path>/srv/\u001b</path></target></pool>", "is not well-formed XML: character U+001B is not allowed in XML"],
    ["<pool type='dir'><target><path>/srv</path></target>", "is not well-formed XML: malformed XML at line 1, column 1: Unclosed tag 'pool'."],
    ["<pool type='dir'><target><path>/srv</path></target></readonly/></pool>", "is not well-formed XML: malformed XML: end tag </readonly/> at offset 51 does not close <pool>"],
    ["<network type='dir'/>", "has no <pool> element"],
  ])("refuses %j", (xml, why) => {
    expectPathError(resolve(xml), "disk vda", `volume disk.img in pool p: pool definition /etc/libvirt/storage/p.xml ${why}`);
  });
});

describe("volumes of every pool type", () => {
  function poolCtx(): { root: string; at: (pool: string, volume: string, mode?: string) => string | undefined } {
    const t = tempRoot();
    cleanups.push(t.cleanup);
    poolRoot(t.root);
    const ctx = ruleContext(baseDomain(), t.root);
    return { root: t.root, at: (pool, volume, mode) => resolveVolume(ctx, "disk vdb", mode === undefined ? { pool, volume } : { pool, volume, mode }) };
  }

  it.each([
    ["default", "vm1.qcow2", undefined, "/var/lib/libvirt/images/vm1.qcow2"],
    ["fspool", "a.img", undefined, "/srv/fspool/a.img"],
    ["nfs", "b.raw", undefined, "/mnt/nfs/b.raw"],
    ["vz", "c.img", undefined, "/mnt/vz/c.img"],
    ["lvm", "vm1-root", undefined, "/dev/vg_guests/vm1-root"],
    ["zpool", "vm1", undefined, "/dev/zvol/tank/vms/vm1"],
    ["sdc", "sdc1", undefined, "/dev/sdc1"],
    ["nvme", "nvme1n1p2", undefined, "/dev/nvme1n1p2"],
    ["loop", "loop1p1", undefined, "/dev/loop1p1"],
    ["md", "md1p12", undefined, "/dev/md1p12"],
    ["byid", "wwn-0x5000c500a1b2c3d4-part1", undefined, "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part1"],
    ["san", "unit:0:0:1", undefined, "/dev/sdf"],
    ["san", "unit:0:0:1", "host", "/dev/sdf"],
    ["hba", "unit:0:1:0", undefined, "/dev/sdg"],
    ["vhba", "unit:0:0:0", undefined, "/dev/sdh"],
    ["mp", "dm-3", undefined, "/dev/dm-3"],
  ])("pool %s, volume %s (mode %s) → %s", (pool, volume, mode, path) => {
    expect(poolCtx().at(pool, volume, mode)).toBe(path);
  });

  it.each([
    ["ceph", "vm1-disk", undefined],
    ["gv", "vm1.qcow2", undefined],
    ["sheep", "vm1", undefined],
    ["direct", "unit:0:0:1", undefined],
    ["san", "unit:0:0:1", "direct"],
  ])("network pool %s (mode %s): no host file, no refusal", (pool, volume, mode) => {
    expect(poolCtx().at(pool, volume, mode)).toBeUndefined();
  });

  it("prefers the running pool's state in /run/libvirt/storage, and finds a transient pool only there", () => {
    const { root, at } = poolCtx();
    writeHostFile(root, "/run/libvirt/storage/default.xml", "<poolstate><pool type='dir'><name>default</name><target><path>/srv/live</path></target></pool></poolstate>");
    writeHostFile(root, "/run/libvirt/storage/scratch.xml", "<poolstate><pool type='dir'><name>scratch</name><target><path>/srv/scratch</path></target></pool></poolstate>");
    expect([at("default", "a.img"), at("scratch", "b.img")]).toEqual(["/srv/live/a.img", "/srv/scratch/b.img"]);
  });

  // Negative controls: a volume name never reaches a device outside its pool.
  it.each([
    ["sdc", "sda1", "volume sda1 in pool sdc: not a partition of the pool's disk /dev/sdc (a disk pool's volumes are named after it, e.g. sdc1)"],
    ["sdc", "sdc", "volume sdc in pool sdc: not a partition of the pool's disk /dev/sdc (a disk pool's volumes are named after it, e.g. sdc1)"],
    ["sdc", "sdcx1", "volume sdcx1 in pool sdc: not a partition of the pool's disk /dev/sdc (a disk pool's volumes are named after it, e.g. sdc1)"],
    // A disk whose name ends in a digit: its partitions are <disk>p<N>; <disk><N> is another device.
    ["nvme", "nvme1n10", "volume nvme1n10 in pool nvme: not a partition of the pool's disk /dev/nvme1n1 (a disk pool's volumes are named after it, e.g. nvme1n1p1)"],
    ["loop", "loop10", "volume loop10 in pool loop: not a partition of the pool's disk /dev/loop1 (a disk pool's volumes are named after it, e.g. loop1p1)"],
    ["md", "md12", "volume md12 in pool md: not a partition of the pool's disk /dev/md1 (a disk pool's volumes are named after it, e.g. md1p1)"],
    ["san", "unit:0:0:2", "volume unit:0:0:2 in pool san: no block device for that LUN on SCSI host host2 (/sys/bus/scsi/devices/<host>:0:0:2/block); is the pool started and the LUN there?"],
    ["san", "sdz", "volume sdz in pool san: iscsi pool volumes are named unit:<bus>:<target>:<lun> (see virsh vol-list san)"],
    ["hba", "unit:0:0:1", "volume unit:0:0:1 in pool hba: no block device for that LUN on SCSI host host3 (/sys/bus/scsi/devices/<host>:0:0:1/block); is the pool started and the LUN there?"],
    ["mp", "dm-1", 'volume dm-1 in pool mp: dm-1 is not a multipath map (its device-mapper uuid is "LVM-abcdef")'],
    ["mp", "dm-9", "volume dm-9 in pool mp: no device-mapper device dm-9 (/sys/block/dm-9/dm/uuid)"],
    ["mp", "sda", "volume sda in pool mp: mpath pool volumes are named dm-<minor>"],
    ["nope", "a.img", "volume a.img in pool nope: pool definition not found in /etc/libvirt/storage or /run/libvirt/storage; define the pool (virsh pool-define) or use a <disk type='file'|'block'> with the volume's path"],
  ])("pool %s, volume %s is refused naming disk, pool and what to do", (pool, volume, why) => {
    expectPathError(() => poolCtx().at(pool, volume), "disk vdb", why);
  });

  it("refuses an iscsi pool whose session is not logged in, and an fc_host that is not there", () => {
    const t = tempRoot();
    cleanups.push(t.cleanup);
    writeHostFile(t.root, "/etc/libvirt/storage/san.xml", POOLS.san!);
    writeHostFile(t.root, "/etc/libvirt/storage/vhba.xml", POOLS.vhba!);
    const ctx = ruleContext(baseDomain(), t.root);
    expectPathError(
      () => resolveVolume(ctx, "disk vdb", { pool: "san", volume: "unit:0:0:1" }),
      "disk vdb",
      "volume unit:0:0:1 in pool san: no iSCSI session to iqn.2004-04.com.example:storage.lun1 (/sys/class/iscsi_session); start the pool (virsh pool-start san)",
    );
    expectPathError(
      () => resolveVolume(ctx, "disk vdb", { pool: "vhba", volume: "unit:0:0:0" }),
      "disk vdb",
      "volume unit:0:0:0 in pool vhba: no fc_host with wwnn 20000000c9831b4b and wwpn 10000000c9831b4b (/sys/class/fc_host); start the pool (it creates the vHBA)",
    );
  });
});
