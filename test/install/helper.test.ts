/**
 * attach = "helper" in install.sh / uninstall.sh, in temporary roots with this machine's real
 * dpkg-divert working on the root's own dpkg database (`--admindir ROOT/var/lib/dpkg`, an empty
 * `diversions` file to start with) and the real apparmor_parser. libvirt's virt-aa-helper is a
 * stand-in of a few bytes (only its bytes matter: uninstall must put exactly them back); the
 * launchers hooks/virt-aa-helper and hooks/network are the repository's when it has them, else
 * stand-ins of the same shape (NODE=, BUNDLE=). The machine's own /usr/lib/libvirt and dpkg
 * database are never touched: each test checks that /var/lib/dpkg/diversions is unchanged.
 */
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { addLaunchers, changed, compile, helperRoot, hostRoot, runScript, sha, sourceTree, tree, treeHash, write } from "./helpers.js";

vi.setConfig({ testTimeout: 300_000 });

const NODE = "/usr/bin/node";
const UUID = "0f1e2d3c-4b5a-4697-8877-665544332211";
const HELPER = "usr/lib/libvirt/virt-aa-helper";
const REAL = "usr/lib/libvirt/virt-aa-helper.real";
const OUR_DIVERSION = "/usr/lib/libvirt/virt-aa-helper\n/usr/lib/libvirt/virt-aa-helper.real\nvirt-aa-hook\n";
const MACHINE_DIVERSIONS = fs.existsSync("/var/lib/dpkg/diversions") ? fs.readFileSync("/var/lib/dpkg/diversions") : undefined;

let src: string;
let root: string;
let original: Buffer;
beforeEach(() => {
  src = sourceTree();
  addLaunchers(src);
  root = hostRoot();
  original = helperRoot(root);
  write(path.join(root, "etc/libvirt/qemu.conf"), 'security_driver = "apparmor"\n');
});
afterEach(() => {
  fs.rmSync(src, { recursive: true, force: true });
  fs.rmSync(root, { recursive: true, force: true });
  // The machine's dpkg database was never the one dpkg-divert worked on.
  expect(fs.existsSync("/var/lib/dpkg/diversions") ? fs.readFileSync("/var/lib/dpkg/diversions") : undefined).toEqual(MACHINE_DIVERSIONS);
});

const install = (...args: string[]) => runScript("install.sh", src, ["--root", root, "--node", NODE, "--libvirt-version", "9.0.0", ...args]);
const uninstall = (...args: string[]) => runScript("uninstall.sh", src, ["--root", root, ...args]);
const at = (rel: string) => path.join(root, rel);
const read = (rel: string) => fs.readFileSync(at(rel), "utf8");
const launcher = (rel: string) =>
  fs
    .readFileSync(path.join(src, rel), "utf8")
    .replace(/^NODE=.*$/m, `NODE=${NODE}`)
    .replace(/^BUNDLE=.*$/m, "BUNDLE=/usr/lib/virt-aa-hook/virt-aa-hook.cjs");
/**
 * The tree as uninstall must restore it, leaving out only what dpkg-divert does to dpkg's own
 * database beyond its content: its backup diversions-old (written on every change) and the
 * mtime of diversions (rewritten; its content is compared).
 */
const withoutDpkgBackup = (entries: ReturnType<typeof tree>) =>
  entries.filter((e) => e.path !== "var/lib/dpkg/diversions-old").map((e) => (e.path === "var/lib/dpkg/diversions" ? { ...e, mtime: undefined } : e));

describe("install.sh on a host whose libvirt uses AppArmor (attach = helper)", () => {
  it("diverts libvirt's virt-aa-helper to .real, links our launcher in its place, installs both launchers and the network hook; a second run changes nothing; uninstall puts back the exact tree", () => {
    fs.mkdirSync(at("etc/systemd/system"), { recursive: true });
    write(at("etc/libvirt/qemu/db.xml"), `<domain type='kvm'>\n  <name>db</name>\n  <uuid>${UUID}</uuid>\n</domain>\n`);
    const before = tree(root);
    const r = install();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);

    // The config: helper, chosen for this host.
    expect(read("etc/libvirt/virt-aa-hook.conf").split("\n").filter((l) => /^[a-z_]+ = /.test(l))).toEqual(['started_check = "enforce"', 'attach = "helper"']);
    // dpkg's record, the original moved aside byte for byte, our link in its place.
    expect(read("var/lib/dpkg/diversions")).toBe(OUR_DIVERSION);
    expect(fs.readFileSync(at(REAL))).toEqual(original);
    expect((fs.statSync(at(REAL)).mode & 0o7777).toString(8)).toBe("755");
    expect(fs.lstatSync(at(HELPER)).isSymbolicLink()).toBe(true);
    expect(fs.readlinkSync(at(HELPER))).toBe("/usr/lib/virt-aa-hook/virt-aa-helper");
    // The launchers, with NODE= and BUNDLE= rewritten, executable.
    expect(read("usr/lib/virt-aa-hook/virt-aa-helper")).toBe(launcher("hooks/virt-aa-helper"));
    expect(read("usr/lib/virt-aa-hook/network-hook")).toBe(launcher("hooks/network"));
    expect(read("usr/lib/virt-aa-hook/virt-aa-helper")).not.toBe(fs.readFileSync(path.join(src, "hooks/virt-aa-helper"), "utf8"));
    for (const l of ["usr/lib/virt-aa-hook/virt-aa-helper", "usr/lib/virt-aa-hook/network-hook"]) expect(fs.statSync(at(l)).mode & 0o777).toBe(0o755);
    // libvirt 9.0 runs every program in network.d/ after `network`: ours goes there.
    expect(fs.readlinkSync(at("etc/libvirt/hooks/network.d/virt-aa-hook"))).toBe("/usr/lib/virt-aa-hook/network-hook");
    expect(fs.existsSync(at("etc/libvirt/hooks/network"))).toBe(false);
    // libvirtd's local override sends both launchers to the virt-aa-hook profile, which reads them.
    const local = read("etc/apparmor.d/local/usr.sbin.libvirtd");
    expect(local).toContain("\n/usr/lib/virt-aa-hook/virt-aa-helper Px -> virt-aa-hook,\n");
    expect(local).toContain("\n/usr/lib/virt-aa-hook/network-hook Px -> virt-aa-hook,\n");
    const hookProfile = read("etc/apparmor.d/usr.lib.virt-aa-hook.qemu-hook");
    expect(hookProfile).toContain("\n  /usr/lib/virt-aa-hook/virt-aa-helper r,\n");
    expect(hookProfile).toContain("\n  /usr/lib/virt-aa-hook/network-hook r,\n");
    const aa = at("etc/apparmor.d");
    expect(compile(aa, "usr.lib.virt-aa-hook.qemu-hook")).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(compile(aa, "usr.sbin.libvirtd")).toEqual({ status: 0, stdout: "", stderr: "" });
    // The manifest: the diversion before the link that replaces the helper (uninstall undoes them in reverse).
    const manifest = read("var/lib/virt-aa-hook/install-manifest").split("\n");
    const d = manifest.indexOf("diverted /usr/lib/libvirt/virt-aa-helper /usr/lib/libvirt/virt-aa-helper.real");
    expect(d).toBeGreaterThan(0);
    expect(manifest.indexOf("created /usr/lib/libvirt/virt-aa-helper")).toBe(d + 1);
    expect(manifest).toContain("created /etc/libvirt/hooks/network.d/virt-aa-hook");
    // What it says.
    expect(r.stdout).toContain("virt-aa-hook install: divert /usr/lib/libvirt/virt-aa-helper to /usr/lib/libvirt/virt-aa-helper.real (dpkg-divert --package virt-aa-hook --rename --add)\n");
    expect(r.stdout).toContain("virt-aa-hook install: link /usr/lib/libvirt/virt-aa-helper -> /usr/lib/virt-aa-hook/virt-aa-helper\n");
    expect(r.stdout).toContain(
      'virt-aa-hook install: /etc/libvirt/virt-aa-hook.conf: attach = "helper", started_check = "enforce" (chosen for this host: /etc/libvirt/qemu.conf: security_driver = "apparmor" → attach = "helper")\n',
    );
    expect(r.stdout).toContain(
      "virt-aa-hook install: helper mode: libvirt's AppArmor driver labels every guest dynamically and runs /usr/lib/libvirt/virt-aa-helper -> /usr/lib/virt-aa-hook/virt-aa-helper (libvirt's own is /usr/lib/libvirt/virt-aa-helper.real): " +
        "virt-aa-hook writes and loads each guest's profile at start, hotplug, media change, snapshot, block job and restore; no domain needs adopting\n",
    );
    expect(r.stdout).toContain("virt-aa-hook install: labelled dynamically (confined by virt-aa-hook through libvirt's driver from their next start): db\n");

    // Idempotent: nothing changes, not even an mtime.
    const installed = treeHash(tree(root, { dirMtimes: true }));
    const again = install();
    expect(again.status).toBe(0);
    expect(again.stdout).toContain("virt-aa-hook install: already installed, nothing to do\n");
    expect(again.stdout).not.toContain("divert");
    expect(treeHash(tree(root, { dirMtimes: true }))).toBe(installed);

    // Uninstall: libvirt's helper back at its path (same bytes, same mode), the diversion gone.
    const u = uninstall();
    expect(u.stderr).toBe("");
    expect(u.status).toBe(0);
    expect(u.stdout).toContain(
      "virt-aa-hook uninstall: remove the diversion of /usr/lib/libvirt/virt-aa-helper: /usr/lib/libvirt/virt-aa-helper.real back to /usr/lib/libvirt/virt-aa-helper (dpkg-divert --package virt-aa-hook --rename --remove)\n",
    );
    expect(sha(fs.readFileSync(at(HELPER)))).toBe(sha(original));
    expect(fs.lstatSync(at(HELPER)).isFile()).toBe(true);
    expect(fs.existsSync(at(REAL))).toBe(false);
    expect(read("var/lib/dpkg/diversions")).toBe("");
    expect(changed(withoutDpkgBackup(before), withoutDpkgBackup(tree(root)))).toEqual({});
    expect(withoutDpkgBackup(tree(root))).toEqual(withoutDpkgBackup(before));
  });

  it("dry run says it would divert, and changes nothing", () => {
    const before = tree(root, { dirMtimes: true });
    const r = install("--dry-run");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("virt-aa-hook install: would divert /usr/lib/libvirt/virt-aa-helper to /usr/lib/libvirt/virt-aa-helper.real (dpkg-divert --package virt-aa-hook --rename --add)\n");
    expect(r.stdout).toContain("virt-aa-hook install: would link /usr/lib/libvirt/virt-aa-helper -> /usr/lib/virt-aa-hook/virt-aa-helper\n");
    expect(tree(root, { dirMtimes: true })).toEqual(before);
  });

  it("after a libvirt package reinstall put its helper back without the diversion, install.sh diverts it again", () => {
    expect(install().status).toBe(0);
    // What an admin's `dpkg-divert --rename --remove` and a libvirt reinstall leave: libvirt's helper at its path, no diversion.
    fs.rmSync(at(HELPER));
    fs.renameSync(at(REAL), at(HELPER));
    write(at("var/lib/dpkg/diversions"), "");
    const r = install();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(read("var/lib/dpkg/diversions")).toBe(OUR_DIVERSION);
    expect(fs.readlinkSync(at(HELPER))).toBe("/usr/lib/virt-aa-hook/virt-aa-helper");
    expect(fs.readFileSync(at(REAL))).toEqual(original);
    // Recorded once: uninstall undoes it once and puts the helper back.
    expect(read("var/lib/virt-aa-hook/install-manifest").split("\n").filter((l) => l.startsWith("diverted ")).length).toBe(1);
    expect(uninstall().status).toBe(0);
    expect(fs.readFileSync(at(HELPER))).toEqual(original);
    expect(read("var/lib/dpkg/diversions")).toBe("");
  });
});

describe("helper mode refusals (nothing changed)", () => {
  it("never diverts a virt-aa-helper someone else diverted (existing config says helper)", () => {
    write(at("etc/libvirt/virt-aa-hook.conf"), 'attach = "helper"\n');
    write(at("var/lib/dpkg/diversions"), "/usr/lib/libvirt/virt-aa-helper\n/usr/lib/libvirt/virt-aa-helper.distrib\n:\n");
    const before = tree(root, { dirMtimes: true });
    const r = install();
    expect(r).toEqual({
      status: 1,
      stdout: "",
      stderr: 'virt-aa-hook install: error: /usr/lib/libvirt/virt-aa-helper is already diverted to /usr/lib/libvirt/virt-aa-helper.distrib by a local diversion: attach = "helper" cannot divert it to /usr/lib/libvirt/virt-aa-helper.real\n',
    });
    expect(tree(root, { dirMtimes: true })).toEqual(before);
  });

  it("refuses attach = helper without libvirt's virt-aa-helper to divert", () => {
    write(at("etc/libvirt/virt-aa-hook.conf"), 'attach = "helper"\n');
    fs.rmSync(at(HELPER));
    const before = tree(root, { dirMtimes: true });
    const r = install();
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'virt-aa-hook install: error: /usr/lib/libvirt/virt-aa-helper is missing: attach = "helper" needs libvirt\'s virt-aa-helper to divert (install libvirt-daemon-system, or set attach = "seclabel")\n',
    );
    expect(tree(root, { dirMtimes: true })).toEqual(before);
  });

  it("refuses to leave a diversion behind when the config no longer says helper", () => {
    expect(install().status).toBe(0);
    write(at("etc/libvirt/virt-aa-hook.conf"), 'attach = "seclabel"\n');
    const before = tree(root, { dirMtimes: true });
    const r = install();
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'virt-aa-hook install: error: /etc/libvirt/virt-aa-hook.conf says attach = "seclabel", but virt-aa-hook diverted /usr/lib/libvirt/virt-aa-helper for attach = "helper": run uninstall.sh (it puts libvirt\'s helper back), then install.sh\n',
    );
    expect(tree(root, { dirMtimes: true })).toEqual(before);
  });

  it("libvirt < 6.5 runs one network hook: an admin's is never replaced; negative control: libvirt 9.0 keeps it and uses network.d/", () => {
    write(at("etc/libvirt/hooks/network"), "#!/bin/sh\n# the admin's network hook\n", 0o755);
    const before = tree(root, { dirMtimes: true });
    const old = runScript("install.sh", src, ["--root", root, "--node", NODE, "--libvirt-version", "6.0.0"]);
    expect(old.status).toBe(1);
    expect(old.stderr).toBe(
      "virt-aa-hook install: error: /etc/libvirt/hooks/network exists and is not virt-aa-hook's: libvirt 6.0.0 runs only this one network hook, and virt-aa-hook does not replace an admin's (move it away, or upgrade to libvirt >= 6.5, which also runs /etc/libvirt/hooks/network.d/virt-aa-hook)\n",
    );
    expect(tree(root, { dirMtimes: true })).toEqual(before);
    const r = install();
    expect(r.status).toBe(0);
    expect(read("etc/libvirt/hooks/network")).toBe("#!/bin/sh\n# the admin's network hook\n");
    expect(fs.readlinkSync(at("etc/libvirt/hooks/network.d/virt-aa-hook"))).toBe("/usr/lib/virt-aa-hook/network-hook");
  });

  it("libvirt < 6.5 without a network hook: ours is linked as /etc/libvirt/hooks/network and removed again", () => {
    const before = tree(root);
    const r = runScript("install.sh", src, ["--root", root, "--node", NODE, "--libvirt-version", "6.0.0"]);
    expect(r.status).toBe(0);
    expect(fs.readlinkSync(at("etc/libvirt/hooks/network"))).toBe("/usr/lib/virt-aa-hook/network-hook");
    expect(uninstall().status).toBe(0);
    expect(withoutDpkgBackup(tree(root))).toEqual(withoutDpkgBackup(before));
  });
});
