/**
 * The installer reads the config that is already there and takes its locations from the layout it
 * makes (Layout.from): the configured parser runs the compile check; its own files still go to the
 * system's AppArmor directory whatever `apparmor_dir` says.
 */
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { hostRoot, runScript, sourceTree, write } from "./helpers.js";

vi.setConfig({ testTimeout: 180_000 });

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

const CONFIG = "etc/libvirt/virt-aa-hook.conf";
const install = () => runScript("install.sh", src, ["--root", root, "--node", "/usr/bin/node", "--libvirt-version", "9.0.0"]);

describe("install with an existing config that moves locations", () => {
  it("compiles with the configured parser, and installs into the system's AppArmor directory", () => {
    const calls = path.join(src, "parser-calls");
    const parser = path.join(src, "apparmor_parser");
    write(parser, `#!/bin/sh\necho "$@" >> ${calls}\nexec /usr/sbin/apparmor_parser "$@"\n`, 0o755);
    write(path.join(root, CONFIG), `attach = "wrapper"\nparser = "${parser}"\napparmor_dir = "/srv/aa"\n`);
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
    write(path.join(root, CONFIG), 'attach = "wrapper"\nparser = "/nonexistent/apparmor_parser"\n');
    const r = install();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("virt-aa-hook install: warning: /nonexistent/apparmor_parser not found: AppArmor files installed without a compile check\n");
  });
});
