/**
 * The Debian package on this machine: `npm run deb`'s build script makes two packages (this
 * version and a higher one), then the real dpkg installs, upgrades, removes and purges them, and
 * each step asserts the package's exact files, the files install.sh made (from its manifest), the
 * hook link, and at the end that /etc/libvirt, /etc/apparmor.d and the rest are byte for byte as
 * before. lintian runs on the package meanwhile.
 *
 * It changes this machine's /etc and dpkg database (and puts them back), so it runs only with
 * VIRT_AA_HOOK_SYSTEM=1 (or CI=true), as root, after the system suite (vitest.config.ts: its own
 * project, one group later), never beside it: both install into /etc/libvirt.
 */
import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ENABLED = process.env.VIRT_AA_HOOK_SYSTEM === "1" || process.env.CI === "true";
const HOW = "changes this machine (dpkg -i/-r/-P of virt-aa-hook): opt in with VIRT_AA_HOOK_SYSTEM=1 (or CI=true)";
const REPO = path.resolve(".");
const VERSION = (JSON.parse(fs.readFileSync("package.json", "utf8")) as { version: string }).version;
const NEWER = `${VERSION}+1`;
const SHARE = "/usr/share/virt-aa-hook";
const MANIFEST = "/var/lib/virt-aa-hook/install-manifest";
const HOOK_LINK = "/etc/libvirt/hooks/qemu.d/virt-aa-hook";
const CONFIG = "/etc/libvirt/virt-aa-hook.conf";
/** Everything dpkg and install.sh touch: compared with the state before, entry by entry. */
const WATCHED = ["/etc/libvirt", "/etc/apparmor.d", "/etc/logrotate.d", "/etc/systemd/system", "/usr/lib/virt-aa-hook", "/usr/lib/libvirt", "/usr/sbin/virt-aa-hook", "/var/lib/virt-aa-hook", SHARE];
const MIN = 60_000;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(cmd, args, { encoding: "utf8", env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C", ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
function runAsync(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C", ...env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (code) => resolve({ status: code, stdout, stderr }));
  });
}
const dpkg = (...args: string[]) => run("/usr/bin/dpkg", args, { DEBIAN_FRONTEND: "noninteractive" });
const status = () => run("/usr/bin/dpkg-query", ["-W", "-f", "${db:Status-Status} ${Version}", "virt-aa-hook"]).stdout;

/** path -> type, mode, sha256 or link target, for every entry under the watched paths. */
function snapshot(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string) => {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.set(p, `link ${fs.readlinkSync(p)}`);
    else if (st.isDirectory()) {
      out.set(p, `dir ${mode}`);
      for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n));
    } else out.set(p, `file ${mode} ${crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex")}`);
  };
  for (const w of WATCHED) walk(w);
  return out;
}
/** Paths that differ between two snapshots (added, removed or changed), sorted. */
function differing(a: Map<string, string>, b: Map<string, string>): string[] {
  return [...new Set([...a.keys(), ...b.keys()])].filter((p) => a.get(p) !== b.get(p)).sort();
}
/** What install.sh recorded making or changing, as paths (the state directory's own files apart). */
function manifestPaths(): string[] {
  return fs
    .readFileSync(MANIFEST, "utf8")
    .split("\n")
    .filter((l) => /^(created|created-dir|modified) /.test(l))
    .map((l) => l.slice(l.indexOf(" ") + 1));
}
/** The files the package itself holds (dpkg -L, directories left out). */
function packageFiles(): string[] {
  return dpkg("-L", "virt-aa-hook")
    .stdout.split("\n")
    .filter((p) => p !== "" && p !== "/." && !fs.lstatSync(p).isDirectory())
    .sort();
}
/** The files the package must hold, from the tree it was built from. */
function expectedPackageFiles(): string[] {
  const under = (dir: string): string[] =>
    fs.readdirSync(path.join(REPO, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? under(`${dir}/${e.name}`) : [`${dir}/${e.name}`]));
  return [
    ...fs.readdirSync(path.join(REPO, "dist")).map((f) => `${SHARE}/dist/${f}`),
    ...["qemu", "qemu-wrapper", "virt-aa-helper", "network"].filter((f) => fs.existsSync(path.join(REPO, "hooks", f))).map((f) => `${SHARE}/hooks/${f}`),
    ...under("install").map((f) => `${SHARE}/${f}`),
    "/usr/share/man/man8/virt-aa-hook.8.gz",
    "/usr/share/doc/virt-aa-hook/copyright",
    "/usr/share/doc/virt-aa-hook/changelog.gz",
    "/usr/share/bash-completion/completions/virt-aa-hook",
  ].sort();
}

if (!ENABLED) {
  describe("the Debian package on this machine", () => {
    it.skip(`skipped: ${HOW}`, () => {});
  });
} else
  describe.sequential("the Debian package on this machine: dpkg -i, upgrade, -r, -P", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-deb-"));
    const deb = (v: string) => path.join(out, `virt-aa-hook_${v}_all.deb`);
    let before: Map<string, string>;
    let lintian: Promise<Run>;
    let made: string[] = [];

    beforeAll(async () => {
      if (process.getuid?.() !== 0) throw new Error("the package suite needs root (dpkg -i)");
      if (status() !== "") throw new Error(`virt-aa-hook is already known to dpkg here (${status()}): this suite installs and purges it, so it will not run`);
      // The two builds side by side (one core each).
      const builds = await Promise.all(
        [VERSION, NEWER].map((v) => runAsync(process.execPath, ["packaging/deb/build.mjs"], { VIRT_AA_HOOK_DEB_VERSION: v, VIRT_AA_HOOK_DEB_OUT: out })),
      );
      for (const r of builds) {
        expect(r.stderr.split("\n").filter((l) => l !== "" && !l.startsWith("deb: warning:"))).toEqual([]);
        expect(r.status).toBe(0);
      }
      // lintian reads the package only: it runs while dpkg works.
      lintian = runAsync("/usr/bin/lintian", ["--fail-on", "error,warning", "--pedantic", "--no-tag-display-limit", deb(VERSION)]);
      before = snapshot();
    }, 10 * MIN);

    afterAll(() => {
      // Put the machine back whatever happened: the fake running guest, then the package.
      for (const p of made.reverse()) fs.rmSync(p, { recursive: true, force: true });
      if (status() !== "") run("/usr/bin/dpkg", ["-P", "virt-aa-hook"], { VIRT_AA_HOOK_FORCE: "1", DEBIAN_FRONTEND: "noninteractive" });
      fs.rmSync(out, { recursive: true, force: true });
    }, 5 * MIN);

    it("dpkg -i: the package's exact files, and exactly what install.sh recorded; the hook is linked and the command runs", () => {
      const r = dpkg("-i", deb(VERSION));
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(status()).toBe(`installed ${VERSION}`);
      expect(r.stdout).toContain("virt-aa-hook install: done; check with: virt-aa-hook status; virt-aa-hook doctor\n");
      expect(packageFiles()).toEqual(expectedPackageFiles());
      expect(fs.readlinkSync(HOOK_LINK)).toBe("/usr/lib/virt-aa-hook/qemu-hook");
      expect(fs.readFileSync("/usr/lib/virt-aa-hook/qemu-hook", "utf8")).toMatch(/^NODE=\/usr\/bin\/node$/m);
      expect(fs.existsSync("/etc/logrotate.d/virt-aa-hook")).toBe(fs.existsSync("/etc/logrotate.d"));
      // Everything that changed is the package's or in install.sh's manifest (or its state directory).
      const recorded = new Set([...manifestPaths(), ...packageFiles()]);
      const unexplained = differing(before, snapshot()).filter((p) => !recorded.has(p) && !p.startsWith("/var/lib/virt-aa-hook") && !p.startsWith(`${SHARE}`));
      expect(unexplained).toEqual([]);
      const help = run("/usr/sbin/virt-aa-hook", ["status", "--help"]);
      expect(help.status).toBe(0);
      expect(help.stdout).toMatch(/^virt-aa-hook status/);
    }, 10 * MIN);

    it("upgrade (a higher version): installed over the old files, nothing removed in between, the same host files", () => {
      const installed = snapshot();
      const r = dpkg("-i", deb(NEWER));
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(status()).toBe(`installed ${NEWER}`);
      // prerm upgrade uninstalls nothing; postinst's install.sh finds everything in place.
      expect(r.stdout).not.toContain("virt-aa-hook uninstall:");
      expect(r.stdout).toContain("virt-aa-hook install: already installed, nothing to do\n");
      expect(differing(installed, snapshot())).toEqual([]);
      expect(packageFiles()).toEqual(expectedPackageFiles());
      expect(fs.readlinkSync(HOOK_LINK)).toBe("/usr/lib/virt-aa-hook/qemu-hook");
    }, 10 * MIN);

    it("dpkg -r refuses while a managed guest runs (says what to do), then removes everything but the config", () => {
      // A guest the hook manages, running as far as libvirt's run directory says (negative control).
      const uuid = "5eb5eb5e-0000-4000-8000-00000000d0eb";
      const name = `vaah-pkgtest-${process.pid}`;
      for (const d of ["/run/libvirt", "/run/libvirt/qemu"]) {
        if (!fs.existsSync(d)) {
          fs.mkdirSync(d);
          made.push(d);
        }
      }
      const statusXml = `/run/libvirt/qemu/${name}.xml`;
      const record = `/var/lib/virt-aa-hook/${uuid}.json`;
      fs.writeFileSync(statusXml, `<domstatus state='running'>\n  <domain type='kvm' id='1'>\n    <name>${name}</name>\n    <uuid>${uuid}</uuid>\n  </domain>\n</domstatus>\n`);
      made.push(statusXml);
      fs.writeFileSync(record, JSON.stringify({ version: 1, uuid, name, profileName: `libvirt-${uuid}`, updated: new Date().toISOString() }));
      const refused = dpkg("-r", "virt-aa-hook");
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toContain(
        `virt-aa-hook uninstall: error: managed guests are running (${name}): shut them down (virsh shutdown NAME) and run uninstall again, or pass --force`,
      );
      expect(status()).not.toBe("");
      expect(fs.readlinkSync(HOOK_LINK)).toBe("/usr/lib/virt-aa-hook/qemu-hook");
      fs.rmSync(record);
      for (const p of made.reverse()) fs.rmSync(p, { recursive: true, force: true });
      made = [];
      // dpkg left it half-configured after the failed prerm: the next -r completes.

      const config = fs.readFileSync(CONFIG);
      const r = dpkg("-r", "virt-aa-hook");
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(status()).toBe(`config-files ${NEWER}`);
      expect(r.stdout).toContain(`virt-aa-hook uninstall: kept ${CONFIG}: asked to keep the config\n`);
      expect(fs.existsSync(HOOK_LINK)).toBe(false);
      expect(fs.readFileSync(CONFIG)).toEqual(config);
      // Everything else as before the package.
      expect(differing(before, snapshot())).toEqual([CONFIG]);
    }, 10 * MIN);

    it("dpkg -P: the config goes too; every watched path is byte for byte as before; lintian is clean", async () => {
      const r = dpkg("-P", "virt-aa-hook");
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(status()).toBe("");
      expect(differing(before, snapshot())).toEqual([]);
      const l = await lintian;
      expect(l.stdout).toBe("");
      expect(l.status).toBe(0);
    }, 10 * MIN);
  });
