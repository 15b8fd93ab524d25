import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { installIfAbsent, isTempNameFor, readIfExists, removeDurably, tempNameFor, writeFileAtomic, writeNewFile } from "../../src/store/atomic.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-atomic-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("writeFileAtomic", () => {
  it("creates a file with the exact content and mode, leaving no temp file", () => {
    const target = path.join(dir, "libvirt-x.files");
    writeFileAtomic(target, "  \"/a\" rwk,\n", { mode: 0o640 });
    expect(fs.readFileSync(target, "utf8")).toBe('  "/a" rwk,\n');
    expect(fs.statSync(target).mode & 0o777).toBe(0o640);
    expect(fs.readdirSync(dir)).toEqual(["libvirt-x.files"]);
  });

  it("replaces an existing file by rename (new inode), never in place", () => {
    const target = path.join(dir, "f");
    fs.writeFileSync(target, "old");
    const before = fs.statSync(target).ino;
    writeFileAtomic(target, "new");
    expect(fs.readFileSync(target, "utf8")).toBe("new");
    expect(fs.statSync(target).ino).not.toBe(before);
  });

  it("names its temp file so apparmor_parser's directory load skips it (leading dot, same dir)", () => {
    const t = tempNameFor("/etc/apparmor.d/libvirt/libvirt-x.files");
    expect(path.dirname(t)).toBe("/etc/apparmor.d/libvirt");
    expect(path.basename(t).startsWith(".libvirt-x.files.tmp-")).toBe(true);
    expect(isTempNameFor("/etc/apparmor.d/libvirt/libvirt-x.files", t)).toBe(true);
    expect(isTempNameFor("/etc/apparmor.d/libvirt/libvirt-y.files", t)).toBe(false);
  });

  it("leaves the old file and no temp file when the write fails", () => {
    const target = path.join(dir, "sub");
    fs.mkdirSync(target); // renaming a file over a directory fails with EISDIR
    expect(() => writeFileAtomic(target, "x")).toThrow(/EISDIR/);
    expect(fs.statSync(target).isDirectory()).toBe(true);
    expect(fs.readdirSync(dir)).toEqual(["sub"]);
  });

  it("staging writes refuse a planted symlink instead of writing through it", () => {
    const victim = path.join(dir, "victim");
    fs.writeFileSync(victim, "keep");
    const staged = path.join(dir, ".staged");
    fs.symlinkSync(victim, staged);
    expect(() => writeNewFile(staged, "data")).toThrow(/EEXIST/);
    expect(fs.readFileSync(victim, "utf8")).toBe("keep");
  });
});

describe("installIfAbsent", () => {
  it("puts the file in place when the target is absent", () => {
    const from = path.join(dir, ".staged");
    const to = path.join(dir, "profile");
    fs.writeFileSync(from, "profile text");
    expect(installIfAbsent(from, to)).toBe(true);
    expect(fs.readFileSync(to, "utf8")).toBe("profile text");
    expect(fs.existsSync(from)).toBe(false);
  });

  it("never overwrites an existing file", () => {
    const from = path.join(dir, ".staged");
    const to = path.join(dir, "profile");
    fs.writeFileSync(from, "ours");
    fs.writeFileSync(to, "admin's");
    expect(installIfAbsent(from, to)).toBe(false);
    expect(fs.readFileSync(to, "utf8")).toBe("admin's");
  });
});

describe("removeDurably / readIfExists", () => {
  it("reports whether the file existed", () => {
    const f = path.join(dir, "f");
    fs.writeFileSync(f, "x");
    expect(removeDurably(f)).toBe(true);
    expect(removeDurably(f)).toBe(false);
    expect(readIfExists(f)).toBeUndefined();
  });
});
