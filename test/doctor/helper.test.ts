/**
 * doctor and status with attach = "helper", on a root install.sh set up (real dpkg-divert on the
 * root's own dpkg database, stand-in launchers where the repository has none yet): the diversion
 * and the link are checked, and each way they can be lost (a libvirt reinstall after an admin's
 * `dpkg-divert --remove`, a link pointing elsewhere, someone else's diversion) fails with the fix;
 * libvirt's driver must be AppArmor; domains libvirt does not label dynamically are named.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { attachModeLine } from "../../src/cli/commands/status.js";
import { runDoctor, type Check } from "../../src/doctor/checks.js";
import { Layout } from "../../src/layout.js";
import { addLaunchers, helperRoot, hostRoot, runScript, sourceTree, write } from "../install/helpers.js";

vi.setConfig({ testTimeout: 180_000 });

const UUID = "0f1e2d3c-4b5a-4697-8877-665544332211";
const BUNDLE = path.resolve("dist/virt-aa-hook.cjs");
const HELPER = "usr/lib/libvirt/virt-aa-helper";
const REAL = "usr/lib/libvirt/virt-aa-helper.real";
let src: string;
let root: string;

const domain = (name: string, seclabel = "") =>
  `<domain type='kvm'>\n  <name>${name}</name>\n  <uuid>${UUID}</uuid>\n  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n  </devices>\n${seclabel}</domain>\n`;

beforeEach(() => {
  src = sourceTree();
  addLaunchers(src);
  root = hostRoot();
  helperRoot(root);
  write(path.join(root, "etc/libvirt/qemu.conf"), 'security_driver = "apparmor"\n');
  const r = runScript("install.sh", src, ["--root", root, "--node", "/usr/bin/node", "--libvirt-version", "9.0.0"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  write(path.join(root, "sys/kernel/security/apparmor/profiles"), "");
  write(path.join(root, "etc/libvirt/qemu/web.xml"), domain("web"));
});
afterEach(() => {
  fs.rmSync(src, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
});

const doctor = () => runDoctor({ layout: new Layout(root), libvirtVersion: () => "9.0.0" });
const check = (checks: Check[], name: string) => checks.find((c) => c.name === name);
const at = (rel: string) => path.join(root, rel);
const FIX = "run install.sh again (it diverts libvirt's virt-aa-helper and links ours in its place), then restart the guests started since";

describe("doctor, attach = helper", () => {
  it("passes on the installed root: diversion, link, driver, the rule in libvirtd's override; a dynamically labelled domain needs no adopting", async () => {
    const checks = await doctor();
    expect(checks.filter((c) => c.status !== "ok").map((c) => [c.name, c.status, c.detail])).toEqual([]);
    expect(check(checks, "config")!.detail).toBe("/etc/libvirt/virt-aa-hook.conf: attach = helper, mode = enforce");
    expect(check(checks, "virt-aa-helper")).toEqual({
      name: "virt-aa-helper",
      status: "ok",
      detail: "/usr/lib/libvirt/virt-aa-helper -> /usr/lib/virt-aa-hook/virt-aa-helper; libvirt's own diverted to /usr/lib/libvirt/virt-aa-helper.real (dpkg-divert, package virt-aa-hook)",
    });
    expect(check(checks, "domains adopted")!.detail).toBe("1 defined domain(s) use attach = helper");
  });

  it("fails with the fix when a libvirt reinstall put its own helper back without the diversion", async () => {
    fs.rmSync(at(HELPER));
    fs.renameSync(at(REAL), at(HELPER));
    write(at("var/lib/dpkg/diversions"), "");
    expect(check(await doctor(), "virt-aa-helper")).toEqual({
      name: "virt-aa-helper",
      status: "fail",
      detail:
        "/usr/lib/libvirt/virt-aa-helper is not diverted (dpkg-divert --list shows no diversion of it); " +
        "/usr/lib/libvirt/virt-aa-helper is not a link (libvirt's own program?), not a link to /usr/lib/virt-aa-hook/virt-aa-helper: libvirt's driver does not run virt-aa-hook's generator",
      fix: FIX,
    });
  });

  it("fails when the link points elsewhere, or the diversion is someone else's, or libvirt's own helper is gone", async () => {
    fs.rmSync(at(HELPER));
    fs.symlinkSync("/usr/lib/libvirt/virt-aa-helper.real", at(HELPER));
    expect(check(await doctor(), "virt-aa-helper")!.detail).toBe(
      "/usr/lib/libvirt/virt-aa-helper is a link to /usr/lib/libvirt/virt-aa-helper.real, not a link to /usr/lib/virt-aa-hook/virt-aa-helper: libvirt's driver does not run virt-aa-hook's generator",
    );
    fs.rmSync(at(HELPER));
    fs.symlinkSync("/usr/lib/virt-aa-hook/virt-aa-helper", at(HELPER));
    write(at("var/lib/dpkg/diversions"), "/usr/lib/libvirt/virt-aa-helper\n/usr/lib/libvirt/virt-aa-helper.real\n:\n");
    expect(check(await doctor(), "virt-aa-helper")!.detail).toBe(
      "/usr/lib/libvirt/virt-aa-helper is diverted to /usr/lib/libvirt/virt-aa-helper.real by a local diversion, not to /usr/lib/libvirt/virt-aa-helper.real by virt-aa-hook: libvirt's driver does not run virt-aa-hook's generator",
    );
    write(at("var/lib/dpkg/diversions"), "/usr/lib/libvirt/virt-aa-helper\n/usr/lib/libvirt/virt-aa-helper.real\nvirt-aa-hook\n");
    expect(check(await doctor(), "virt-aa-helper")!.status).toBe("ok");
    fs.rmSync(at(REAL));
    expect(check(await doctor(), "virt-aa-helper")!.detail).toBe(
      "/usr/lib/libvirt/virt-aa-helper.real (libvirt's own helper) missing: libvirt's driver does not run virt-aa-hook's generator",
    );
  });

  it("fails when libvirtd runs unconfined (libvirt's AppArmor driver is then off); negative control: libvirtd in its profile", async () => {
    write(at("run/libvirtd.pid"), "77\n");
    write(at("proc/77/attr/apparmor/current"), "unconfined\n");
    expect(check(await doctor(), "virt-aa-helper")).toEqual({
      name: "virt-aa-helper",
      status: "fail",
      detail: "libvirtd (pid 77) runs unconfined, so libvirt's AppArmor driver is off and runs no virt-aa-helper: libvirt's driver does not run virt-aa-hook's generator",
      fix: "load libvirtd's profile (apparmor_parser -r /etc/apparmor.d/usr.sbin.libvirtd) and restart libvirtd, then restart the guests started since",
    });
    write(at("proc/77/attr/apparmor/current"), "/usr/sbin/libvirtd (enforce)\n");
    expect(check(await doctor(), "virt-aa-helper")!.status).toBe("ok");
  });

  it("fails when libvirt's driver is not AppArmor (nothing would run virt-aa-helper)", async () => {
    write(at("etc/libvirt/qemu.conf"), 'security_driver = "none"\n');
    expect(check(await doctor(), "security driver")).toEqual({
      name: "security driver",
      status: "fail",
      detail: '/etc/libvirt/qemu.conf: security_driver = "none" → none: attach = "helper" needs libvirt\'s AppArmor driver (it is what runs virt-aa-helper)',
      fix: 'set security_driver = "apparmor" in /etc/libvirt/qemu.conf (and boot with AppArmor), or attach = "wrapper" with security_driver = "none"',
    });
  });

  it("fails when libvirtd's override lacks the rule for our virt-aa-helper", async () => {
    const local = at("etc/apparmor.d/local/usr.sbin.libvirtd");
    fs.writeFileSync(local, fs.readFileSync(local, "utf8").replace("/usr/lib/virt-aa-hook/virt-aa-helper Px -> virt-aa-hook,\n", ""));
    expect(check(await doctor(), "hook profile")).toMatchObject({
      status: "fail",
      detail: "/etc/apparmor.d/local/usr.sbin.libvirtd lacks the rule for /usr/lib/virt-aa-hook/virt-aa-helper (libvirtd could not run virt-aa-hook's virt-aa-helper)",
    });
  });

  it("names domains libvirt does not label dynamically: our static label is a warning (still confined), type='none' a failure", async () => {
    write(at("etc/libvirt/qemu/web.xml"), domain("web", `  <seclabel type='static' model='apparmor' relabel='no'>\n    <label>libvirt-${UUID}</label>\n  </seclabel>\n`));
    expect(check(await doctor(), "domains adopted")).toEqual({
      name: "domains adopted",
      status: "warn",
      detail: `not labelled dynamically (libvirt runs no virt-aa-helper for them): web (static label libvirt-${UUID} (adopted for attach = "seclabel"): libvirt runs no virt-aa-helper for it, so hotplug, media changes, snapshots and block jobs get no grant)`,
      fix: "virt-aa-hook adopt web",
    });
    write(at("etc/libvirt/qemu/web.xml"), domain("web", "  <seclabel type='none'/>\n"));
    expect(check(await doctor(), "domains adopted")).toEqual({
      name: "domains adopted",
      status: "fail",
      detail:
        "not labelled dynamically (libvirt runs no virt-aa-helper for them): web (<seclabel type='none'/> turns off every security driver: libvirt runs no virt-aa-helper for it and its QEMU runs unconfined)",
      fix: "virt-aa-hook adopt web",
    });
  });
});

describe("status, attach = helper", () => {
  it("says the mode first, and when the diversion is not in place", () => {
    const ok = spawnSync(process.execPath, [BUNDLE, "--root", root, "status"], { encoding: "utf8" });
    expect(ok.stderr).toBe("");
    expect(ok.stdout.split("\n")[0]).toBe(
      `attach = "helper": libvirt's AppArmor driver labels guests dynamically and runs virt-aa-hook's virt-aa-helper (/usr/lib/libvirt/virt-aa-helper -> /usr/lib/virt-aa-hook/virt-aa-helper)`,
    );
    fs.rmSync(at(HELPER));
    expect(attachModeLine({ attach: "helper" }, new Layout(root))).toBe(
      `attach = "helper": libvirt's AppArmor driver labels guests dynamically and runs virt-aa-hook's virt-aa-helper (/usr/lib/libvirt/virt-aa-helper -> /usr/lib/virt-aa-hook/virt-aa-helper); ` +
        "NOT in place: /usr/lib/libvirt/virt-aa-helper is missing, not a link to /usr/lib/virt-aa-hook/virt-aa-helper (virt-aa-hook doctor)\n",
    );
    // JSON stays the array of rows.
    const json = spawnSync(process.execPath, [BUNDLE, "--root", root, "status", "--json"], { encoding: "utf8" });
    expect(JSON.parse(json.stdout)).toEqual([]);
  });
});
