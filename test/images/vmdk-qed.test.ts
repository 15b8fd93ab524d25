import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { discoverChain } from "../../src/images/index.js";
import { ImageRoot, pathErrorOf, walkOf } from "./helpers.js";

let root: ImageRoot;
beforeEach(() => {
  root = new ImageRoot();
});
afterEach(() => root.cleanup());

describe("vmdk", () => {
  it("follows parentFileNameHint of a sparse vmdk (format vmdk)", () => {
    root.qemuImg("/images", "create", "-q", "-f", "vmdk", "base.vmdk", "1M");
    root.qemuImg("/images", "create", "-q", "-f", "vmdk", "-F", "vmdk", "-b", "base.vmdk", "top.vmdk");
    expect(discoverChain(root.fs, "/images/top.vmdk", "vmdk", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/base.vmdk", format: "vmdk", kind: "backing", depth: 1 },
    ]);
  });

  it("lists every extent of a twoGbMaxExtentSparse descriptor at depth 0", () => {
    root.qemuImg("/images", "create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "big.vmdk", "5G");
    expect(discoverChain(root.fs, "/images/big.vmdk", "vmdk", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/big-s001.vmdk", kind: "extent", depth: 0 },
      { path: "/images/big-s002.vmdk", kind: "extent", depth: 0 },
      { path: "/images/big-s003.vmdk", kind: "extent", depth: 0 },
    ]);
  });

  it("lists a monolithicFlat backing layer and its extent at depth 1", () => {
    root.qemuImg("/pool", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", "golden.vmdk", "1M");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", "vmdk", "-b", "/pool/golden.vmdk", "top.qcow2", "1M");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/pool/golden.vmdk", format: "vmdk", kind: "backing", depth: 1 },
      { path: "/pool/golden-flat.vmdk", kind: "extent", depth: 1 },
    ]);
  });

  it("resolves extents against the descriptor's directory, keeps absolute ones, skips non-RW lines", () => {
    root.write("/vm/disk/a-flat.vmdk", "");
    root.write("/abs/b-flat.vmdk", "");
    root.write("/vm/sub/c-s001.vmdk", "");
    root.write(
      "/vm/disk/d.vmdk",
      [
        "# Disk DescriptorFile",
        "version=1",
        "CID=fffffffe",
        "parentCID=ffffffff",
        'createType="twoGbMaxExtentFlat"',
        'RW 2048 FLAT "a-flat.vmdk" 0',
        'RW 2048 FLAT "/abs//b-flat.vmdk" 0',
        'RW 4192256 SPARSE "../sub/c-s001.vmdk"',
        'RDONLY 2048 FLAT "/etc/ignored-by-qemu" 0',
        'NOACCESS 2048 FLAT "/etc/also-ignored" 0',
        'RW 2048 ZERO "/etc/not-a-file-type"',
        'RW 0 FLAT "/etc/zero-sectors" 0',
        "",
      ].join("\n"),
    );
    expect(discoverChain(root.fs, "/vm/disk/d.vmdk", "vmdk", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/vm/disk/a-flat.vmdk", kind: "extent", depth: 0 },
      { path: "/abs/b-flat.vmdk", kind: "extent", depth: 0 },
      { path: "/vm/sub/c-s001.vmdk", kind: "extent", depth: 0 },
    ]);
  });

  it("refuses a FLAT extent line without an offset, as QEMU does", () => {
    root.write("/vm/d.vmdk", 'version=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "d-flat.vmdk"\n');
    expect(pathErrorOf(() => discoverChain(root.fs, "/vm/d.vmdk", "vmdk", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/vm/d.vmdk",
      reason: 'invalid vmdk extent line: RW 2048 FLAT "d-flat.vmdk"',
    });
  });

  it("refuses a descriptor with a createType QEMU does not open", () => {
    root.write("/vm/d.vmdk", 'version=1\ncreateType="custom"\nRW 2048 FLAT "/etc/shadow" 0\n');
    expect(pathErrorOf(() => discoverChain(root.fs, "/vm/d.vmdk", "vmdk", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/vm/d.vmdk",
      reason: 'vmdk descriptor createType "custom" is not supported',
    });
  });

  it("reports a missing extent file", () => {
    root.write("/vm/d.vmdk", 'version=1\ncreateType="monolithicFlat"\nRW 2048 FLAT "d-flat.vmdk" 0\n');
    expect(pathErrorOf(() => discoverChain(root.fs, "/vm/d.vmdk", "vmdk", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/vm/d-flat.vmdk",
      reason: "vmdk extent file does not exist (named by /vm/d.vmdk)",
    });
  });

  it("refuses a text descriptor larger than 64 KiB", () => {
    root.write("/vm/d.vmdk", `version=1\ncreateType="monolithicFlat"\n${"#".repeat(70_000)}\n`);
    expect(pathErrorOf(() => discoverChain(root.fs, "/vm/d.vmdk", "vmdk", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/vm/d.vmdk",
      reason: "vmdk descriptor is larger than 65536 bytes, which is not supported",
    });
  });

  it("refuses an unterminated parentFileNameHint", () => {
    root.write("/vm/d.vmdk", 'version=1\ncreateType="monolithicFlat"\nparentFileNameHint="/etc/shadow\n');
    expect(pathErrorOf(() => discoverChain(root.fs, "/vm/d.vmdk", "vmdk", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/vm/d.vmdk",
      reason: "corrupt vmdk descriptor: parentFileNameHint has no closing quote",
    });
  });
});

describe("qed", () => {
  it("probes the backing layer when qed records no format", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
    root.qemuImg("/images", "create", "-q", "-f", "qed", "-F", "qcow2", "-b", "base.qcow2", "top.qed");
    expect(discoverChain(root.fs, "/images/top.qed", "qed", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/base.qcow2", format: "qcow2", kind: "backing", depth: 1 },
    ]);
  });

  it("takes the 'backing format no probe' feature as raw and does not read the backing file", () => {
    // A raw base that happens to start with a qcow2 header: with the no-probe bit it stays raw.
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", "/etc/shadow", "base.img", "1M");
    root.qemuImg("/images", "create", "-q", "-f", "qed", "-F", "raw", "-b", "base.img", "top.qed");
    expect(discoverChain(root.fs, "/images/top.qed", "qed", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/base.img", format: "raw", kind: "backing", depth: 1 },
    ]);
  });

  it("continues through a qed layer in the middle of a qcow2 chain", () => {
    root.write("/images/base.raw", Buffer.alloc(65536));
    root.qemuImg("/images", "create", "-q", "-f", "qed", "-F", "raw", "-b", "base.raw", "mid.qed");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "qed", "-b", "mid.qed", "top.qcow2");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/mid.qed", format: "qed", kind: "backing", depth: 1 },
      { path: "/images/base.raw", format: "raw", kind: "backing", depth: 2 },
    ]);
  });
});
