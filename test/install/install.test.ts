import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { changed, compile, hostRoot, runScript, sha, sourceTree, tree, treeHash, write } from "./helpers.js";

const NODE = "/usr/bin/node";
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

const install = (...args: string[]) => runScript("install.sh", src, ["--root", root, "--node", NODE, ...args]);
const uninstall = (...args: string[]) => runScript("uninstall.sh", src, ["--root", root, ...args]);
const read = (rel: string) => fs.readFileSync(path.join(root, rel), "utf8");
const srcText = (rel: string) => fs.readFileSync(path.join(src, rel), "utf8");

function expectedLauncher(): string {
  return srcText("hooks/qemu")
    .replace(/^NODE=.*$/m, `NODE=${NODE}`)
    .replace(/^BUNDLE=.*$/m, "BUNDLE=/usr/lib/virt-aa-hook/virt-aa-hook.cjs");
}

describe("install.sh into a root with libvirt 9.0", () => {
  it("installs exactly these files, modes and contents", () => {
    const localBefore = read("etc/apparmor.d/local/usr.sbin.libvirtd");
    const before = tree(root);
    const r = install("--libvirt-version", "9.0.0");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const sameFile = (rel: string, mode: string) => ({ type: "file", mode, content: sha(srcText(rel)) });
    const hookProfile = srcText("install/apparmor/usr.lib.virt-aa-hook.qemu-hook").replace(
      /^@\{virt_aa_hook_node\}=.*$/m,
      `@{virt_aa_hook_node}=${fs.realpathSync(NODE)}`,
    );
    const local = localBefore + srcText("install/apparmor/usr.sbin.libvirtd.local");
    const wrapper = srcText("hooks/qemu-wrapper").replace("\nALLOW_ENV_OVERRIDES=yes\n", "\nALLOW_ENV_OVERRIDES=no\n");
    expect(wrapper).not.toBe(srcText("hooks/qemu-wrapper"));
    const manifest = [
      "created-dir /var",
      "created-dir /var/lib",
      "created-dir /var/lib/virt-aa-hook",
      "created-dir /usr/lib",
      "created-dir /usr/lib/virt-aa-hook",
      "created /usr/lib/virt-aa-hook/virt-aa-hook.cjs",
      "created /usr/lib/virt-aa-hook/qemu-hook",
      "created /usr/lib/virt-aa-hook/qemu-wrapper",
      "created-dir /usr/lib/virt-aa-hook/bin",
      "created /usr/lib/virt-aa-hook/bin/qemu-system-i386",
      "created /usr/lib/virt-aa-hook/bin/qemu-system-x86_64",
      "created /etc/libvirt/virt-aa-hook.conf",
      "created /etc/apparmor.d/usr.lib.virt-aa-hook.qemu-hook",
      "created-dir /var/lib/virt-aa-hook/backup",
      "created-dir /var/lib/virt-aa-hook/backup/etc",
      "created-dir /var/lib/virt-aa-hook/backup/etc/apparmor.d",
      "created-dir /var/lib/virt-aa-hook/backup/etc/apparmor.d/local",
      "modified /etc/apparmor.d/local/usr.sbin.libvirtd",
      "created-dir /etc/libvirt/hooks",
      "created-dir /etc/libvirt/hooks/qemu.d",
      "created /etc/libvirt/hooks/qemu.d/virt-aa-hook",
      "",
    ].join("\n");
    const dir = { type: "dir", mode: "0755" };
    expect(changed(before, tree(root))).toEqual({
      var: dir,
      "var/lib": dir,
      "var/lib/virt-aa-hook": dir,
      "var/lib/virt-aa-hook/install-manifest": { type: "file", mode: "0644", content: sha(manifest) },
      "var/lib/virt-aa-hook/backup": dir,
      "var/lib/virt-aa-hook/backup/etc": dir,
      "var/lib/virt-aa-hook/backup/etc/apparmor.d": dir,
      "var/lib/virt-aa-hook/backup/etc/apparmor.d/local": dir,
      "var/lib/virt-aa-hook/backup/etc/apparmor.d/local/usr.sbin.libvirtd": { type: "file", mode: "0644", content: sha(localBefore) },
      "usr/lib": dir,
      "usr/lib/virt-aa-hook": dir,
      "usr/lib/virt-aa-hook/virt-aa-hook.cjs": sameFile("dist/virt-aa-hook.cjs", "0644"),
      "usr/lib/virt-aa-hook/qemu-hook": { type: "file", mode: "0755", content: sha(expectedLauncher()) },
      "usr/lib/virt-aa-hook/qemu-wrapper": { type: "file", mode: "0755", content: sha(wrapper) },
      "usr/lib/virt-aa-hook/bin": dir,
      "usr/lib/virt-aa-hook/bin/qemu-system-i386": { type: "link", mode: "0777", content: "../qemu-wrapper" },
      "usr/lib/virt-aa-hook/bin/qemu-system-x86_64": { type: "link", mode: "0777", content: "../qemu-wrapper" },
      "etc/libvirt/virt-aa-hook.conf": sameFile("install/virt-aa-hook.conf", "0644"),
      // What was installed where the admin may edit: uninstall removes only an unedited copy.
      "var/lib/virt-aa-hook/pristine": dir,
      "var/lib/virt-aa-hook/pristine/etc": dir,
      "var/lib/virt-aa-hook/pristine/etc/libvirt": dir,
      "var/lib/virt-aa-hook/pristine/etc/libvirt/virt-aa-hook.conf": sameFile("install/virt-aa-hook.conf", "0644"),
      "etc/libvirt/hooks": dir,
      "etc/libvirt/hooks/qemu.d": dir,
      "etc/libvirt/hooks/qemu.d/virt-aa-hook": { type: "link", mode: "0777", content: "/usr/lib/virt-aa-hook/qemu-hook" },
      "etc/apparmor.d/usr.lib.virt-aa-hook.qemu-hook": { type: "file", mode: "0644", content: sha(hookProfile) },
      "etc/apparmor.d/local/usr.sbin.libvirtd": { type: "file", mode: "0644", content: sha(local) },
    });
    expect(r.stdout).toContain("virt-aa-hook install: reload libvirtd so it finds the hook: systemctl reload libvirtd, or kill -HUP $(cat /run/libvirtd.pid)\n");
    expect(r.stdout).toContain("virt-aa-hook install: kept existing /etc/apparmor.d/libvirt/TEMPLATE.qemu\n");
    expect(r.stdout).toContain("virt-aa-hook install: kept existing /etc/apparmor.d/abstractions/libvirt-qemu\n");
  });

  it("is idempotent: a second run changes nothing (tree hash with every mtime)", () => {
    expect(install("--libvirt-version", "9.0.0").status).toBe(0);
    const once = tree(root, { dirMtimes: true });
    const r = install("--libvirt-version", "9.0.0");
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(
      [
        "virt-aa-hook install: kept existing /etc/apparmor.d/libvirt/TEMPLATE.qemu",
        "virt-aa-hook install: kept existing /etc/apparmor.d/abstractions/libvirt-qemu",
        "virt-aa-hook install: already installed, nothing to do",
        "",
      ].join("\n"),
    );
    expect(treeHash(tree(root, { dirMtimes: true }))).toBe(treeHash(once));
  });

  it("upgrades a changed shipped file in place and keeps the original backup", () => {
    const localBefore = read("etc/apparmor.d/local/usr.sbin.libvirtd");
    expect(install("--libvirt-version", "9.0.0").status).toBe(0);
    fs.appendFileSync(path.join(src, "install/apparmor/usr.sbin.libvirtd.local"), "");
    const snippet = srcText("install/apparmor/usr.sbin.libvirtd.local").replace(
      "/usr/lib/virt-aa-hook/qemu-wrapper rix,",
      "/usr/lib/virt-aa-hook/qemu-wrapper rix,\n# upgraded",
    );
    fs.writeFileSync(path.join(src, "install/apparmor/usr.sbin.libvirtd.local"), snippet);
    const r = install("--libvirt-version", "9.0.0");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("virt-aa-hook install: install /etc/apparmor.d/local/usr.sbin.libvirtd (mode 0644)\n");
    expect(r.stdout).not.toContain("back up");
    expect(read("etc/apparmor.d/local/usr.sbin.libvirtd")).toBe(localBefore + snippet);
    expect(read("var/lib/virt-aa-hook/backup/etc/apparmor.d/local/usr.sbin.libvirtd")).toBe(localBefore);
    expect(uninstall().status).toBe(0);
    expect(read("etc/apparmor.d/local/usr.sbin.libvirtd")).toBe(localBefore);
  });

  it("keeps a foreign qemu hook running beside qemu.d and an edited config; uninstall restores the exact tree", () => {
    write(path.join(root, "etc/libvirt/hooks/qemu"), "#!/bin/sh\n# the admin's own hook\nexit 0\n", 0o750);
    write(path.join(root, "etc/libvirt/virt-aa-hook.conf"), '# edited by the admin\nmode = "complain"\n', 0o640);
    fs.utimesSync(path.join(root, "etc/libvirt/virt-aa-hook.conf"), 1_000_000, 1_000_000);
    const before = tree(root);
    const r = install("--libvirt-version", "9.0.0");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(
      "virt-aa-hook install: kept /etc/libvirt/hooks/qemu (not ours): libvirt 9.0.0 runs it, then /etc/libvirt/hooks/qemu.d/virt-aa-hook\n",
    );
    expect(r.stdout).toContain("virt-aa-hook install: kept existing /etc/libvirt/virt-aa-hook.conf\n");
    expect(read("etc/libvirt/hooks/qemu")).toBe("#!/bin/sh\n# the admin's own hook\nexit 0\n");
    expect(read("etc/libvirt/virt-aa-hook.conf")).toBe('# edited by the admin\nmode = "complain"\n');
    const u = uninstall();
    expect(u.stderr).toBe("");
    expect(u.status).toBe(0);
    expect(tree(root)).toEqual(before);
  });

  it("dry run prints the plan and changes nothing", () => {
    const before = tree(root, { dirMtimes: true });
    const r = install("--libvirt-version", "9.0.0", "--dry-run");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("virt-aa-hook install: would install /usr/lib/virt-aa-hook/qemu-hook (mode 0755)\n");
    expect(r.stdout).toContain(
      "virt-aa-hook install: would link /etc/libvirt/hooks/qemu.d/virt-aa-hook -> /usr/lib/virt-aa-hook/qemu-hook\n",
    );
    expect(r.stdout).toContain(
      "virt-aa-hook install: would back up /etc/apparmor.d/local/usr.sbin.libvirtd to /var/lib/virt-aa-hook/backup/etc/apparmor.d/local/usr.sbin.libvirtd\n",
    );
    expect(r.stdout).toMatch(/dry run: nothing was changed\n$/);
    expect(tree(root, { dirMtimes: true })).toEqual(before);
  });

  it("uninstall dry run changes nothing, and uninstall keeps lines the admin added to the local override", () => {
    const localBefore = read("etc/apparmor.d/local/usr.sbin.libvirtd");
    expect(install("--libvirt-version", "9.0.0").status).toBe(0);
    fs.appendFileSync(path.join(root, "etc/apparmor.d/local/usr.sbin.libvirtd"), "/srv/extra r,\n");
    const installed = tree(root, { dirMtimes: true });
    const d = uninstall("--dry-run");
    expect(d.status).toBe(0);
    expect(d.stdout).toContain("virt-aa-hook uninstall: would remove /etc/libvirt/hooks/qemu.d/virt-aa-hook\n");
    expect(tree(root, { dirMtimes: true })).toEqual(installed);
    const u = uninstall();
    expect(u.status).toBe(0);
    expect(u.stdout).toContain(
      "virt-aa-hook uninstall: remove the virt-aa-hook block from /etc/apparmor.d/local/usr.sbin.libvirtd (keeping lines added since install)\n",
    );
    expect(read("etc/apparmor.d/local/usr.sbin.libvirtd")).toBe(`${localBefore}/srv/extra r,\n`);
    expect(fs.existsSync(path.join(root, "var"))).toBe(false);
  });

  it("uninstall keeps a config the admin edited after install, and removes an unedited one", () => {
    expect(install("--libvirt-version", "9.0.0").status).toBe(0);
    const edited = `${read("etc/libvirt/virt-aa-hook.conf")}mode = "complain"\n`;
    fs.writeFileSync(path.join(root, "etc/libvirt/virt-aa-hook.conf"), edited);
    const u = uninstall();
    expect(u.stderr).toBe("");
    expect(u.status).toBe(0);
    expect(u.stdout).toContain("virt-aa-hook uninstall: kept /etc/libvirt/virt-aa-hook.conf: edited since install\n");
    expect(read("etc/libvirt/virt-aa-hook.conf")).toBe(edited);
    expect(fs.existsSync(path.join(root, "var"))).toBe(false);

    fs.rmSync(path.join(root, "etc/libvirt/virt-aa-hook.conf"));
    expect(install("--libvirt-version", "9.0.0").status).toBe(0);
    expect(uninstall().status).toBe(0);
    expect(fs.existsSync(path.join(root, "etc/libvirt/virt-aa-hook.conf"))).toBe(false);
  });

  it("uninstall refuses while a guest still uses the wrapper", () => {
    expect(install("--libvirt-version", "9.0.0").status).toBe(0);
    write(path.join(root, "etc/libvirt/qemu/web.xml"), "<domain><devices><emulator>/usr/lib/virt-aa-hook/bin/qemu-system-x86_64</emulator></devices></domain>\n");
    const installed = tree(root);
    const u = uninstall();
    expect(u.status).toBe(1);
    expect(u.stderr).toBe(
      "virt-aa-hook uninstall: error: guests still use the emulator wrapper (web ): run 'virt-aa-hook adopt --all --undo' first, or pass --force\n",
    );
    expect(tree(root)).toEqual(installed);
  });
});

describe("install.sh with libvirt older than 6.5 (one qemu hook only)", () => {
  it("links /etc/libvirt/hooks/qemu when there is no hook", () => {
    const before = tree(root);
    expect(install("--libvirt-version", "6.4.0").status).toBe(0);
    expect(fs.readlinkSync(path.join(root, "etc/libvirt/hooks/qemu"))).toBe("/usr/lib/virt-aa-hook/qemu-hook");
    expect(fs.existsSync(path.join(root, "etc/libvirt/hooks/qemu.d"))).toBe(false);
    expect(uninstall().status).toBe(0);
    expect(tree(root)).toEqual(before);
  });

  it("moves a foreign hook aside, chains it, and puts it back on uninstall", () => {
    write(path.join(root, "etc/libvirt/hooks/qemu"), "#!/bin/sh\necho foreign\n", 0o700);
    fs.utimesSync(path.join(root, "etc/libvirt/hooks/qemu"), 2_000_000, 2_000_000);
    const before = tree(root);
    const r = install("--libvirt-version", "6.4.0");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(
      "virt-aa-hook install: move /etc/libvirt/hooks/qemu (not ours) to /etc/libvirt/hooks/qemu.virt-aa-hook-chained; /etc/libvirt/hooks/qemu now runs it, then virt-aa-hook\n",
    );
    expect(read("etc/libvirt/hooks/qemu.virt-aa-hook-chained")).toBe("#!/bin/sh\necho foreign\n");
    const chain = read("etc/libvirt/hooks/qemu");
    expect(chain).toMatch(/^#!\/bin\/sh\n# virt-aa-hook chain/);
    expect(chain).toContain('\n/etc/libvirt/hooks/qemu.virt-aa-hook-chained "$@" < "$tmp" > "$tmp.out"\n');
    expect(chain).toContain('\n    *) /usr/lib/virt-aa-hook/qemu-hook "$@" < "$tmp" ;;\n');
    expect(fs.statSync(path.join(root, "etc/libvirt/hooks/qemu")).mode & 0o7777).toBe(0o755);
    const again = install("--libvirt-version", "6.4.0");
    expect(again.stdout).toMatch(/already installed, nothing to do\n$/);
    expect(uninstall().status).toBe(0);
    expect(tree(root)).toEqual(before);
  });
});

describe("install.sh refusals", () => {
  it("refuses a Node older than 20.19 and changes nothing", () => {
    const fake = path.join(src, "node-old");
    write(fake, "#!/bin/sh\nprintf 20.18.3\n", 0o755);
    const before = tree(root, { dirMtimes: true });
    const r = runScript("install.sh", src, ["--root", root, "--node", fake, "--libvirt-version", "9.0.0"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `virt-aa-hook install: error: ${fake} is Node 20.18.3; virt-aa-hook needs Node >= 20.19 (pass --node with a newer one)\n`,
    );
    expect(tree(root, { dirMtimes: true })).toEqual(before);
  });

  it("accepts Node 22 and refuses a relative node path", () => {
    const fake = path.join(src, "node-22");
    write(fake, "#!/bin/sh\nprintf 22.1.0\n", 0o755);
    expect(runScript("install.sh", src, ["--root", root, "--node", fake, "--libvirt-version", "9.0.0"]).status).toBe(0);
    expect(read("usr/lib/virt-aa-hook/qemu-hook")).toMatch(new RegExp(`^NODE=${fake}$`, "m"));
    const rel = runScript("install.sh", src, ["--root", root, "--node", "node", "--libvirt-version", "9.0.0"]);
    expect(rel.stderr).toBe("virt-aa-hook install: error: --node node: must be an absolute path\n");
  });

  it("refuses AppArmor policy that does not compile, before changing anything", () => {
    fs.appendFileSync(path.join(src, "install/apparmor/usr.sbin.libvirtd.local"), "/bogus rule,\n");
    const before = tree(root, { dirMtimes: true });
    const r = install("--libvirt-version", "9.0.0");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^virt-aa-hook install: error: AppArmor policy would not compile \(usr\.sbin\.libvirtd\): AppArmor parser error .*syntax error/);
    expect(tree(root, { dirMtimes: true })).toEqual(before);
  });

  it("refuses a launcher without its NODE= line", () => {
    write(path.join(src, "hooks/qemu"), "#!/bin/sh\nBUNDLE=x\n", 0o755);
    const r = install("--libvirt-version", "9.0.0");
    expect(r.stderr).toBe(`virt-aa-hook install: error: ${src}/hooks/qemu: expected exactly one NODE= line to rewrite, found 0\n`);
  });
});

describe("--reload", () => {
  it("sends SIGHUP to the pid in the root's libvirtd pidfile", async () => {
    const child = spawn("/bin/sleep", ["30"]);
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_c, sig) => resolve(sig)));
    write(path.join(root, "run/libvirtd.pid"), `${child.pid}\n`);
    const r = install("--libvirt-version", "9.0.0", "--reload");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`virt-aa-hook install: sent SIGHUP to libvirtd (pid ${child.pid}): it now runs the hook\n`);
    expect(await exited).toBe("SIGHUP");
  });

  it("says clearly when there is no pidfile", () => {
    const r = install("--libvirt-version", "9.0.0", "--reload");
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      "virt-aa-hook install: error: cannot reload libvirtd: no usable pidfile (/run/libvirtd.pid, /run/virtqemud.pid)\n",
    );
  });
});

describe("every AppArmor file shipped or changed compiles with the real parser", () => {
  it("libvirtd's profile with our local override, and the hook's own profile", () => {
    expect(install("--libvirt-version", "9.0.0").status).toBe(0);
    const aa = path.join(root, "etc/apparmor.d");
    for (const profile of ["usr.sbin.libvirtd", "usr.lib.virt-aa-hook.qemu-hook"]) {
      expect(compile(aa, profile)).toEqual({ status: 0, stdout: "", stderr: "" });
    }
    // The compile really reads the root's copy: break the override there and it fails.
    fs.appendFileSync(path.join(aa, "local/usr.sbin.libvirtd"), "/bogus rule,\n");
    expect(compile(aa, "usr.sbin.libvirtd").status).not.toBe(0);
  });

  it("the fallback TEMPLATE.qemu and abstraction, installed on a host without libvirt's", () => {
    fs.rmSync(path.join(root, "etc/apparmor.d/libvirt"), { recursive: true });
    fs.rmSync(path.join(root, "etc/apparmor.d/abstractions/libvirt-qemu"));
    const r = install("--libvirt-version", "9.0.0");
    expect(r.status).toBe(0);
    const aa = path.join(root, "etc/apparmor.d");
    expect(read("etc/apparmor.d/libvirt/TEMPLATE.qemu")).toBe(srcText("install/apparmor/libvirt/TEMPLATE.qemu"));
    expect(read("etc/apparmor.d/abstractions/libvirt-qemu")).toBe(srcText("install/apparmor/abstractions/libvirt-qemu"));
    const profile = read("etc/apparmor.d/libvirt/TEMPLATE.qemu").replace("LIBVIRT_TEMPLATE", "libvirt-0f1e2d3c-4b5a-4697-8877-665544332211");
    write(path.join(aa, "libvirt/libvirt-0f1e2d3c-4b5a-4697-8877-665544332211"), profile);
    expect(compile(aa, "libvirt/libvirt-0f1e2d3c-4b5a-4697-8877-665544332211")).toEqual({ status: 0, stdout: "", stderr: "" });
    // Uninstall removes the fallbacks again (they were absent before).
    fs.rmSync(path.join(aa, "libvirt/libvirt-0f1e2d3c-4b5a-4697-8877-665544332211"));
    expect(uninstall().status).toBe(0);
    expect(fs.existsSync(path.join(aa, "abstractions/libvirt-qemu"))).toBe(false);
    expect(fs.existsSync(path.join(aa, "libvirt/TEMPLATE.qemu"))).toBe(false);
  });
});

describe("the installed wrapper", () => {
  it("ignores environment overrides (a guest's <qemu:env> cannot redirect it)", () => {
    expect(install("--libvirt-version", "9.0.0").status).toBe(0);
    const link = path.join(root, "usr/lib/virt-aa-hook/bin/qemu-system-x86_64");
    const r = spawnSync(link, ["-uuid", "0f1e2d3c-4b5a-4697-8877-665544332211"], {
      encoding: "utf8",
      env: { VIRT_AA_HOOK_CONF: "/nonexistent", VIRT_AA_HOOK_PROFILES: "/dev/null", VIRT_AA_HOOK_ATTR_EXEC: "/dev/null" },
    });
    // It reads the host's real profile list (absent: this kernel has no AppArmor), not the
    // environment's /dev/null, and so refuses instead of "transitioning" through /dev/null.
    expect(r.stderr).toBe(
      "virt-aa-hook wrapper: error: libvirt-0f1e2d3c-4b5a-4697-8877-665544332211: AppArmor profile not loaded (/sys/kernel/security/apparmor/profiles); refusing to start QEMU unconfined (mode = enforce)\n",
    );
    expect(r.status).toBe(1);
  });
});
