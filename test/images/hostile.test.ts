import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostFs } from "../../src/hostfs.js";
import { discoverChain } from "../../src/images/index.js";
import { forgetBackingFormat, ImageRoot, pathErrorOf, qcow2Header, walkOf } from "./helpers.js";

let root: ImageRoot;
beforeEach(() => {
  root = new ImageRoot();
});
afterEach(() => root.cleanup());

const BACKING_FORMAT = 0xe2792aca;
const DATA_FILE = 0x44415441;

/** A real qcow2 image (from qemu-img) whose header names /etc/shadow as its raw backing file. */
function plantFakeHeader(hostPath: string): void {
  root.write("/etc/shadow", "secret\n");
  root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", "/etc/shadow", "fake.qcow2", "1M");
  fs.renameSync(root.real("/images/fake.qcow2"), root.real(hostPath));
}

describe("the top image is read only when the declared format says so", () => {
  it("never reads a raw or format-less top, even one carrying a qcow2 header", () => {
    plantFakeHeader("/images/guest.img");
    expect(discoverChain(root.fs, "/images/guest.img", "raw", 64, walkOf(root.fs))).toStrictEqual([]);
    expect(discoverChain(root.fs, "/images/guest.img", undefined, 64, walkOf(root.fs))).toStrictEqual([]);
    expect(discoverChain(root.fs, "/images/guest.img", "luks", 64, walkOf(root.fs))).toStrictEqual([]);
    // The same bytes declared as qcow2 do name /etc/shadow: the header is real, the format decides.
    expect(discoverChain(root.fs, "/images/guest.img", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/etc/shadow", format: "raw", kind: "backing", depth: 1 },
    ]);
  });

  it("does not even open a raw top (a FIFO top would hang an open without O_NONBLOCK)", () => {
    root.mkdir("/images");
    execFileSync("/usr/bin/mkfifo", [root.real("/images/pipe")]);
    expect(discoverChain(root.fs, "/images/pipe", "raw", 64, walkOf(root.fs))).toStrictEqual([]);
  });

  it("does not read a raw backing layer recorded as raw", () => {
    plantFakeHeader("/images/base.img");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "base.img", "top.qcow2");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/base.img", format: "raw", kind: "backing", depth: 1 },
    ]);
  });
});

describe("backing files that are not images", () => {
  function topNaming(name: string): void {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", name, "top.qcow2", "1M");
  }

  it("refuses a FIFO without opening it", () => {
    root.mkdir("/images");
    execFileSync("/usr/bin/mkfifo", [root.real("/images/fifo")]);
    topNaming("fifo");
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/fifo",
      reason: "backing file is a FIFO (named by /images/top.qcow2)",
    });
  });

  it("refuses a socket", async () => {
    root.mkdir("/images");
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(root.real("/images/sock"), resolve));
    try {
      topNaming("sock");
      expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
        path: "/images/sock",
        reason: "backing file is a socket (named by /images/top.qcow2)",
      });
    } finally {
      server.close();
    }
  });

  it("refuses a character device", () => {
    // A device node inside the root: symlinks are resolved inside it, so a link to the host's
    // /dev/zero would name <root>/dev/zero, which does not exist.
    root.mkdir("/images");
    execFileSync("mknod", [root.real("/images/zero"), "c", "1", "5"]);
    topNaming("zero");
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/zero",
      reason: "backing file is a character device (named by /images/top.qcow2)",
    });
  });

  it("refuses a directory", () => {
    root.mkdir("/images/dir");
    topNaming("dir");
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/dir",
      reason: "backing file is a directory (named by /images/top.qcow2)",
    });
  });
});

describe("block devices", () => {
  it("accepts a block device backing layer and does not probe it when no format is recorded", () => {
    // A block device node (loop7's numbers) inside the root; stat sees its type without opening it.
    root.mkdir("/dev");
    execFileSync("mknod", [root.real("/dev/base-lv"), "b", "7", "7"]);
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", "/dev/base-lv", "top.qcow2", "1M");
    forgetBackingFormat(root.real("/images/top.qcow2"));
    const counting = new CountingFs(root.fs.layout);
    expect(discoverChain(counting, "/images/top.qcow2", "qcow2", 64, walkOf(counting))).toStrictEqual([
      { path: "/dev/base-lv", format: "raw", kind: "backing", depth: 1 },
    ]);
    expect(counting.opened).toStrictEqual(["/images/top.qcow2"]);
  });
});

describe("backing file names", () => {
  function topNaming(name: string, format = "qcow2"): void {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", format, "-b", name, "top.qcow2", "1M");
  }

  it("stops at a network layer: nothing to grant", () => {
    for (const name of ["nbd:localhost:10809", "nbd://host/export", "http://example.org/base.qcow2", "rbd:pool/image", "gluster://h/v/i"]) {
      topNaming(name, "raw");
      expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)), name).toStrictEqual([]);
    }
  });

  it("strips file: from an absolute name", () => {
    root.write("/pool/base.raw", "");
    topNaming("file:/pool/base.raw", "raw");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/pool/base.raw", format: "raw", kind: "backing", depth: 1 },
    ]);
  });

  it("refuses file: followed by a relative name (QEMU would open it relative to its working directory)", () => {
    topNaming("file:base.raw", "raw");
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/top.qcow2",
      reason: 'backing file name file:base.raw is relative behind "file:"; use an absolute name',
    });
  });

  it("refuses the json: pseudo-protocol", () => {
    topNaming('json:{"driver":"raw","file":{"driver":"file","filename":"/etc/shadow"}}', "raw");
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/top.qcow2",
      reason: 'backing file name json:{"driver":"raw","file":{"driver":"file","fi... is not supported',
    });
  });

  it("refuses a backing format it cannot follow", () => {
    root.write("/images/old.qcow", "");
    topNaming("old.qcow", "qcow");
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/old.qcow",
      reason: 'backing file format "qcow" is not supported',
    });
  });
});

describe("corrupt qcow2 headers (written by hand)", () => {
  function chainOf(header: Buffer) {
    root.write("/images/bad.qcow2", header);
    return () => discoverChain(root.fs, "/images/bad.qcow2", "qcow2", 64, walkOf(root.fs));
  }
  function reasonFor(header: Buffer): string {
    const err = pathErrorOf(chainOf(header));
    expect(err.path).toBe("/images/bad.qcow2");
    return err.reason;
  }
  const name = (s: string) => Buffer.from(s, "latin1");

  it("reads a well-formed hand-made header (the baseline for the cases below)", () => {
    root.write("/images/base.raw", "");
    expect(chainOf(qcow2Header({ backingOffset: 512n, backingSize: 8, backingName: name("base.raw"), extensions: [[BACKING_FORMAT, name("raw")]] }))()).toStrictEqual([
      { path: "/images/base.raw", format: "raw", kind: "backing", depth: 1 },
    ]);
  });

  it("a truncated header", () => {
    expect(reasonFor(qcow2Header({}).subarray(0, 50))).toBe("corrupt qcow2 header: truncated (50 bytes)");
    expect(reasonFor(qcow2Header({}).subarray(0, 90))).toBe("corrupt qcow2 header: truncated (90 bytes)");
  });

  it("a bad magic or version", () => {
    const h = qcow2Header({});
    h.write("QFI\xfa", 0, "latin1");
    expect(reasonFor(h)).toBe("corrupt qcow2 header: bad magic");
    expect(reasonFor(qcow2Header({ version: 4 }))).toBe("corrupt qcow2 header: unsupported version 4");
  });

  it("a huge or 'negative' backing file offset", () => {
    expect(reasonFor(qcow2Header({ backingOffset: 0xffffffffffffffffn, backingSize: 8 }))).toBe(
      "corrupt qcow2 header: backing file offset 18446744073709551615 is outside the first cluster",
    );
    expect(reasonFor(qcow2Header({ backingOffset: 65537n, backingSize: 8 }))).toBe(
      "corrupt qcow2 header: backing file offset 65537 is outside the first cluster",
    );
  });

  it("a huge or 'negative' backing name length", () => {
    expect(reasonFor(qcow2Header({ backingOffset: 512n, backingSize: 0xffffffff }))).toBe(
      "corrupt qcow2 header: backing file name length 4294967295 is too long",
    );
    expect(reasonFor(qcow2Header({ backingOffset: 512n, backingSize: 1024 }))).toBe(
      "corrupt qcow2 header: backing file name length 1024 is too long",
    );
    // Within 1023 bytes but past the end of the first cluster.
    expect(reasonFor(qcow2Header({ clusterBits: 9, backingOffset: 500n, backingSize: 100 }))).toBe(
      "corrupt qcow2 header: backing file name length 100 is too long",
    );
  });

  it("a backing name past the end of the file", () => {
    expect(reasonFor(qcow2Header({ backingOffset: 512n, backingSize: 100, length: 520 }))).toBe(
      "corrupt qcow2 header: backing file name runs past the end of the file",
    );
  });

  it("NUL and non-UTF-8 bytes in names", () => {
    expect(reasonFor(qcow2Header({ backingOffset: 512n, backingSize: 12, backingName: name("/a\0/etc/pwd") }))).toBe(
      "corrupt qcow2 header: backing file name contains a NUL byte",
    );
    expect(reasonFor(qcow2Header({ backingOffset: 512n, backingSize: 4, backingName: Buffer.from([0x2f, 0xff, 0xfe, 0x61]) }))).toBe(
      "corrupt qcow2 header: backing file name is not valid UTF-8",
    );
  });

  it("an unsupported cluster size", () => {
    expect(reasonFor(qcow2Header({ clusterBits: 40 }))).toBe("corrupt qcow2 header: unsupported cluster size 2^40");
  });

  it("header extensions that are too large, too long or run past what we read", () => {
    const big = qcow2Header({});
    big.writeUInt32BE(0x12345678, 104);
    big.writeUInt32BE(0xfffffff0, 108);
    expect(reasonFor(big)).toBe("corrupt qcow2 header: header extension too large");
    expect(reasonFor(qcow2Header({ extensions: [[BACKING_FORMAT, name("a".repeat(16))]] }))).toBe(
      "corrupt qcow2 header: backing format name length 16 is too long",
    );
    expect(reasonFor(qcow2Header({ extensions: [[0x12345678, Buffer.alloc(5000, 1)]] }))).toBe(
      "qcow2 header extensions run past the first 4096 bytes, which is not supported",
    );
  });

  it("a data file bit without a data file name, and over-long data file names", () => {
    expect(reasonFor(qcow2Header({ incompatible: 4n }))).toBe("qcow2 image needs an external data file but its header names none");
    expect(reasonFor(qcow2Header({ incompatible: 4n, extensions: [[DATA_FILE, name(`/${"a".repeat(4096)}`)]] }))).toBe(
      "qcow2 header extensions run past the first 4096 bytes, which is not supported",
    );
    expect(reasonFor(qcow2Header({ incompatible: 4n, extensions: [[DATA_FILE, name("/x\0y")]] }))).toBe(
      "corrupt qcow2 header: external data file name contains a NUL byte",
    );
  });

  it("ignores a data file extension without the incompatible feature bit, as QEMU does", () => {
    expect(chainOf(qcow2Header({ extensions: [[DATA_FILE, name("/etc/shadow")]] }))()).toStrictEqual([]);
  });
});

describe("corrupt qed and vmdk headers", () => {
  it("qed: a backing name outside the header, and an unknown feature", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qed", "-F", "raw", "-u", "-b", "base.raw", "top.qed", "1M");
    const good = fs.readFileSync(root.real("/images/top.qed"));
    const bad = Buffer.from(good);
    bad.writeUInt32LE(0xfffffff0, 56);
    root.write("/images/bad.qed", bad);
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/bad.qed", "qed", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/bad.qed",
      reason: "corrupt qed header: backing file name lies outside the header",
    });
    const unknown = Buffer.from(good);
    unknown.writeUInt32LE(0x105, 16);
    root.write("/images/bad.qed", unknown);
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/bad.qed", "qed", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/bad.qed",
      reason: "corrupt qed header: unknown feature bits 0x105",
    });
    root.write("/images/bad.qed", good.subarray(0, 40));
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/bad.qed", "qed", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/bad.qed",
      reason: "corrupt qed header: truncated (40 bytes)",
    });
  });

  it("vmdk: a sparse header with capacity 0 takes its extents from the embedded descriptor", () => {
    const file = Buffer.alloc(4096);
    file.write("KDMV", 0, "latin1");
    file.writeUInt32LE(1, 4); // version
    file.writeBigUInt64LE(0n, 12); // capacity 0: the embedded descriptor lists the extents
    file.writeBigUInt64LE(1n, 28); // descriptor at sector 1
    file.writeBigUInt64LE(2n, 36);
    file.write('version=1\ncreateType="twoGbMaxExtentFlat"\nRW 2048 FLAT "e1.raw" 0\nRW 2048 FLAT "/vm/e2.raw" 0\n', 512, "latin1");
    root.write("/vm/e.vmdk", file);
    root.write("/vm/e1.raw", "");
    root.write("/vm/e2.raw", "");
    expect(discoverChain(root.fs, "/vm/e.vmdk", "vmdk", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/vm/e1.raw", kind: "extent", depth: 0 },
      { path: "/vm/e2.raw", kind: "extent", depth: 0 },
    ]);
    // With a capacity the file is its own single extent and the descriptor's extent lines are not used.
    file.writeBigUInt64LE(2048n, 12);
    root.write("/vm/e.vmdk", file);
    expect(discoverChain(root.fs, "/vm/e.vmdk", "vmdk", 64, walkOf(root.fs))).toStrictEqual([]);
  });

  it("vmdk: a parentFileNameHint longer than PATH_MAX, or running past QEMU's 10 KiB window", () => {
    root.write("/vm/d.vmdk", `version=1\ncreateType="monolithicFlat"\nparentFileNameHint="/${"a".repeat(5000)}"\n`);
    expect(pathErrorOf(() => discoverChain(root.fs, "/vm/d.vmdk", "vmdk", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/vm/d.vmdk",
      reason: "corrupt vmdk descriptor: parentFileNameHint is longer than 4095 bytes",
    });
    root.write("/vm/d.vmdk", `version=1\ncreateType="monolithicFlat"\nparentFileNameHint="/${"a".repeat(12000)}"\n`);
    expect(pathErrorOf(() => discoverChain(root.fs, "/vm/d.vmdk", "vmdk", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/vm/d.vmdk",
      reason: "corrupt vmdk descriptor: parentFileNameHint has no closing quote",
    });
  });
});

/** The real HostFs, counting what it reads: proves reads stay small whatever the headers say. */
class CountingFs extends HostFs {
  bytes = 0;
  opened: string[] = [];
  override open(hostPath: string): number {
    this.opened.push(hostPath);
    return super.open(hostPath);
  }
  override readAt(fd: number, position: number, length: number): Buffer {
    const got = super.readAt(fd, position, length);
    this.bytes += got.length;
    return got;
  }
}

describe("bounded work", () => {
  it("reads a few KiB per layer of a 20-deep chain of large images", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "l20.qcow2", "1G");
    for (let i = 19; i >= 0; i--) {
      root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", `l${i + 1}.qcow2`, `l${i}.qcow2`);
    }
    const counting = new CountingFs(root.fs.layout);
    expect(discoverChain(counting, "/images/l0.qcow2", "qcow2", 64, walkOf(counting))).toHaveLength(20);
    // Per layer: one 4 KiB header read plus the backing name (and the 4 KiB of the last layer).
    expect(counting.bytes).toBeLessThanOrEqual(21 * (4096 + 1023));
    expect(counting.bytes).toBeGreaterThan(20 * 4096);
  });
});
