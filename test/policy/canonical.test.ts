import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostFs } from "../../src/hostfs.js";
import { Layout } from "../../src/layout.js";
import { canonicalise } from "../../src/policy/index.js";

let root: string;
let hostfs: HostFs;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "vah-canon-"));
  hostfs = new HostFs(new Layout(root));
  fs.mkdirSync(path.join(root, "var/lib/libvirt/images"), { recursive: true });
  fs.mkdirSync(path.join(root, "srv/real"), { recursive: true });
  fs.writeFileSync(path.join(root, "srv/real/disk.img"), "");
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const link = (target: string, at: string) => fs.symlinkSync(target, path.join(root, at));

describe("canonicalise", () => {
  it("resolves ., .. and // lexically for paths that do not exist", () => {
    expect(canonicalise(hostfs, "/nonexistent//a/./b/../c")).toBe("/nonexistent/a/c");
    expect(canonicalise(hostfs, "/../../x")).toBe("/x");
    expect(canonicalise(hostfs, "/")).toBe("/");
  });

  it("keeps an existing path as it is", () => {
    expect(canonicalise(hostfs, "/srv/real/disk.img")).toBe("/srv/real/disk.img");
  });

  it("follows an absolute symlink inside the root", () => {
    link("/srv/real", "var/lib/libvirt/images/pool");
    expect(canonicalise(hostfs, "/var/lib/libvirt/images/pool/disk.img")).toBe("/srv/real/disk.img");
  });

  it("follows a relative symlink and a chain of links", () => {
    link("./real/../real/disk.img", "srv/rel");
    link("/srv/rel", "srv/abs");
    expect(canonicalise(hostfs, "/srv/abs")).toBe("/srv/real/disk.img");
  });

  it("keeps the not-yet-existing tail below a symlinked directory", () => {
    link("/srv/real", "srv/dir");
    expect(canonicalise(hostfs, "/srv/dir/new/sock")).toBe("/srv/real/new/sock");
  });

  it("applies .. after a symlink physically, as the kernel does", () => {
    fs.mkdirSync(path.join(root, "a/b"), { recursive: true });
    link("/a/b", "srv/to-b");
    expect(canonicalise(hostfs, "/srv/to-b/../x")).toBe("/a/x");
  });

  it("never leaves the root through an absolute link target or ..", () => {
    link("/../../../etc/shadow", "srv/escape");
    expect(canonicalise(hostfs, "/srv/escape")).toBe("/etc/shadow");
  });

  it("rejects a symlink loop", () => {
    link("/srv/loop2", "srv/loop1");
    link("/srv/loop1", "srv/loop2");
    expect(() => canonicalise(hostfs, "/srv/loop1/x")).toThrow("/srv/loop1/x: too many levels of symbolic links");
  });

  it("rejects relative paths", () => {
    expect(() => canonicalise(hostfs, "images/a.img")).toThrow("images/a.img: path is not absolute");
  });

  it("treats a path through a regular file as not existing", () => {
    expect(canonicalise(hostfs, "/srv/real/disk.img/x/../y")).toBe("/srv/real/disk.img/y");
  });
});
