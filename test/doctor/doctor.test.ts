import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { formatReport, runDoctor, securityDrivers, type Check } from "../../src/doctor/checks.js";
import { libvirtVersion } from "../../src/install/probes.js";
import { Layout } from "../../src/layout.js";
import { hostRoot, runScript, sourceTree, write } from "../install/helpers.js";

// Every test installs into its root (the bundle twice, the parser three times): slow on a loaded machine.
vi.setConfig({ testTimeout: 180_000 });

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
const c0 = (checks: Check[], name: string) => checks.find((c) => c.name === name)!;

describe("doctor", () => {
  it("passes every check on a correctly set-up host, and says so", async () => {
    const checks = (await doctor());
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
      ["template compiles", "ok"],
      ["attach mode", "ok"],
      ["domains adopted", "ok"],
      ["running guests", "ok"],
      ["NVRAM isolation", "ok"],
      ["kept profiles", "ok"],
      ["left-over profiles", "ok"],
    ]);
    expect(c0(checks, "NVRAM isolation").detail).toBe(
      "/etc/apparmor.d/libvirt/TEMPLATE.virt-aa-hook-qemu includes /etc/apparmor.d/abstractions/virt-aa-hook-qemu, in step with /etc/apparmor.d/abstractions/libvirt-qemu",
    );
    const c = byName(checks);
    expect(c["profiles compile"]!.detail).toBe(
      `3 profile(s): usr.lib.virt-aa-hook.qemu-hook, usr.sbin.libvirtd, libvirt/libvirt-${UUID}`,
    );
    expect(c["emulator wrapper"]!.detail).toBe("/usr/lib/virt-aa-hook/bin/{qemu-system-i386,qemu-system-x86_64}");
    expect(c["hook"]!.detail).toBe("/etc/libvirt/hooks/qemu.d/virt-aa-hook → /usr/lib/virt-aa-hook/qemu-hook");
    expect(formatReport(checks)).toMatch(/\nvirt-aa-hook doctor: all good\n$/);
  });

  it("names a domain that is not adopted and the command that fixes it", async () => {
    write(path.join(root, "etc/libvirt/qemu/db.xml"), domain("db", "/usr/bin/qemu-system-x86_64"));
    const c = byName((await doctor()))["domains adopted"]!;
    expect(c).toEqual({
      name: "domains adopted",
      status: "fail",
      detail: "not adopted: db (<emulator> /usr/bin/qemu-system-x86_64 is not the virt-aa-hook wrapper (/usr/lib/virt-aa-hook/bin/<emulator name>))",
      fix: "virt-aa-hook adopt db",
    });
  });

  it("reports a per-guest profile that does not compile, quoting the parser", async () => {
    fs.appendFileSync(path.join(root, `etc/apparmor.d/libvirt/libvirt-${UUID}`), "bogus\n");
    const c = byName((await doctor()))["profiles compile"]!;
    expect(c.status).toBe("fail");
    expect(c.detail).toMatch(new RegExp(`^libvirt/libvirt-${UUID}: AppArmor parser error`));
  });

  it("checks where the config puts apparmor_dir: the template's abstraction and the per-guest profiles there, ours where installed", async () => {
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'mode = "enforce"\nattach = "wrapper"\napparmor_dir = "/srv/aa"\n');
    let c = byName(await doctor());
    expect(c["template and abstraction"]).toEqual({
      name: "template and abstraction",
      status: "fail",
      detail: "/srv/aa/abstractions/libvirt-qemu missing",
      fix: "run install.sh (it provides them where the host has none)",
    });
    // The hook's and libvirtd's profiles stay where install put them; no per-guest profile in /srv/aa yet.
    expect(c["profiles compile"]!.detail).toBe("2 profile(s): usr.lib.virt-aa-hook.qemu-hook, usr.sbin.libvirtd");

    fs.cpSync(path.join(root, "etc/apparmor.d"), path.join(root, "srv/aa"), { recursive: true, verbatimSymlinks: true });
    fs.appendFileSync(path.join(root, `etc/apparmor.d/libvirt/libvirt-${UUID}`), "bogus\n"); // not the configured one: not checked
    c = byName(await doctor());
    expect(c["template and abstraction"]!.status).toBe("ok");
    expect(c["profiles compile"]).toEqual({
      name: "profiles compile",
      status: "ok",
      detail: `3 profile(s): usr.lib.virt-aa-hook.qemu-hook, usr.sbin.libvirtd, libvirt/libvirt-${UUID}`,
    });

    fs.appendFileSync(path.join(root, `srv/aa/libvirt/libvirt-${UUID}`), "bogus\n");
    c = byName(await doctor());
    expect(c["profiles compile"]!.status).toBe("fail");
    expect(c["profiles compile"]!.detail).toMatch(new RegExp(`^libvirt/libvirt-${UUID}: AppArmor parser error`));
  });

  it("runs the parser the config names, and says when it is not there", async () => {
    const calls = path.join(root, "parser-calls");
    const parser = path.join(src, "apparmor_parser");
    write(parser, `#!/bin/sh\necho "$@" >> ${calls}\nexec /usr/sbin/apparmor_parser "$@"\n`, 0o755);
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), `mode = "enforce"\nattach = "wrapper"\nparser = "${parser}"\n`);
    const c = byName(await doctor());
    expect(c["apparmor_parser"]).toEqual({ name: "apparmor_parser", status: "ok", detail: parser });
    expect(c["profiles compile"]!.status).toBe("ok");
    expect(fs.readFileSync(calls, "utf8").split("\n").filter((l) => l.startsWith("-QK")).length).toBe(4);

    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'mode = "enforce"\nattach = "wrapper"\nparser = "/nonexistent/apparmor_parser"\n');
    const missing = await doctor();
    expect(c0(missing, "apparmor_parser")).toEqual({
      name: "apparmor_parser",
      status: "fail",
      detail: "/nonexistent/apparmor_parser: not found or not executable",
      fix: "apt install apparmor",
    });
    expect(missing.some((x) => x.name === "profiles compile")).toBe(false);
  });

  it("catches the wrong security driver for the attach mode", async () => {
    write(path.join(root, "etc/libvirt/qemu.conf"), 'security_driver = [ "apparmor", "dac" ]\n');
    expect(byName((await doctor()))["security driver"]).toEqual({
      name: "security driver",
      status: "fail",
      detail: `/etc/libvirt/qemu.conf: security_driver = ["apparmor","dac"] → apparmor, dac: libvirt's own AppArmor driver would confine QEMU before the wrapper runs`,
      fix: 'set security_driver = "none" in /etc/libvirt/qemu.conf, or attach = "seclabel"',
    });
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'attach = "seclabel"\n');
    write(path.join(root, "etc/libvirt/qemu.conf"), "");
    fs.rmSync(path.join(root, "sys"), { recursive: true });
    const checks = byName((await doctor()));
    expect(checks["security driver"]!.status).toBe("fail");
    expect(checks["security driver"]!.detail).toBe("/etc/libvirt/qemu.conf: security_driver = unset → none (auto-detected)");
    expect(checks["kernel AppArmor"]!.status).toBe("fail");
  });

  it("finds a missing hook link and a missing local override block", async () => {
    fs.rmSync(path.join(root, "etc/libvirt/hooks/qemu.d/virt-aa-hook"));
    fs.writeFileSync(path.join(root, "etc/apparmor.d/local/usr.sbin.libvirtd"), "");
    const c = byName((await doctor()));
    expect(c["hook"]).toEqual({ name: "hook", status: "fail", detail: "/etc/libvirt/hooks/qemu.d/virt-aa-hook missing", fix: "run install.sh, then reload libvirtd" });
    expect(c["hook profile"]!.detail).toBe(
      "/etc/apparmor.d/local/usr.sbin.libvirtd lacks the virt-aa-hook block (the hook would run inside libvirtd's profile)",
    );
  });

  it("reports a config error instead of guessing", async () => {
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'attach = "wraper"\n');
    const c = byName((await doctor()))["config"]!;
    expect(c.status).toBe("fail");
    expect(c.detail).toContain("attach");
    expect(formatReport((await doctor()))).toMatch(/virt-aa-hook doctor: \d+ problem\(s\) to fix\n$/);
  });

  it("reads libvirt's version and qemu.conf's security_driver", async () => {
    expect(await libvirtVersion(new Layout("/").libvirtDaemons)).toBe("9.0.0");
    expect(securityDrivers('#security_driver = "selinux"\n')).toBeUndefined();
    expect(securityDrivers('security_driver = "none"\n')).toEqual(["none"]);
    expect(securityDrivers('security_driver="a"\nsecurity_driver = [ "apparmor" ]\n')).toEqual(["apparmor"]);
  });
});

/** A running QEMU as libvirt leaves it: pid file, status XML, the kernel's label in a fake /proc. */
function runningQemu(name: string, pid: number, uuid: string, label: string): void {
  write(path.join(root, `run/libvirt/qemu/${name}.pid`), `${pid}\n`);
  write(path.join(root, `run/libvirt/qemu/${name}.xml`), `<domstatus state='running'>\n  <domain type='kvm'>\n    <name>${name}</name>\n    <uuid>${uuid}</uuid>\n  </domain>\n</domstatus>\n`);
  write(path.join(root, `proc/${pid}/attr/apparmor/current`), `${label}\n`);
}
const BUNDLE = path.resolve("dist/virt-aa-hook.cjs");
const doctorCli = () => spawnSync(process.execPath, [BUNDLE, "--root", root, "doctor"], { encoding: "utf8" });

describe("doctor tells the truth about confinement", () => {
  it("fails (exit 1) when a running guest's QEMU is unconfined, naming it and the fix; passes once it is confined", async () => {
    runningQemu("web", 4242, UUID, "unconfined");
    expect(byName((await doctor()))["running guests"]).toEqual({
      name: "running guests",
      status: "fail",
      detail: "not confined: web (unconfined: unconfined)",
      fix: "adopt it (virt-aa-hook adopt web) and restart it: virsh destroy web; virsh start web",
    });
    const r = doctorCli();
    expect(r.status).toBe(1);
    expect(r.stdout).toContain("FAIL  running guests: not confined: web (unconfined: unconfined)\n");
    // --json: the very checks the text shows, as data, with the same exit status.
    const json = spawnSync(process.execPath, [BUNDLE, "--root", root, "doctor", "--json"], { encoding: "utf8" });
    expect({ status: json.status, stderr: json.stderr }).toEqual({ status: 1, stderr: "" });
    const checks = JSON.parse(json.stdout) as Check[];
    expect(checks.find((c) => c.name === "running guests")).toEqual({
      name: "running guests",
      status: "fail",
      detail: "not confined: web (unconfined: unconfined)",
      fix: "adopt it (virt-aa-hook adopt web) and restart it: virsh destroy web; virsh start web",
    });
    expect(formatReport(checks)).toBe(r.stdout);
    // Negative control: the same guest in its own profile.
    write(path.join(root, "proc/4242/attr/apparmor/current"), `libvirt-${UUID} (enforce)\n`);
    expect(byName((await doctor()))["running guests"]).toEqual({ name: "running guests", status: "ok", detail: "web (by libvirt: " + `libvirt-${UUID} (enforce))` });
    const confined = spawnSync(process.execPath, [BUNDLE, "--root", root, "doctor", "--json"], { encoding: "utf8" });
    expect((JSON.parse(confined.stdout) as Check[]).find((c) => c.name === "running guests")!.status).toBe("ok");
  });

  it("libvirt's own lock, run/libvirt/qemu/driver.pid (libvirtd's pid, no status XML), is not a running guest", async () => {
    write(path.join(root, "run/libvirt/qemu/driver.pid"), "4343\n");
    write(path.join(root, "proc/4343/attr/apparmor/current"), "libvirtd (enforce)\n");
    expect(byName((await doctor()))["running guests"]).toEqual({ name: "running guests", status: "ok", detail: "no guest is running" });
    // Negative control: a domain named "driver" has its status XML, and is judged like any other.
    runningQemu("driver", 4343, UUID, "unconfined");
    expect(byName((await doctor()))["running guests"]!.detail).toBe("not confined: driver (unconfined: unconfined)");
  });

  it("fails when attach = none leaves guests to nobody, warns when libvirt's AppArmor driver labels them", async () => {
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'attach = "none"\n');
    expect(byName((await doctor()))["attach mode"]).toEqual({
      name: "attach mode",
      status: "fail",
      detail: 'attach = "none" and /etc/libvirt/qemu.conf: security_driver = "none": nothing puts any guest\'s QEMU into a profile',
      fix: 'set attach = "wrapper" and started_check = "enforce" in /etc/libvirt/virt-aa-hook.conf, then virt-aa-hook adopt --all',
    });
    write(path.join(root, "etc/libvirt/qemu.conf"), 'security_driver = "apparmor"\n');
    const checks = (await doctor());
    expect(byName(checks)["attach mode"]).toEqual({
      name: "attach mode",
      status: "warn",
      detail: `attach = "none": virt-aa-hook confines no guest; libvirt's own AppArmor driver labels them (/etc/libvirt/qemu.conf: security_driver = "apparmor")`,
    });
    expect(formatReport(checks)).toContain("warn  attach mode: ");
  });

  it("quotes names in copy-paste fix lines and escapes invisible characters in what it shows", async () => {
    write(path.join(root, "etc/libvirt/qemu/evil.xml"), domain("it's\u202E; rm -rf ~", "/usr/bin/qemu-system-x86_64"));
    const c = byName((await doctor()))["domains adopted"]!;
    expect(c.detail).toBe(
      "not adopted: it's\\u{202e}; rm -rf ~ (<emulator> /usr/bin/qemu-system-x86_64 is not the virt-aa-hook wrapper (/usr/lib/virt-aa-hook/bin/<emulator name>))",
    );
    expect(c.fix).toBe("virt-aa-hook adopt $'it\\'s\\u202e; rm -rf ~'");
    const echoed = spawnSync("/bin/bash", ["-c", `printf %s ${c.fix!.slice("virt-aa-hook adopt ".length)}`], { encoding: "utf8" });
    expect(echoed.stdout).toBe("it's\u202E; rm -rf ~");
  });

  it("detects NVRAM drift: an abstraction that no longer matches the host's, a template that is not ours, old profiles", async () => {
    const ours = path.join(root, "etc/apparmor.d/abstractions/virt-aa-hook-qemu");
    fs.appendFileSync(ours, "  /srv/** rw,\n");
    expect(byName((await doctor()))["NVRAM isolation"]).toEqual({
      name: "NVRAM isolation",
      status: "fail",
      detail: "/etc/apparmor.d/abstractions/virt-aa-hook-qemu is not what /etc/apparmor.d/abstractions/libvirt-qemu gives now (libvirt upgraded, or edited)",
      fix: "run install.sh again (it derives both from the host's files)",
    });
    expect(runScript("install.sh", src, ["--root", root, "--node", "/usr/bin/node", "--libvirt-version", "9.0.0"]).status).toBe(0);
    expect(byName((await doctor()))["NVRAM isolation"]!.status).toBe("ok");

    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'attach = "wrapper"\ntemplate = "/etc/apparmor.d/libvirt/TEMPLATE.qemu"\n');
    expect(byName((await doctor()))["NVRAM isolation"]!.detail).toBe(
      "template = /etc/apparmor.d/libvirt/TEMPLATE.qemu, not /etc/apparmor.d/libvirt/TEMPLATE.virt-aa-hook-qemu: guests created from it may open each other's NVRAM in /var/lib/libvirt/qemu/nvram",
    );

    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'attach = "wrapper"\n');
    write(path.join(root, `var/lib/virt-aa-hook/${UUID}.json`), JSON.stringify({ version: 1, uuid: UUID, name: "web", profileName: `libvirt-${UUID}`, updated: "x" }));
    expect(byName((await doctor()))["NVRAM isolation"]!.detail).toBe(
      `per-guest profiles including <abstractions/libvirt-qemu> (made before, or by libvirt): libvirt-${UUID} (web)`,
    );
  });

  it("warns about kept profiles of domains no longer defined (load-adopted releases them); not a failure", async () => {
    const other = "9e8d7c6b-5a49-4838-9271-605f4e3d2c1b";
    write(path.join(root, `var/lib/virt-aa-hook/${other}.json`), JSON.stringify({ version: 1, uuid: other, name: "gone", profileName: `libvirt-${other}`, updated: "x" }));
    const checks = (await doctor());
    expect(byName(checks)["kept profiles"]).toEqual({
      name: "kept profiles",
      status: "warn",
      detail: `kept for domains no longer defined with their label and not running: libvirt-${other} (gone)`,
      fix: "virt-aa-hook load-adopted (releases them)",
    });
    // The same record, by the one account of left-overs prune works from (store/leftovers.ts).
    expect(byName(checks)["left-over profiles"]).toEqual({
      name: "left-over profiles",
      status: "warn",
      detail: `no defined domain has the UUID of: libvirt-${other} (gone, missing); kept for stopped defined guests: libvirt-${UUID} (web, admin)`,
      fix: "virt-aa-hook prune --dry-run shows what goes, virt-aa-hook prune removes it (--force also edited profiles)",
    });
    expect(formatReport(checks)).toMatch(/\nvirt-aa-hook doctor: all good \(2 warning\(s\)\)\n$/);
  });

  it("seclabel: fails without the boot drop-in where systemd is, warns where it is not", async () => {
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'attach = "seclabel"\n');
    write(path.join(root, "etc/libvirt/qemu.conf"), 'security_driver = "apparmor"\n');
    expect(byName((await doctor()))["loaded at boot"]!.status).toBe("warn");
    fs.mkdirSync(path.join(root, "etc/systemd/system"), { recursive: true });
    expect(byName((await doctor()))["loaded at boot"]).toEqual({
      name: "loaded at boot",
      status: "fail",
      detail: "/etc/systemd/system/libvirtd.service.d/virt-aa-hook.conf missing: after a reboot libvirtd drops adopted domains",
      fix: "run install.sh again",
    });
    expect(runScript("install.sh", src, ["--root", root, "--node", "/usr/bin/node", "--libvirt-version", "9.0.0"]).status).toBe(0);
    expect(byName((await doctor()))["loaded at boot"]!.status).toBe("ok");
    // An unadopted domain next to libvirt's AppArmor driver is libvirt's: a warning, not a failure.
    write(path.join(root, "etc/libvirt/qemu/db.xml"), domain("db", "/usr/bin/qemu-system-x86_64"));
    expect(byName((await doctor()))["domains adopted"]!.status).toBe("warn");
  });
});
