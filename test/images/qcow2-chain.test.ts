import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { discoverChain } from "../../src/images/index.js";
import { forgetBackingFormat, ImageRoot, pathErrorOf, QEMU_IMG, walkOf } from "./helpers.js";

let root: ImageRoot;
beforeEach(() => {
  root = new ImageRoot();
});
afterEach(() => root.cleanup());

describe("qcow2 backing chains built by qemu-img", () => {
  it("resolves a relative backing name against the image's directory", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", "top.qcow2");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/base.qcow2", format: "qcow2", kind: "backing", depth: 1 },
    ]);
  });

  it("takes an absolute backing name as a host path", () => {
    root.qemuImg("/srv/base", "create", "-q", "-f", "qcow2", "golden.qcow2", "1M");
    // -u: the host path /srv/base/golden.qcow2 only exists under the root.
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", "/srv/base/golden.qcow2", "top.qcow2", "1M");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/srv/base/golden.qcow2", format: "qcow2", kind: "backing", depth: 1 },
    ]);
  });

  it("walks a 3-deep chain, normalising '.', '..' and '//' in names, outermost first", () => {
    root.write("/pool/base.raw", Buffer.alloc(1 << 20));
    root.qemuImg("/pool/mid", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", "/pool//./base.raw", "mid.qcow2", "1M");
    root.qemuImg("/images/vm1", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", "../../pool/mid/./mid.qcow2", "snap.qcow2", "1M");
    root.qemuImg("/images/vm1", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", "snap.qcow2", "top.qcow2", "1M");
    expect(discoverChain(root.fs, "/images/vm1/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/vm1/snap.qcow2", format: "qcow2", kind: "backing", depth: 1 },
      { path: "/pool/mid/mid.qcow2", format: "qcow2", kind: "backing", depth: 2 },
      { path: "/pool/base.raw", format: "raw", kind: "backing", depth: 3 },
    ]);
  });

  it("normalises the top path it is given before resolving names against it", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", "top.qcow2");
    expect(discoverChain(root.fs, "/images/./x/..//top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/base.qcow2", format: "qcow2", kind: "backing", depth: 1 },
    ]);
  });

  it("returns a chain into /etc as it is: rejecting it is the policy stage's job", () => {
    root.write("/etc/shadow", "root:*:19000:0:99999:7:::\n");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", "/etc/shadow", "top.qcow2", "1M");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/etc/shadow", format: "raw", kind: "backing", depth: 1 },
    ]);
  });

  it("probes a backing layer whose format the referrer did not record", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", "mid.qcow2");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "mid.qcow2", "top.qcow2");
    forgetBackingFormat(root.real("/images/top.qcow2"));
    expect(root.info("/images/top.qcow2")["backing-filename-format"]).toBeUndefined();
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/mid.qcow2", format: "qcow2", kind: "backing", depth: 1 },
      { path: "/images/base.qcow2", format: "qcow2", kind: "backing", depth: 2 },
    ]);
  });

  it("probes an unrecorded raw backing layer as raw and stops there", () => {
    root.write("/images/base.img", Buffer.alloc(1 << 20));
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "base.img", "top.qcow2");
    forgetBackingFormat(root.real("/images/top.qcow2"));
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/base.img", format: "raw", kind: "backing", depth: 1 },
    ]);
  });

  it("detects a loop made with 'qemu-img rebase -u'", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "a.qcow2", "1M");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "a.qcow2", "b.qcow2");
    root.qemuImg("/images", "rebase", "-u", "-F", "qcow2", "-b", "b.qcow2", "a.qcow2");
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/b.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/b.qcow2",
      reason: "backing chain loop: this file is already in the chain as /images/b.qcow2",
    });
  });

  it("detects a loop through another name for the same file (hard link)", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", "/other/alias.qcow2", "top.qcow2", "1M");
    root.mkdir("/other");
    fs.linkSync(root.real("/images/top.qcow2"), root.real("/other/alias.qcow2"));
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/other/alias.qcow2",
      reason: "backing chain loop: this file is already in the chain as /images/top.qcow2",
    });
  });

  it("stops a self-referencing image at once even with a huge depth limit", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "self.qcow2", "1M");
    root.qemuImg("/images", "rebase", "-u", "-F", "qcow2", "-b", "self.qcow2", "self.qcow2");
    const started = Date.now();
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/self.qcow2", "qcow2", 10_000, walkOf(root.fs))).reason).toBe(
      "backing chain loop: this file is already in the chain as /images/self.qcow2",
    );
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("rejects a chain deeper than the limit, naming the limit", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "l4.qcow2", "1M");
    for (const [name, backing] of [["l3", "l4"], ["l2", "l3"], ["l1", "l2"], ["top", "l1"]]) {
      root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", `${backing}.qcow2`, `${name}.qcow2`);
    }
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 3, walkOf(root.fs)))).toStrictEqual({
      path: "/images/l3.qcow2",
      reason: "backing chain is deeper than 3 layers",
    });
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 4, walkOf(root.fs)).map((e) => e.path)).toStrictEqual([
      "/images/l1.qcow2",
      "/images/l2.qcow2",
      "/images/l3.qcow2",
      "/images/l4.qcow2",
    ]);
  });

  it("reports a missing backing file with the image that names it", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", "gone.qcow2", "top.qcow2", "1M");
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/gone.qcow2",
      reason: "backing file does not exist (named by /images/top.qcow2)",
    });
  });
});

describe("qcow2 external data files", () => {
  it("lists the top's data file at depth 0", () => {
    root.write("/images/top.data", "");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-o", "data_file=top.data", "top.qcow2", "1M");
    // The header must name a host path; qemu-img amend rewrites just the name.
    root.qemuImg("/images", "amend", "-o", "data_file=/images/top.data", "top.qcow2");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/top.data", format: "raw", kind: "data-file", depth: 0 },
    ]);
  });

  it("lists a backing layer's data file at that layer's depth, after the layer", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-o", "data_file=base.data", "base.qcow2", "1M");
    root.qemuImg("/images", "amend", "-o", "data_file=/data//base.data", "base.qcow2");
    root.write("/data/base.data", "");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", "top.qcow2");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/base.qcow2", format: "qcow2", kind: "backing", depth: 1 },
      { path: "/data/base.data", format: "raw", kind: "data-file", depth: 1 },
    ]);
  });

  it("with maxDepth 0 returns only the top's own files and does not follow the backing file", () => {
    root.write("/images/top.data", "");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-o", "data_file=top.data", "top.qcow2", "1M");
    root.qemuImg("/images", "amend", "-o", "data_file=/images/top.data", "top.qcow2");
    // The data file override lets qemu-img open the image while the header names a host path.
    root.qemuImg("/images", "rebase", "-u", "-F", "qcow2", "-b", "gone.qcow2", "--image-opts",
      "driver=qcow2,file.filename=top.qcow2,data-file.filename=top.data");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 0, walkOf(root.fs))).toStrictEqual([
      { path: "/images/top.data", format: "raw", kind: "data-file", depth: 0 },
    ]);
    // A real walk does follow it (and finds it missing).
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).reason).toBe(
      "backing file does not exist (named by /images/top.qcow2)",
    );
  });

  it("resolves a relative data file name against the image's directory", () => {
    root.mkdir("/images/data");
    root.qemuImg("/images/vm", "create", "-q", "-f", "qcow2", "-o", "data_file=../data/top.data", "top.qcow2", "1M");
    expect(discoverChain(root.fs, "/images/vm/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/data/top.data", format: "raw", kind: "data-file", depth: 0 },
    ]);
  });

  it("reports a missing data file", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-o", "data_file=top.data", "top.qcow2", "1M");
    root.qemuImg("/images", "amend", "-o", "data_file=/images/gone.data", "top.qcow2");
    expect(pathErrorOf(() => discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs)))).toStrictEqual({
      path: "/images/gone.data",
      reason: "external data file does not exist (named by /images/top.qcow2)",
    });
  });
});

describe("names resolve as QEMU resolves them (qemu-img info is the oracle)", () => {
  /** The backing file QEMU itself opens for the image at hostPath, as a host path. */
  function qemuBacking(hostPath: string): string {
    // Concatenated, not path.join'ed: join would resolve "link/.." lexically before qemu-img sees it.
    const info = JSON.parse(execFileSync(QEMU_IMG, ["info", "--output=json", root.dir + hostPath], { encoding: "utf8" })) as Record<string, unknown>;
    const full = info["full-backing-filename"] as string;
    // realpathSync.native: the JS realpathSync resolves ".." lexically first, which is the very bug.
    return fs.realpathSync.native(full).slice(fs.realpathSync.native(root.dir).length);
  }

  it("a relative backing name of a symlinked top is joined next to the link, not its target", () => {
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
    root.qemuImg("/store", "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
    root.qemuImg("/store", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", "real.qcow2");
    fs.symlinkSync("../store/real.qcow2", root.real("/images/top.qcow2"));
    expect(qemuBacking("/images/top.qcow2")).toBe("/images/base.qcow2");
    expect(discoverChain(root.fs, "/images/top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/images/base.qcow2", format: "qcow2", kind: "backing", depth: 1 },
    ]);
  });

  it("dir/link/../x: '..' is taken after the link, as the kernel does, never lexically", () => {
    root.qemuImg("/other", "create", "-q", "-f", "qcow2", "base.qcow2", "1M");
    root.qemuImg("/other", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "base.qcow2", "top.qcow2");
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "base.qcow2", "1M"); // the lexical decoy
    root.mkdir("/other/dir");
    fs.symlinkSync("../other/dir", root.real("/images/link"));
    // The top named through the link: QEMU reads /other/top.qcow2 and opens /other/base.qcow2.
    expect(qemuBacking("/images/link/../top.qcow2")).toBe("/other/base.qcow2");
    expect(discoverChain(root.fs, "/images/link/../top.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/other/base.qcow2", format: "qcow2", kind: "backing", depth: 1 },
    ]);
    // And a backing name with the same shape inside a header.
    root.qemuImg("/images", "create", "-q", "-f", "qcow2", "-u", "-F", "qcow2", "-b", "link/../base.qcow2", "via.qcow2", "1M");
    expect(qemuBacking("/images/via.qcow2")).toBe("/other/base.qcow2");
    expect(discoverChain(root.fs, "/images/via.qcow2", "qcow2", 64, walkOf(root.fs))).toStrictEqual([
      { path: "/other/base.qcow2", format: "qcow2", kind: "backing", depth: 1 },
    ]);
  });
});
