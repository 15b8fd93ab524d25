/**
 * Defaults that confine: the installer reads libvirt's security driver and the kernel under
 * --root, writes the matching attach mode with started_check = "enforce" (never over an existing
 * config), installs the PATH command and the libvirtd boot drop-in, and ends with what is confined.
 */
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { helperDivertable } from "../../src/install/divert.js";
import { chooseAttach, readSecurityDriver } from "../../src/install/host.js";
import { Layout } from "../../src/layout.js";
import { compile, helperRoot, hostRoot, runScript, sourceTree, tree, write } from "./helpers.js";

vi.setConfig({ testTimeout: 180_000 });

const NODE = "/usr/bin/node";
const UUID = "0f1e2d3c-4b5a-4697-8877-665544332211";
let src: string;
let root: string;
beforeEach(() => {
  src = sourceTree();
  root = hostRoot();
});
afterEach(() => {
  fs.rmSync(src, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
});
const install = (...args: string[]) => runScript("install.sh", src, ["--root", root, "--node", NODE, "--libvirt-version", "9.0.0", ...args]);
const uninstall = (...args: string[]) => runScript("uninstall.sh", src, ["--root", root, ...args]);
const read = (rel: string) => fs.readFileSync(path.join(root, rel), "utf8");
const summary = (stdout: string) => stdout.split("\n").filter((l) => /^virt-aa-hook install: (\/etc\/libvirt\/virt-aa-hook\.conf: |NOT |not |adopted|no domain|NVRAM|at boot|[a-z]+: running)/.test(l));
const domain = (name: string, adopted: boolean) =>
  `<domain type='kvm'>\n  <name>${name}</name>\n  <uuid>${UUID}</uuid>\n  <devices>\n    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n  </devices>\n` +
  (adopted ? `  <seclabel type='static' model='apparmor' relabel='no'>\n    <label>libvirt-${UUID}</label>\n  </seclabel>\n` : "") +
  "</domain>\n";

describe("detection matrix (qemu.conf security_driver × kernel AppArmor)", () => {
  // The root has libvirt's virt-aa-helper and a dpkg database (helperRoot) unless `helper` is false.
  const cases: [string | undefined, boolean, boolean, string, string, string][] = [
    ['security_driver = "apparmor"', false, true, "helper", "enforce", '/etc/libvirt/qemu.conf: security_driver = "apparmor" → attach = "helper"'],
    ['security_driver = [ "selinux", "apparmor" ]', true, true, "helper", "enforce", '/etc/libvirt/qemu.conf: security_driver = ["selinux","apparmor"] → attach = "helper"'],
    ['security_driver = "none"', true, true, "wrapper", "enforce", '/etc/libvirt/qemu.conf: security_driver = "none" → attach = "wrapper"'],
    ['#security_driver = "selinux"', true, true, "helper", "enforce", '/etc/libvirt/qemu.conf: security_driver unset, kernel AppArmor on → apparmor → attach = "helper"'],
    [undefined, false, true, "wrapper", "enforce", '/etc/libvirt/qemu.conf: security_driver unset, kernel AppArmor off → none → attach = "wrapper"'],
    ['security_driver = "selinux"', true, true, "none", "warn", '/etc/libvirt/qemu.conf: security_driver = "selinux" is neither "apparmor" nor "none" → attach = "none" (virt-aa-hook cannot attach QEMU next to that driver)'],
    // Negative control: libvirt's driver without a virt-aa-helper to divert falls back to seclabel.
    ['security_driver = "apparmor"', true, false, "seclabel", "enforce", '/etc/libvirt/qemu.conf: security_driver = "apparmor", but /usr/lib/libvirt/virt-aa-helper is missing (no virt-aa-helper to divert) → attach = "seclabel"'],
  ];
  for (const [conf, kernel, helper, attach, startedCheck, reason] of cases) {
    it(`${conf ?? "no qemu.conf"}, kernel AppArmor ${kernel ? "Y" : "absent"}${helper ? "" : ", no virt-aa-helper"} → ${attach}`, () => {
      if (conf !== undefined) write(path.join(root, "etc/libvirt/qemu.conf"), `${conf}\n`);
      if (kernel) write(path.join(root, "sys/module/apparmor/parameters/enabled"), "Y\n");
      if (helper) helperRoot(root);
      const layout = new Layout(root);
      expect(chooseAttach(readSecurityDriver(layout), helperDivertable(layout))).toEqual({ attach, startedCheck, reason });
    });
  }
  it("a virt-aa-helper someone else diverted is not diverted again: seclabel", () => {
    write(path.join(root, "etc/libvirt/qemu.conf"), 'security_driver = "apparmor"\n');
    helperRoot(root);
    write(path.join(root, "var/lib/dpkg/diversions"), "/usr/lib/libvirt/virt-aa-helper\n/usr/lib/libvirt/virt-aa-helper.distrib\n:\n");
    const layout = new Layout(root);
    expect(chooseAttach(readSecurityDriver(layout), helperDivertable(layout)).attach).toBe("seclabel");
    expect(helperDivertable(layout)).toEqual({ ok: false, why: "/usr/lib/libvirt/virt-aa-helper is already diverted to /usr/lib/libvirt/virt-aa-helper.distrib by :" });
  });
  it("a kernel file saying N is no AppArmor", () => {
    write(path.join(root, "sys/module/apparmor/parameters/enabled"), "N\n");
    expect(readSecurityDriver(new Layout(root)).effective).toBe("none");
  });
});

describe("install.sh on a host whose libvirt uses AppArmor", () => {
  // With libvirt's virt-aa-helper and dpkg the choice is helper (test/install/helper.test.ts); this
  // root has neither, so seclabel, and the reason says why.
  it("without a virt-aa-helper to divert: writes seclabel + enforce, installs the command and the libvirtd drop-in, says what is confined; uninstall restores the exact tree", () => {
    write(path.join(root, "etc/libvirt/qemu.conf"), 'security_driver = "apparmor"\n');
    fs.mkdirSync(path.join(root, "etc/systemd/system"), { recursive: true });
    write(path.join(root, "etc/libvirt/qemu/web.xml"), domain("web", true));
    write(path.join(root, "etc/libvirt/qemu/db.xml"), domain("db", false));
    write(path.join(root, "run/libvirt/qemu/db.pid"), "4242\n");
    write(path.join(root, "proc/4242/attr/apparmor/current"), "unconfined\n");
    const before = tree(root);
    const r = install();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const conf = read("etc/libvirt/virt-aa-hook.conf");
    expect(conf.split("\n").filter((l) => /^[a-z_]+ = /.test(l))).toEqual(['started_check = "enforce"', 'attach = "seclabel"']);
    expect(read("etc/systemd/system/libvirtd.service.d/virt-aa-hook.conf")).toBe(
      "# Installed by virt-aa-hook install.sh (uninstall.sh removes it). libvirt refuses a domain whose\n" +
        "# static AppArmor label names a profile that is not loaded: load them before libvirtd starts.\n" +
        "[Unit]\nAfter=apparmor.service\n\n[Service]\nExecStartPre=-/usr/sbin/virt-aa-hook load-adopted\n",
    );
    expect(read("usr/sbin/virt-aa-hook")).toBe(
      `#!/bin/sh\n# virt-aa-hook command (installed by virt-aa-hook install.sh; uninstall.sh removes it).\nexec ${NODE} /usr/lib/virt-aa-hook/virt-aa-hook.cjs "$@"\n`,
    );
    expect(summary(r.stdout)).toEqual([
      'virt-aa-hook install: /etc/libvirt/virt-aa-hook.conf: attach = "seclabel", started_check = "enforce" (chosen for this host: /etc/libvirt/qemu.conf: security_driver = "apparmor", but /usr/lib/libvirt/virt-aa-helper is missing (no virt-aa-helper to divert) → attach = "seclabel")',
      "virt-aa-hook install: NOT confined: this kernel has no AppArmor (/sys/module/apparmor/parameters/enabled): no guest is confined until the host boots with AppArmor",
      "virt-aa-hook install: adopted (confined by virt-aa-hook from their next start): web",
      "virt-aa-hook install: not adopted (left to libvirt's own AppArmor driver): db; to confine them with virt-aa-hook: virt-aa-hook adopt db",
      "virt-aa-hook install: db: running NOT confined (unconfined: unconfined): restart it (virsh destroy/start) once adopted",
      "virt-aa-hook install: NVRAM: profiles created from /etc/apparmor.d/libvirt/TEMPLATE.virt-aa-hook-qemu let each guest open only its own NVRAM",
      "virt-aa-hook install: at boot: libvirtd.service runs virt-aa-hook load-adopted first (/etc/systemd/system/libvirtd.service.d/virt-aa-hook.conf)",
    ]);

    // A guest profile made from our template compiles with the real parser; it has no NVRAM rule
    // of its own, libvirt's abstraction (the negative control) does.
    const aa = path.join(root, "etc/apparmor.d");
    const profile = read("etc/apparmor.d/libvirt/TEMPLATE.virt-aa-hook-qemu").replace("LIBVIRT_TEMPLATE", `libvirt-${UUID}`);
    write(path.join(aa, `libvirt/libvirt-${UUID}`), profile);
    expect(compile(aa, `libvirt/libvirt-${UUID}`)).toEqual({ status: 0, stdout: "", stderr: "" });
    fs.rmSync(path.join(aa, `libvirt/libvirt-${UUID}`));
    expect(read("etc/apparmor.d/abstractions/virt-aa-hook-qemu")).not.toMatch(/^\s*owner \/var\/lib\/libvirt\/qemu\/nvram\//m);
    expect(read("etc/apparmor.d/abstractions/libvirt-qemu")).toMatch(/^\s*owner \/var\/lib\/libvirt\/qemu\/nvram\/\*_VARS\.fd rwk,$/m);

    // Uninstall refuses while a domain carries our static label; with it undone, the tree is as before.
    const refused = uninstall();
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(
      "virt-aa-hook uninstall: error: guests still carry virt-aa-hook's static AppArmor label (web ): run 'virt-aa-hook adopt --all --undo' first, or pass --force\n",
    );
    const u = uninstall("--force");
    expect(u.stderr).toBe("");
    expect(u.status).toBe(0);
    expect(tree(root)).toEqual(before);
  });

  it("keeps an existing config byte for byte and reports what it says, and what this host would suggest", () => {
    write(path.join(root, "etc/libvirt/qemu.conf"), 'security_driver = "none"\n');
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'attach = "none"\n', 0o600);
    const r = install();
    expect(r.status).toBe(0);
    expect(read("etc/libvirt/virt-aa-hook.conf")).toBe('attach = "none"\n');
    expect(summary(r.stdout).slice(0, 3)).toEqual([
      'virt-aa-hook install: /etc/libvirt/virt-aa-hook.conf: attach = "none", started_check = "warn" (kept as it was; this host suggests: /etc/libvirt/qemu.conf: security_driver = "none" → attach = "wrapper")',
      "virt-aa-hook install: NOT confined: this kernel has no AppArmor (/sys/module/apparmor/parameters/enabled): no guest is confined until the host boots with AppArmor",
      'virt-aa-hook install: NOT confined: attach = "none" and /etc/libvirt/qemu.conf: security_driver = "none": nothing puts QEMU into a profile',
    ]);
  });
});

describe("install.sh refusals", () => {
  it("never overwrites a /usr/sbin/virt-aa-hook that is not ours", () => {
    write(path.join(root, "usr/sbin/virt-aa-hook"), "#!/bin/sh\necho someone else's\n", 0o755);
    const before = tree(root, { dirMtimes: true });
    const r = install();
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("virt-aa-hook install: error: /usr/sbin/virt-aa-hook exists and is not virt-aa-hook's: move it away and run again\n");
    expect(tree(root, { dirMtimes: true })).toEqual(before);
  });

  it("--adopt-all is for this host's libvirt only, not a --root", () => {
    const r = install("--adopt-all");
    expect(r).toEqual({
      status: 1,
      stdout: "",
      stderr: "virt-aa-hook install: error: --adopt-all adopts this host's domains through virsh: not with --root\n",
    });
  });
});

// The installer reads the config already there and takes its locations from the layout it makes
// (Layout.from): the configured parser runs the compile check; its own files still go to the
// system's AppArmor directory whatever apparmor_dir says.
describe("install with an existing config that moves locations", () => {
  it("compiles with the configured parser, and installs into the system's AppArmor directory", () => {
    const calls = path.join(src, "parser-calls");
    const parser = path.join(src, "apparmor_parser");
    write(parser, `#!/bin/sh\necho "$@" >> ${calls}\nexec /usr/sbin/apparmor_parser "$@"\n`, 0o755);
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), `attach = "wrapper"\nparser = "${parser}"\napparmor_dir = "/srv/aa"\n`);
    const r = install();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    // The hook's profile, the two guest checks and libvirtd's.
    expect(fs.readFileSync(calls, "utf8").split("\n").filter((l) => l.startsWith("-QK")).length).toBe(4);
    expect(fs.existsSync(path.join(root, "etc/apparmor.d/usr.lib.virt-aa-hook.qemu-hook"))).toBe(true);
    expect(fs.existsSync(path.join(root, "etc/apparmor.d/libvirt/TEMPLATE.virt-aa-hook-qemu"))).toBe(true);
    expect(fs.existsSync(path.join(root, "srv"))).toBe(false);
  });

  it("says when the configured parser is not there, and installs without the compile check", () => {
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 'attach = "wrapper"\nparser = "/nonexistent/apparmor_parser"\n');
    const r = install();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("virt-aa-hook install: warning: /nonexistent/apparmor_parser not found: AppArmor files installed without a compile check\n");
  });
});
