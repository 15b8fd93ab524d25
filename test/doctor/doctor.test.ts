import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatReport, libvirtdVersion, runDoctor, securityDrivers, type Check } from "../../src/doctor/checks.js";
import { Layout } from "../../src/layout.js";
import { hostRoot, runScript, sourceTree, write } from "../install/helpers.js";

const UUID = "0f1e2d3c-4b5a-4697-8877-665544332211";
let src: string;
let root: string;

function domain(name: string, emulator: string): string {
  return `<domain type='kvm'>\n  <name>${name}</name>\n  <uuid>${UUID}</uuid>\n  <devices>\n    <emulator>${emulator}</emulator>\n  </devices>\n</domain>\n`;
}

/** A host that is set up right: installed into the root, AppArmor "on", wrapper mode, one adopted guest. */
beforeEach(() => {
  src = sourceTree();
  root = hostRoot();
  const r = runScript("install.sh", src, ["--root", root, "--node", "/usr/bin/node", "--libvirt-version", "9.0.0"]);
  expect(r.status).toBe(0);
  write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'mode = "enforce"\nattach = "wrapper"\n');
  write(path.join(root, "etc/libvirt/qemu.conf"), '# security_driver = "apparmor"\nsecurity_driver = "none"\n');
  write(path.join(root, "sys/kernel/security/apparmor/profiles"), "");
  write(path.join(root, "etc/libvirt/qemu/web.xml"), domain("web", "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64"));
  const profile = fs.readFileSync(path.join(root, "etc/apparmor.d/libvirt/TEMPLATE.qemu"), "utf8").replace("LIBVIRT_TEMPLATE", `libvirt-${UUID}`);
  write(path.join(root, `etc/apparmor.d/libvirt/libvirt-${UUID}`), profile);
});
afterEach(() => {
  fs.rmSync(src, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
});

const doctor = () => runDoctor({ layout: new Layout(root), libvirtVersion: () => "9.0.0" });
const byName = (checks: Check[]) => Object.fromEntries(checks.map((c) => [c.name, c]));

describe("doctor", () => {
  it("passes every check on a correctly set-up host, and says so", () => {
    const checks = doctor();
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ["config", "ok"],
      ["kernel AppArmor", "ok"],
      ["apparmor_parser", "ok"],
      ["libvirt", "ok"],
      ["security driver", "ok"],
      ["hook", "ok"],
      ["hook profile", "ok"],
      ["template and abstraction", "ok"],
      ["emulator wrapper", "ok"],
      ["profiles compile", "ok"],
      ["domains adopted", "ok"],
    ]);
    const c = byName(checks);
    expect(c["profiles compile"]!.detail).toBe(
      `3 profile(s): usr.lib.virt-aa-hook.qemu-hook, usr.sbin.libvirtd, libvirt/libvirt-${UUID}`,
    );
    expect(c["emulator wrapper"]!.detail).toBe("/usr/lib/virt-aa-hook/bin/{qemu-system-i386,qemu-system-x86_64}");
    expect(c["hook"]!.detail).toBe("/etc/libvirt/hooks/qemu.d/virt-aa-hook → /usr/lib/virt-aa-hook/qemu-hook");
    expect(formatReport(checks)).toMatch(/\nvirt-aa-hook doctor: all good\n$/);
  });

  it("names a domain that is not adopted and the command that fixes it", () => {
    write(path.join(root, "etc/libvirt/qemu/db.xml"), domain("db", "/usr/bin/qemu-system-x86_64"));
    const c = byName(doctor())["domains adopted"]!;
    expect(c).toEqual({
      name: "domains adopted",
      status: "fail",
      detail: "not adopted: db (<emulator> /usr/bin/qemu-system-x86_64 is not the virt-aa-hook wrapper (/usr/lib/virt-aa-hook/bin/<emulator name>))",
      fix: "virt-aa-hook adopt db",
    });
  });

  it("reports a per-guest profile that does not compile, quoting the parser", () => {
    fs.appendFileSync(path.join(root, `etc/apparmor.d/libvirt/libvirt-${UUID}`), "bogus\n");
    const c = byName(doctor())["profiles compile"]!;
    expect(c.status).toBe("fail");
    expect(c.detail).toMatch(new RegExp(`^libvirt/libvirt-${UUID}: AppArmor parser error`));
  });

  it("catches the wrong security driver for the attach mode", () => {
    write(path.join(root, "etc/libvirt/qemu.conf"), 'security_driver = [ "apparmor", "dac" ]\n');
    expect(byName(doctor())["security driver"]).toEqual({
      name: "security driver",
      status: "fail",
      detail: `/etc/libvirt/qemu.conf: security_driver = ["apparmor","dac"] → apparmor, dac: libvirt's own AppArmor driver would confine QEMU before the wrapper runs`,
      fix: 'set security_driver = "none" in /etc/libvirt/qemu.conf, or attach = "seclabel"',
    });
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'attach = "seclabel"\n');
    write(path.join(root, "etc/libvirt/qemu.conf"), "");
    fs.rmSync(path.join(root, "sys"), { recursive: true });
    const checks = byName(doctor());
    expect(checks["security driver"]!.status).toBe("fail");
    expect(checks["security driver"]!.detail).toBe("/etc/libvirt/qemu.conf: security_driver = unset → none (auto-detected)");
    expect(checks["kernel AppArmor"]!.status).toBe("fail");
  });

  it("finds a missing hook link and a missing local override block", () => {
    fs.rmSync(path.join(root, "etc/libvirt/hooks/qemu.d/virt-aa-hook"));
    fs.writeFileSync(path.join(root, "etc/apparmor.d/local/usr.sbin.libvirtd"), "");
    const c = byName(doctor());
    expect(c["hook"]).toEqual({ name: "hook", status: "fail", detail: "/etc/libvirt/hooks/qemu.d/virt-aa-hook missing", fix: "run install.sh, then reload libvirtd" });
    expect(c["hook profile"]!.detail).toBe(
      "/etc/apparmor.d/local/usr.sbin.libvirtd lacks the virt-aa-hook block (the hook would run inside libvirtd's profile)",
    );
  });

  it("reports a config error instead of guessing", () => {
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'attach = "wraper"\n');
    const c = byName(doctor())["config"]!;
    expect(c.status).toBe("fail");
    expect(c.detail).toContain("attach");
    expect(formatReport(doctor())).toMatch(/virt-aa-hook doctor: \d+ problem\(s\) to fix\n$/);
  });

  it("reads libvirt's version and qemu.conf's security_driver", () => {
    expect(libvirtdVersion()).toBe("9.0.0");
    expect(securityDrivers('#security_driver = "selinux"\n')).toBeUndefined();
    expect(securityDrivers('security_driver = "none"\n')).toEqual(["none"]);
    expect(securityDrivers('security_driver="a"\nsecurity_driver = [ "apparmor" ]\n')).toEqual(["apparmor"]);
  });
});
