/**
 * Byte-based path limits, the per-guest literal budget and parser_timeout, through the real
 * bundle (`explain`, and the hook as libvirtd runs it in a temporary root). Needs `npm run build`.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultTestConfig, makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callHook, installHook } from "../lifecycle/harness.js";
import { guestXml, op, UUID_A } from "../lifecycle/guests.js";
import { TEST_NODE } from "../helpers/node.js";

const IMG = "/var/lib/libvirt/images";
let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-limits-");
  installHook(t);
});
afterEach(() => t.remove());

const xml = (disks: string[]) => guestXml({ name: "vm1", uuid: UUID_A, id: 6, disks });
function explain(doc: string) {
  const r = spawnSync(TEST_NODE, [BUNDLE, "--root", t.root, "explain", "-"], { input: doc, env: { LC_ALL: "C" } });
  return { status: r.status, stderr: r.stderr.toString() };
}
/** A path of `bytes` UTF-8 bytes under IMG, components of at most 200 bytes, in two-byte "é"s. */
function longPath(bytes: number, tag: string): string {
  let p = `${IMG}/${tag}`;
  while (Buffer.byteLength(p) + 2 <= bytes) p += Buffer.byteLength(p.slice(p.lastIndexOf("/"))) >= 200 ? "/" : "é";
  while (Buffer.byteLength(p) < bytes) p += "a";
  return p;
}
/** ASCII path of exactly `bytes` bytes, components of 250 bytes. */
function asciiPath(bytes: number, tag: string): string {
  let p = `${IMG}/${tag}`;
  while (p.length < bytes) p += p.length - p.lastIndexOf("/") > 250 ? "/" : "a";
  return p;
}

describe("path limits count UTF-8 bytes", () => {
  it("refuses a component of 128 'é' (256 bytes, 128 UTF-16 units) at prepare and in explain", () => {
    const p = `${IMG}/${"é".repeat(128)}`;
    const line = `virt-aa-hook: error: vm1: devices/disk/source: attribute "file": path component "${"é".repeat(32)}..." is 256 bytes, more than 255 (NAME_MAX)\n`;
    expect(callHook(t, op("vm1", "prepare"), xml([p])).stderr).toBe(line);
    expect(explain(xml([p]))).toEqual({ status: 1, stderr: line });
    expect(t.exists(`/var/lib/virt-aa-hook/${UUID_A}.json`)).toBe(false);
  });

  it("refuses a path of 4096 bytes written in 2,059 UTF-16 units", () => {
    const p = longPath(4096, "x");
    expect(p.length).toBeLessThan(4096);
    const r = callHook(t, op("vm1", "prepare"), xml([p]));
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`virt-aa-hook: error: vm1: devices/disk/source: attribute "file": path is 4096 bytes, more than 4095 (PATH_MAX)\n`);
  });

  it("refuses a path that grows past PATH_MAX only once a symlink is resolved", () => {
    fs.mkdirSync(t.at(IMG), { recursive: true });
    const target = asciiPath(3000, "t");
    fs.symlinkSync(target, t.at(`${IMG}/link`));
    // 1,227 bytes as written; 3,000 + 1,206 + 6 once the link is followed.
    const p = `${IMG}/link/${["b", "c", "d", "e", "f", "h"].map((c) => c.repeat(200)).join("/")}/g.img`;
    expect(Buffer.byteLength(p)).toBeLessThan(4095);
    const r = explain(xml([p]));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^virt-aa-hook: error: vm1: \/var\/lib\/libvirt\/images\/ta+\/a+.*: disk vda: path is 4212 bytes, more than 4095 \(PATH_MAX\)\n$/);
  });

  it("negative control: 255-byte components and a 4095-byte path are fine", () => {
    const p = asciiPath(4095, "ok");
    expect(Math.max(...p.split("/").map((c) => c.length))).toBeLessThanOrEqual(255);
    expect(explain(xml([p])).status).toBe(0);
    expect(explain(xml([`${IMG}/${"é".repeat(127)}a`])).status).toBe(0);
  });
});

describe("the per-guest literal budget", () => {
  it("refuses two 4000-byte paths before anything is compiled (was: 4-7 s of apparmor_parser per start)", () => {
    const paths = [1, 2].map((i) => asciiPath(4000, `d${i}`));
    const started = Date.now();
    const r = callHook(t, op("vm1", "prepare"), xml(paths));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `virt-aa-hook: error: vm1: ${paths[1]}: the guest's long paths exceed the per-guest budget (sum of squared lengths over 16777216: e.g. at most one path of 4 KiB, 16 of 1 KiB or 256 of 256 bytes), which bounds the profile's compile time\n`,
    );
    expect(t.exists(`/etc/apparmor.d/libvirt/libvirt-${UUID_A}`)).toBe(false);
  });

  it("refuses more than 256 KiB of short paths", () => {
    const paths = Array.from({ length: 4500 }, (_, i) => `${IMG}/${String(i).padStart(4, "0")}-${"a".repeat(31)}`);
    expect(paths[0]!.length).toBe(60);
    const r = explain(xml(paths));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/: the guest's paths add up to more than 262144 bytes \(the per-guest budget\)\n$/);
  });

  it("negative control: one 4000-byte path and sixteen of 200 bytes are within the budget (explain)", () => {
    expect(explain(xml([asciiPath(4000, "d1"), ...Array.from({ length: 16 }, (_, i) => asciiPath(200, `s${i}`))])).status).toBe(0);
  });
});

describe("parser_timeout", () => {
  it("kills a parser run that takes longer and fails the start with nothing written", () => {
    t.writeConfig({ ...defaultTestConfig(), parser_timeout: "5" });
    // The admin's own profile (trusted, outside the budget) makes the compile slow: eight literal
    // rules of 4000 bytes, ~18 s of apparmor_parser on an idle 2-core machine.
    const profile = `/etc/apparmor.d/libvirt/libvirt-${UUID_A}`;
    const slow = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `  "${asciiPath(4000, `admin${i}`)}" r,\n`).join("");
    const text = `#include <tunables/global>\nprofile libvirt-${UUID_A} flags=(attach_disconnected) {\n  #include <abstractions/libvirt-qemu>\n  #include <libvirt/libvirt-${UUID_A}.files>\n${slow}}\n`;
    fs.writeFileSync(t.at(profile), text);
    const started = Date.now();
    const r = callHook(t, op("vm1", "prepare"), xml([`${IMG}/vm1.img`]));
    const took = Date.now() - started;
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`virt-aa-hook: error: vm1: ${profile}: cannot load libvirt-${UUID_A}: timed out after 5 s\n`);
    expect(took).toBeLessThan(40_000);
    expect(t.read(profile)).toBe(text);
    expect(t.exists(`${profile}.files`)).toBe(false);
    expect(t.exists(`/var/lib/virt-aa-hook/${UUID_A}.json`)).toBe(false);
  }, 60_000);
});
