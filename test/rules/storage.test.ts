import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { Disk, Filesystem } from "../../src/domain/model.js";
import { filesystemRules as filesystemRulesWithOrigin } from "../../src/rules/filesystems.js";
import { diskRules as diskRulesWithOrigin } from "../../src/rules/storage.js";
import { baseDomain, expectPathError, fileDisk, ruleContext, writeHostFile, withoutOrigins, tempRootsPerTest } from "./fixtures.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const filesystemRules = withoutOrigins(filesystemRulesWithOrigin);
const diskRules = withoutOrigins(diskRulesWithOrigin);

const root = tempRootsPerTest();

const disksRules = (disks: Disk[], r?: string, maxDepth?: number) =>
  diskRules(ruleContext(baseDomain({ devices: { disks } }), r, maxDepth));

describe("diskRules: top images", () => {
  it("grants a writable file disk rwk, a read-only one rk and a shareable one rwk", () => {
    expect(
      disksRules([
        fileDisk({ path: "/var/lib/libvirt/images/vm1.img" }),
        fileDisk({ target: "vdb", path: "/srv/iso/debian.iso", readonly: true }),
        fileDisk({ target: "vdc", path: "/srv/shared/cluster.img", shareable: true }),
      ]),
    ).toEqual([
      { path: "/var/lib/libvirt/images/vm1.img", suffix: "", perms: "rwk", source: "disk vda" },
      { path: "/srv/iso/debian.iso", suffix: "", perms: "rk", source: "disk vdb" },
      { path: "/srv/shared/cluster.img", suffix: "", perms: "rwk", source: "disk vdc" },
    ]);
  });

  it("grants a block disk like a file disk and names an untargeted disk by its index", () => {
    expect(disksRules([fileDisk({ type: "block", device: "lun", path: "/dev/sdb", target: undefined })])).toEqual([
      { path: "/dev/sdb", suffix: "", perms: "rwk", source: "disk 0" },
    ]);
  });

  it("grants nothing for an empty cdrom or floppy, a network disk or an nvme disk", () => {
    expect(
      disksRules([
        fileDisk({ device: "cdrom", target: "sda", readonly: true }),
        fileDisk({ type: "block", device: "floppy", target: "fda" }),
        fileDisk({ type: "network", target: "vdb", format: "qcow2" }),
        fileDisk({ type: "nvme", target: "vdc", nvmeAddress: { domain: 0, bus: 1, slot: 0, function: 0 } }),
      ]),
    ).toEqual([]);
  });

  it("grants a dir disk recursively, rwk or rk", () => {
    expect(
      disksRules([
        fileDisk({ type: "dir", format: "fat", path: "/srv/vvfat/rw" }),
        fileDisk({ type: "dir", format: "fat", target: "vdb", path: "/srv/vvfat/ro", readonly: true }),
      ]),
    ).toEqual([
      { path: "/srv/vvfat/rw", suffix: "{,/**}", perms: "rwk", source: "disk vda" },
      { path: "/srv/vvfat/ro", suffix: "{,/**}", perms: "rk", source: "disk vdb" },
    ]);
  });

  it("grants a vhost-user disk's socket rw and a reservations socket rw, also on a network disk", () => {
    expect(
      disksRules([
        fileDisk({ type: "vhostuser", path: "/run/vhost-user-blk/vm1.sock", format: undefined }),
        fileDisk({ type: "network", device: "lun", target: "sda", reservationsSocket: "/run/libvirt/qemu/pr-helper.sock" }),
      ]),
    ).toEqual([
      { path: "/run/vhost-user-blk/vm1.sock", suffix: "", perms: "rw", source: "disk vda" },
      { path: "/run/libvirt/qemu/pr-helper.sock", suffix: "", perms: "rw", source: "disk sda reservations" },
    ]);
  });

  it("grants <dataStore> like the top image (rwk, rk when read-only) and skips a network one", () => {
    expect(
      disksRules([
        fileDisk({ format: "qcow2", path: "/srv/a.qcow2", dataStore: { type: "file", path: "/srv/a.data" }, backingStore: [] }),
        fileDisk({
          target: "vdb",
          format: "qcow2",
          readonly: true,
          path: "/srv/b.qcow2",
          dataStore: { type: "block", path: "/dev/vg0/b-data" },
          backingStore: [],
        }),
        fileDisk({ target: "vdc", format: "qcow2", path: "/srv/c.qcow2", dataStore: { type: "network" }, backingStore: [] }),
      ]),
    ).toEqual([
      { path: "/srv/a.qcow2", suffix: "", perms: "rwk", source: "disk vda" },
      { path: "/srv/a.data", suffix: "", perms: "rwk", source: "disk vda data-file" },
      { path: "/srv/b.qcow2", suffix: "", perms: "rk", source: "disk vdb" },
      { path: "/dev/vg0/b-data", suffix: "", perms: "rk", source: "disk vdb data-file" },
      { path: "/srv/c.qcow2", suffix: "", perms: "rwk", source: "disk vdc" },
    ]);
  });

  it.each([
    [fileDisk({ path: "images/vm1.img" }), "images/vm1.img", "disk vda"],
    [fileDisk({ type: "dir", path: "vvfat" }), "vvfat", "disk vda"],
    [fileDisk({ type: "vhostuser", path: "vhost.sock" }), "vhost.sock", "disk vda"],
    [fileDisk({ path: "/srv/a.img", reservationsSocket: "pr.sock" }), "pr.sock", "disk vda reservations"],
    [fileDisk({ path: "/srv/a.qcow2", backingStore: [{ type: "file", path: "base.qcow2" }] }), "base.qcow2", "disk vda backing 1"],
    [fileDisk({ path: "/srv/a.qcow2", dataStore: { type: "file", path: "a.data" } }), "a.data", "disk vda data-file"],
    [fileDisk({ path: "" }), "", "disk vda"],
    [fileDisk({ type: "network", backingStore: [{ type: "file", path: "base.img" }] }), "base.img", "disk vda backing 1"],
  ])("rejects a relative path, naming the element (%#)", (disk, bad, element) => {
    expectPathError(() => disksRules([disk]), bad, `${element}: path is not absolute`);
  });
});

describe("diskRules: <backingStore> from the XML", () => {
  it("grants each layer rk, numbered from 1, and a local layer below a network layer too (libvirt passes every layer as its own -blockdev)", () => {
    const disk = fileDisk({
      format: "qcow2",
      path: "/var/lib/libvirt/images/top.qcow2",
      backingStore: [
        { type: "file", path: "/var/lib/libvirt/images/mid.qcow2", format: "qcow2" },
        { type: "block", path: "/dev/vg0/base", format: "raw" },
        { type: "network", format: "raw" },
        { type: "file", path: "/srv/below-network.img" },
      ],
    });
    expect(disksRules([disk])).toEqual([
      { path: "/var/lib/libvirt/images/top.qcow2", suffix: "", perms: "rwk", source: "disk vda" },
      { path: "/var/lib/libvirt/images/mid.qcow2", suffix: "", perms: "rk", source: "disk vda backing 1" },
      { path: "/dev/vg0/base", suffix: "", perms: "rk", source: "disk vda backing 2" },
      { path: "/srv/below-network.img", suffix: "", perms: "rk", source: "disk vda backing 4" },
    ]);
  });

  it("keeps deeper layers rk under a read-only top, and grants nothing more for <backingStore/>", () => {
    expect(
      disksRules([
        fileDisk({ format: "qcow2", readonly: true, path: "/srv/ro.qcow2", backingStore: [{ type: "file", path: "/srv/base.qcow2" }] }),
        fileDisk({ target: "vdb", format: "qcow2", path: "/srv/flat.qcow2", backingStore: [] }),
      ]),
    ).toEqual([
      { path: "/srv/ro.qcow2", suffix: "", perms: "rk", source: "disk vda" },
      { path: "/srv/base.qcow2", suffix: "", perms: "rk", source: "disk vda backing 1" },
      { path: "/srv/flat.qcow2", suffix: "", perms: "rwk", source: "disk vdb" },
    ]);
  });

  it("rejects a chain deeper than the limit", () => {
    const backingStore = Array.from({ length: 4 }, (_, i) => ({ type: "file", path: `/srv/l${i}.qcow2` }));
    expectPathError(
      () => disksRules([fileDisk({ format: "qcow2", path: "/srv/top.qcow2", backingStore })], undefined, 3),
      "disk vda",
      "backing chain is deeper than 3 layers",
    );
  });
});

describe("diskRules: type='volume'", () => {
  const volumeDisk = (pool: string, volume: string, extra: Partial<Disk> = {}) =>
    fileDisk({ type: "volume", volume: { pool, volume }, ...extra });

  it("resolves a dir pool volume to <target path>/<volume>", () => {
    const r = root();
    writeHostFile(
      r,
      "/etc/libvirt/storage/default.xml",
      `<!-- WARNING: auto-generated by libvirt -->
<pool type='dir'>
  <name>default</name>
  <uuid>0b1e3c9a-8f0e-4bb0-9d55-3f6c1e2d4a11</uuid>
  <capacity unit='bytes'>0</capacity>
  <source>
  </source>
  <target>
    <path>/var/lib/libvirt/images</path>
  </target>
</pool>
`,
    );
    expect(disksRules([volumeDisk("default", "vm1.img"), volumeDisk("default", "seed.iso", { target: "sda", readonly: true })], r)).toEqual([
      { path: "/var/lib/libvirt/images/vm1.img", suffix: "", perms: "rwk", source: "disk vda" },
      { path: "/var/lib/libvirt/images/seed.iso", suffix: "", perms: "rk", source: "disk sda" },
    ]);
  });

  it("resolves netfs pools with a trailing slash and entity-escaped paths", () => {
    const r = root();
    writeHostFile(r, "/etc/libvirt/storage/nfs.xml", "<pool type='netfs'><name>nfs</name><target><path>/mnt/a&amp;b/</path></target></pool>");
    expect(disksRules([volumeDisk("nfs", "disk.raw")], r)).toEqual([
      { path: "/mnt/a&b/disk.raw", suffix: "", perms: "rwk", source: "disk vda" },
    ]);
  });

  it("resolves a logical pool volume to /dev/<volume group>/<volume>", () => {
    const r = root();
    writeHostFile(
      r,
      "/etc/libvirt/storage/lvm.xml",
      "<pool type='logical'><name>lvm</name><source><device path='/dev/sdb1'/><name>vg_guests</name><format type='lvm2'/></source><target><path>/dev/vg_guests</path></target></pool>",
    );
    writeHostFile(r, "/etc/libvirt/storage/vg1.xml", "<pool type='logical'><name>vg1</name></pool>");
    expect(disksRules([volumeDisk("lvm", "vm1-root", { type: "volume" }), volumeDisk("vg1", "data", { target: "vdb" })], r)).toEqual([
      { path: "/dev/vg_guests/vm1-root", suffix: "", perms: "rwk", source: "disk vda" },
      { path: "/dev/vg1/data", suffix: "", perms: "rwk", source: "disk vdb" },
    ]);
  });

  it("rejects a pool type libvirt does not have, naming the file", () => {
    const r = root();
    writeHostFile(r, "/etc/libvirt/storage/san.xml", "<pool type='fibre'><name>san</name><target><path>/dev/disk/by-path</path></target></pool>");
    expectPathError(
      () => disksRules([volumeDisk("san", "unit:0:0:1")], r),
      "disk vda",
      'volume unit:0:0:1 in pool san: pool type "fibre" (in /etc/libvirt/storage/san.xml) is not one libvirt\'s storage driver has; fix the pool definition',
    );
  });

  it("rejects a missing pool, hostile names, a DTD and a pool without a target path", () => {
    const r = root();
    writeHostFile(r, "/etc/libvirt/storage/evil.xml", `<!DOCTYPE pool [<!ENTITY x "y">]><pool type='dir'><target><path>/srv/&x;</path></target></pool>`);
    writeHostFile(r, "/etc/libvirt/storage/notarget.xml", "<pool type='dir'><name>notarget</name></pool>");
    writeHostFile(r, "/etc/libvirt/storage/broken.xml", "<pool type='dir'><target>");
    const cases: [string, string, string][] = [
      ["nope", "a.img", "pool definition not found in /etc/libvirt/storage or /run/libvirt/storage; define the pool (virsh pool-define) or use a <disk type='file'|'block'> with the volume's path"],
      ["../../../etc/shadow", "a.img", "pool name is not a plain file name"],
      ["default", "../../../etc/shadow", "volume name is not a plain file name"],
      ["default", "..", "volume name is not a plain file name"],
      ["evil", "a.img", "pool definition /etc/libvirt/storage/evil.xml carries a DTD"],
      ["notarget", "a.img", "the dir pool's definition (/etc/libvirt/storage/notarget.xml) has no absolute <target><path>"],
    ];
    for (const [pool, volume, why] of cases) {
      expectPathError(() => disksRules([volumeDisk(pool, volume)], r), "disk vda", `volume ${volume} in pool ${pool}: ${why}`);
    }
    expect(() => disksRules([volumeDisk("broken", "a.img")], r)).toThrow(/^disk vda: volume a\.img in pool broken: pool definition \/etc\/libvirt\/storage\/broken\.xml is not well-formed XML/);
  });

  it("refuses an oversized pool definition without parsing it", () => {
    const r = root();
    writeHostFile(r, "/etc/libvirt/storage/big.xml", `<pool type='dir'>${" ".repeat(70_000)}</pool>`);
    expectPathError(
      () => disksRules([volumeDisk("big", "a.img")], r),
      "disk vda",
      "volume a.img in pool big: pool definition /etc/libvirt/storage/big.xml is larger than 65536 bytes",
    );
  });
});

describe("filesystemRules", () => {
  const fsRules = (...filesystems: Filesystem[]) => filesystemRules(ruleContext(baseDomain({ devices: { filesystems } })));
  const mount = (o: Partial<Filesystem>): Filesystem => ({ type: "mount", readonly: false, ...o });

  it("grants a 9p share recursively, rwl (link, as libvirt 10+) or r", () => {
    expect(
      fsRules(
        mount({ source: "/srv/share", target: "share" }),
        mount({ driver: "path", accessmode: "mapped", source: "/srv/ro", target: "ro", readonly: true }),
        mount({ driver: "handle", source: "/srv/h", target: "h" }),
      ),
    ).toEqual([
      { path: "/srv/share", suffix: "{,/**}", perms: "rwl", source: "filesystem share" },
      { path: "/srv/ro", suffix: "{,/**}", perms: "r", source: "filesystem ro" },
      { path: "/srv/h", suffix: "{,/**}", perms: "rwl", source: "filesystem h" },
    ]);
  });

  it("grants virtiofs only an external daemon's socket, never the shared tree", () => {
    expect(
      fsRules(
        mount({ driver: "virtiofs", source: "/srv/tree", target: "tree" }),
        mount({ driver: "virtiofs", socket: "/run/virtiofsd/vm1.sock", target: "ext" }),
      ),
    ).toEqual([{ path: "/run/virtiofsd/vm1.sock", suffix: "", perms: "rw", source: "filesystem ext" }]);
  });

  it("grants file/block filesystems like disks and nothing for ram, bind or a sourceless mount", () => {
    expect(
      fsRules(
        { type: "file", driver: "loop", source: "/srv/fs.img", target: "img", readonly: false },
        { type: "block", driver: "nbd", source: "/dev/sdc", target: "blk", readonly: true },
        { type: "ram", target: "ram", readonly: false },
        { type: "bind", source: "/srv/bind", target: "bind", readonly: false },
        mount({ target: "nosource" }),
      ),
    ).toEqual([
      { path: "/srv/fs.img", suffix: "", perms: "rwk", source: "filesystem img" },
      { path: "/dev/sdc", suffix: "", perms: "rk", source: "filesystem blk" },
    ]);
  });

  it.each([
    [mount({ source: "share", target: "t" }), "share", "filesystem t"],
    [mount({ driver: "virtiofs", socket: "vfs.sock" }), "vfs.sock", "filesystem 0"],
    [{ type: "file", source: "fs.img", readonly: false } as Filesystem, "fs.img", "filesystem 0"],
  ])("rejects a relative path, naming the element (%#)", (f, bad, element) => {
    expectPathError(() => fsRules(f), bad, `${element}: path is not absolute`);
  });
});

describe("diskRules: chains read from real qcow2 headers (qemu-img)", () => {
  const IMAGES = "/var/lib/libvirt/images";

  /**
   * Under the temp root: base.qcow2 ← mid.qcow2 (relative backing name) ← top.qcow2 (absolute
   * host backing name, external data file /var/lib/libvirt/images/top.data).
   */
  function makeChain(): string {
    const r = root();
    const dir = path.join(r, IMAGES);
    fs.mkdirSync(dir, { recursive: true });
    const qemuImg = (...args: string[]) => execFileSync("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", ...args], { cwd: dir });
    qemuImg("base.qcow2", "1M");
    qemuImg("-b", "base.qcow2", "-F", "qcow2", "mid.qcow2");
    // qemu-img would create an absolute data file name on the real host, so create it under a
    // relative placeholder of the same length and then write the host path into the header.
    const dataFile = `${IMAGES}/top.data`;
    const placeholder = "p".repeat(dataFile.length - "top.data".length) + "top.data";
    qemuImg("-u", "-b", `${IMAGES}/mid.qcow2`, "-F", "qcow2", "-o", `data_file=${placeholder}`, "top.qcow2", "1M");
    const top = path.join(dir, "top.qcow2");
    const header = fs.readFileSync(top);
    const at = header.indexOf(placeholder);
    expect(at).toBeGreaterThan(0);
    header.write(dataFile, at, "latin1");
    fs.writeFileSync(top, header);
    fs.renameSync(path.join(dir, placeholder), path.join(dir, "top.data"));
    return r;
  }

  const dataStore = { type: "file", path: `${IMAGES}/top.data` };

  it("walks the headers when the XML has no <backingStore> (prepare XML); the data file comes from <dataStore>", () => {
    const r = makeChain();
    expect(disksRules([fileDisk({ format: "qcow2", path: `${IMAGES}/top.qcow2`, dataStore })], r)).toEqual([
      { path: `${IMAGES}/top.qcow2`, suffix: "", perms: "rwk", source: "disk vda" },
      { path: `${IMAGES}/top.data`, suffix: "", perms: "rwk", source: "disk vda data-file" },
      { path: `${IMAGES}/mid.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 1" },
      { path: `${IMAGES}/base.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 2" },
    ]);
  });

  it("refuses a top data file named only by the header, writable or not", () => {
    const r = makeChain();
    for (const readonly of [false, true]) {
      expectPathError(
        () => disksRules([fileDisk({ format: "qcow2", readonly, path: `${IMAGES}/top.qcow2` })], r),
        `${IMAGES}/top.data`,
        `disk vda data-file: named only by the header of ${IMAGES}/top.qcow2: the top image's data file must be declared with <dataStore> in the domain XML`,
      );
    }
  });

  it("keeps the data file read-only under a read-only top", () => {
    const r = makeChain();
    expect(disksRules([fileDisk({ format: "qcow2", readonly: true, path: `${IMAGES}/top.qcow2`, dataStore })], r).map((x) => [x.source, x.perms])).toEqual([
      ["disk vda", "rk"],
      ["disk vda data-file", "rk"],
      ["disk vda backing 1", "rk"],
      ["disk vda backing 2", "rk"],
    ]);
  });

  it("takes the layers from <backingStore> and reads no header at all (no data file without <dataStore>)", () => {
    const r = makeChain();
    const disk = fileDisk({
      format: "qcow2",
      path: `${IMAGES}/top.qcow2`,
      backingStore: [{ type: "file", path: `${IMAGES}/mid.qcow2`, format: "qcow2" }],
    });
    expect(disksRules([disk], r)).toEqual([
      { path: `${IMAGES}/top.qcow2`, suffix: "", perms: "rwk", source: "disk vda" },
      { path: `${IMAGES}/mid.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 1" },
    ]);
  });

  it("never reads the header of a disk declared raw (or without a format), whatever it contains", () => {
    const r = makeChain();
    // The guest owns a raw disk's contents and can write a qcow2 header naming any host file.
    expect(
      disksRules([fileDisk({ format: "raw", path: `${IMAGES}/top.qcow2` }), fileDisk({ target: "vdb", format: undefined, path: `${IMAGES}/mid.qcow2` })], r),
    ).toEqual([
      { path: `${IMAGES}/top.qcow2`, suffix: "", perms: "rwk", source: "disk vda" },
      { path: `${IMAGES}/mid.qcow2`, suffix: "", perms: "rwk", source: "disk vdb" },
    ]);
  });

  it("grants only the top of an image that does not exist (nothing to read yet)", () => {
    expect(disksRules([fileDisk({ format: "qcow2", path: `${IMAGES}/missing.qcow2` })], root())).toEqual([
      { path: `${IMAGES}/missing.qcow2`, suffix: "", perms: "rwk", source: "disk vda" },
    ]);
  });

  it("follows a volume disk's chain too", () => {
    const r = makeChain();
    writeHostFile(r, "/etc/libvirt/storage/default.xml", `<pool type='dir'><name>default</name><target><path>${IMAGES}</path></target></pool>`);
    expect(disksRules([fileDisk({ type: "volume", format: "qcow2", volume: { pool: "default", volume: "mid.qcow2" } })], r)).toEqual([
      { path: `${IMAGES}/mid.qcow2`, suffix: "", perms: "rwk", source: "disk vda" },
      { path: `${IMAGES}/base.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 1" },
    ]);
  });
});

describe("diskRules: chains the XML states completely, layers' data files, network tops, vDPA", () => {
  const IMAGES = "/var/lib/libvirt/images";

  /** base.qcow2 ← mid.qcow2 (external data file mid.data, relative) ← top.qcow2, all relative names. */
  function dataFileChain(): string {
    const r = root();
    const dir = path.join(r, IMAGES);
    fs.mkdirSync(dir, { recursive: true });
    const qemuImg = (...args: string[]) => execFileSync("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", ...args], { cwd: dir });
    qemuImg("base.qcow2", "1M");
    qemuImg("-b", "base.qcow2", "-F", "qcow2", "-o", "data_file=mid.data", "mid.qcow2", "1M");
    qemuImg("-u", "-b", "mid.qcow2", "-F", "qcow2", "top.qcow2", "1M");
    return r;
  }

  /** The XML chain libvirt writes at start for dataFileChain (libvirt 9: no <dataStore> on layers). */
  const startChain = [
    { type: "file", path: `${IMAGES}/mid.qcow2`, format: "qcow2" },
    { type: "file", path: `${IMAGES}/base.qcow2`, format: "qcow2" },
  ];

  /** A context whose grantedBefore answers from `prepared` (what prepare's `.files` granted). */
  function startContext(disks: Disk[], r: string, prepared: { path: string; perms: string }[]) {
    const ctx = ruleContext(baseDomain({ devices: { disks } }), r);
    const granted = new Map(prepared.map((x) => [x.path, x.perms]));
    return { ...ctx, images: { ...ctx.images, grantedBefore: (p: string) => granted.get(p) } };
  }

  const expected = [
    { path: `${IMAGES}/top.qcow2`, suffix: "", perms: "rwk", source: "disk vda" },
    { path: `${IMAGES}/mid.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 1" },
    { path: `${IMAGES}/mid.data`, suffix: "", perms: "rk", source: "disk vda backing 1 data-file" },
    { path: `${IMAGES}/base.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 2" },
  ];

  it("prepare → start: a backing layer's data file granted at prepare is still granted at start", () => {
    const r = dataFileChain();
    const prepared = disksRules([fileDisk({ format: "qcow2", path: `${IMAGES}/top.qcow2` })], r);
    expect(prepared).toEqual([expected[0], expected[1], expected[2], expected[3]]);
    const disk = fileDisk({ format: "qcow2", path: `${IMAGES}/top.qcow2`, backingStore: startChain });
    const started = diskRules(startContext([disk], r, prepared));
    // Same set; the start XML lists the layers first, then the data file read from layer 1's header.
    expect(started).toEqual([expected[0], expected[1], expected[3], expected[2]]);
  });

  it("negative control: at start the layer's data file must have been granted at prepare", () => {
    const r = dataFileChain();
    const disk = fileDisk({ format: "qcow2", path: `${IMAGES}/top.qcow2`, backingStore: startChain });
    const prepared = [expected[0]!, expected[1]!, expected[3]!];
    expectPathError(
      () => diskRules(startContext([disk], r, prepared)),
      `${IMAGES}/mid.data`,
      "disk vda backing 1 data-file: not granted at all when the guest was prepared; start and reconnect never add an image file (restart the guest)",
    );
  });

  it("a layer's <dataStore> (libvirt 10.10+) replaces its header's data file name", () => {
    const r = dataFileChain();
    const disk = fileDisk({
      format: "qcow2",
      path: `${IMAGES}/top.qcow2`,
      backingStore: [{ ...startChain[0]!, dataStore: { type: "file", path: `${IMAGES}/mid.data` } }, startChain[1]!],
    });
    expect(disksRules([disk], r)).toEqual([expected[0], expected[1], expected[2], expected[3]]);
  });

  describe("a complete XML chain is used as is; the top's header is not read", () => {
    /** top.qcow2 holds garbage where a qcow2 header should be; base.qcow2 is a real image. */
    function garbageTop(): string {
      const r = root();
      const dir = path.join(r, IMAGES);
      fs.mkdirSync(dir, { recursive: true });
      execFileSync("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", "base.qcow2", "1M"], { cwd: dir });
      // QFI magic, then a version and header fields no qcow2 reader accepts.
      fs.writeFileSync(path.join(dir, "top.qcow2"), Buffer.concat([Buffer.from("QFI\xfb", "latin1"), Buffer.alloc(508, 0xff)]));
      return r;
    }
    const base = { type: "file", path: `${IMAGES}/base.qcow2`, format: "qcow2" };

    it("garbage top header + complete chain (ends in <backingStore/>) → the XML's rules", () => {
      const r = garbageTop();
      expect(disksRules([fileDisk({ format: "qcow2", path: `${IMAGES}/top.qcow2`, backingStore: [base] })], r)).toEqual([
        { path: `${IMAGES}/top.qcow2`, suffix: "", perms: "rwk", source: "disk vda" },
        { path: `${IMAGES}/base.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 1" },
      ]);
    });

    it("a garbage header in an XML-stated backing layer does not fail the chain either (no data file learnt from it)", () => {
      const r = garbageTop();
      const layer = { type: "file", path: `${IMAGES}/top.qcow2`, format: "qcow2" };
      expect(disksRules([fileDisk({ format: "raw", path: `${IMAGES}/base.qcow2`, backingStore: [layer] })], r)).toEqual([
        { path: `${IMAGES}/base.qcow2`, suffix: "", perms: "rwk", source: "disk vda" },
        { path: `${IMAGES}/top.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 1" },
      ]);
    });

    it("negative control: without <backingStore> the top's header is read and refused", () => {
      const r = garbageTop();
      const disk = fileDisk({ format: "qcow2", path: `${IMAGES}/top.qcow2` });
      expect(() => disksRules([disk], r)).toThrow(/^\/var\/lib\/libvirt\/images\/top\.qcow2: disk vda: (corrupt|unsupported|qcow2)/);
    });
  });

  describe("an open XML chain (no closing <backingStore/>): libvirt probes only below its last layer", () => {
    // docs/kbase/backing_chains.rst: "probing from the last specified <backingStore>. Any image
    // specified explicitly will not be probed". The top's header is never read.
    const GOLDEN = "/srv/golden";
    /** top.qcow2 (garbage header) in IMAGES; base.qcow2 in /srv/golden, backed by `baseBacking` if given. */
    function openChainRoot(baseBacking?: string): string {
      const r = root();
      const dir = path.join(r, IMAGES);
      const golden = path.join(r, GOLDEN);
      fs.mkdirSync(dir, { recursive: true });
      fs.mkdirSync(golden, { recursive: true });
      fs.mkdirSync(path.join(r, "/srv/other"), { recursive: true });
      fs.writeFileSync(path.join(dir, "top.qcow2"), Buffer.concat([Buffer.from("QFI\xfb", "latin1"), Buffer.alloc(508, 0xff)]));
      execFileSync("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", "base0.qcow2", "1M"], { cwd: golden });
      execFileSync("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", "base0.qcow2", "1M"], { cwd: path.join(r, "/srv/other") });
      const backing = baseBacking === undefined ? [] : ["-u", "-b", baseBacking, "-F", "qcow2"];
      execFileSync("/usr/bin/qemu-img", ["create", "-q", "-f", "qcow2", ...backing, "base.qcow2", "1M"], { cwd: golden });
      return r;
    }
    const base = { type: "file", path: `${GOLDEN}/base.qcow2`, format: "qcow2" };
    const openDisk = () => fileDisk({ format: "qcow2", path: `${IMAGES}/top.qcow2`, backingStore: [base], backingOpen: true });

    it("garbage top header + open chain [base] → the XML's rules, the top's header unread", () => {
      expect(disksRules([openDisk()], openChainRoot())).toEqual([
        { path: `${IMAGES}/top.qcow2`, suffix: "", perms: "rwk", source: "disk vda" },
        { path: `${GOLDEN}/base.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 1" },
      ]);
    });

    it("the last XML layer's header is walked: base0 beside base (outside the top's tree) → backing 2", () => {
      expect(disksRules([openDisk()], openChainRoot("base0.qcow2"))).toEqual([
        { path: `${IMAGES}/top.qcow2`, suffix: "", perms: "rwk", source: "disk vda" },
        { path: `${GOLDEN}/base.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 1" },
        { path: `${GOLDEN}/base0.qcow2`, suffix: "", perms: "rk", source: "disk vda backing 2" },
      ]);
    });

    it("negative control: a layer base's header names outside both trees is refused", () => {
      expectPathError(
        () => disksRules([openDisk()], openChainRoot("../other/base0.qcow2")),
        "/srv/other/base0.qcow2",
        `disk vda backing 2: named only by the header of ${GOLDEN}/base.qcow2: outside ${IMAGES} and ${GOLDEN}, the directory tree of the disk image (name the layer in <backingStore> to grant it)`,
      );
    });

    it("the domain parser tells a complete chain from an open one", async () => {
      const { parseDomain } = await import("../../src/domain/index.js");
      const xml = (chain: string) =>
        `<domain type='kvm'><name>g</name><uuid>6a1b9c3e-2f4d-4e5a-8b7c-0d1e2f3a4b5c</uuid><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${IMAGES}/top.qcow2'/>${chain}<target dev='vda'/></disk></devices></domain>`;
      const layer = (inner: string) => `<backingStore type='file'><format type='qcow2'/><source file='${IMAGES}/base.qcow2'/>${inner}</backingStore>`;
      const disk = (chain: string) => parseDomain(xml(chain)).devices.disks[0]!;
      expect([disk(layer("<backingStore/>")).backingOpen, disk(layer("")).backingOpen, disk("<backingStore/>").backingOpen, disk("").backingStore]).toEqual([
        undefined,
        true,
        undefined,
        undefined,
      ]);
    });
  });

  it("a network disk's local backing layers get read rules (and network layers none)", () => {
    expect(
      disksRules([
        fileDisk({
          type: "network",
          format: "qcow2",
          backingStore: [
            { type: "network", format: "qcow2" },
            { type: "file", path: "/var/lib/libvirt/images/base.qcow2", format: "raw" },
            { type: "block", path: "/dev/vg0/golden", format: "raw" },
          ],
        }),
        fileDisk({ type: "network", target: "vdb", format: "raw", backingStore: [] }),
      ]),
    ).toEqual([
      { path: "/var/lib/libvirt/images/base.qcow2", suffix: "", perms: "rk", source: "disk vda backing 2" },
      { path: "/dev/vg0/golden", suffix: "", perms: "rk", source: "disk vda backing 3" },
    ]);
  });

  it("a vDPA disk gets its vhost-vdpa device rw, with origin disk-vdpa", () => {
    const ctx = ruleContext(baseDomain({ devices: { disks: [fileDisk({ type: "vhostvdpa", format: "raw", path: "/dev/vhost-vdpa-0" })] } }));
    expect(diskRulesWithOrigin(ctx)).toEqual([{ path: "/dev/vhost-vdpa-0", suffix: "", perms: "rw", source: "disk vda", origin: { kind: "disk-vdpa" } }]);
  });

  it.each([["/dev/sda"], ["/dev/vhost-net"], ["/dev/vhost-vdpa-0/../sda"], ["/srv/vdpa"]])("negative control: a vhostvdpa disk on %s is refused naming the disk", (dev) => {
    expectPathError(
      () => disksRules([fileDisk({ type: "vhostvdpa", format: "raw", path: dev })]),
      dev,
      "disk vda: a vhostvdpa disk's source must be a vhost-vdpa device (/dev/vhost-vdpa-N)",
    );
  });
});
