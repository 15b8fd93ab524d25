// System tests (issue 5): a real libvirtd starts real (TCG) QEMU guests through virt-aa-hook as
// install/install.sh installs it. The kernel here has no AppArmor: profiles are "loaded" into a
// fake securityfs directory (config `subdomainfs`), whose .replace/.remove files show what
// apparmor_parser sent. Changes the machine, so it runs only with VIRT_AA_HOOK_SYSTEM=1 or CI=true;
// everything it changes is put back in afterAll (see docs/system-tests.md and lab.ts).
//
// One file, tests in order (describe.sequential): the daemons and guests are shared state.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CACHE_DIR,
  CONFIG,
  ENABLED,
  FEATURES,
  HOOK_LINK,
  HOW,
  INSTALLED_BUNDLE,
  Lab,
  NVRAM_DIR,
  OVMF_CODE,
  PARSER,
  PREFIX,
  PROFILE_DIR,
  RUN_DIR,
  STATE_DIR,
  URI,
  hookOps,
  hookSummaries,
  loggedCommandLine,
  qemuProcess,
  randomUuid,
  run,
  snapshot,
  virsh,
  virshOk,
  type GuestSpec,
  type QemuProcess,
} from "./lab.js";
import { registerRuntimeGrantTests } from "./runtime-grants.js";

const MIN = 60_000;
/**
 * Trees install.sh/uninstall.sh touch: after uninstall they must be exactly as before install.
 * /usr/lib/libvirt: helper mode diverts libvirt's virt-aa-helper (dpkg-divert --rename).
 */
const SNAPSHOT_ROOTS = ["/etc/libvirt/hooks", "/etc/apparmor.d", "/usr/lib/virt-aa-hook", "/usr/lib/libvirt", CONFIG, STATE_DIR];
const diversions = () => run("/usr/bin/dpkg-divert", ["--list"]).stdout.split("\n").filter((l) => l.trim() !== "").sort();

const profileOf = (uuid: string) => `${PROFILE_DIR}/libvirt-${uuid}`;
const filesOf = (uuid: string) => `${PROFILE_DIR}/libvirt-${uuid}.files`;
const stateOf = (uuid: string) => `${STATE_DIR}/${uuid}.json`;
const read = (p: string) => fs.readFileSync(p, "utf8");
/** A .files with libvirt's per-run domain id taken out (private and channel dirs are named by it). */
const readRules = (p: string) => read(p).replace(/\/domain-\d+-/g, "/domain-ID-");
const exists = (p: string) => fs.existsSync(p);

if (!ENABLED) {
  describe("system tests against a real libvirtd", () => {
    it.skip(`skipped: ${HOW}`, () => {});
  });
  process.stdout.write(`test/system skipped: ${HOW}\n`);
} else describe.sequential("system tests: real libvirtd, real QEMU guests, installed hook", () => {
  let lab: Lab;
  let before: string[] = [];
  let divertedBefore: string[] = [];
  const g = (s: string) => `${PREFIX}${lab.id}-${s}`;
  const img = (...p: string[]) => path.join(lab.images, ...p);
  const other = { uuid: randomUuid(), text: "" };
  let baseline: QemuProcess | undefined;
  let plain: GuestSpec;

  /** A test whose failure message carries the hook log and libvirtd's log from its own start. */
  const test = (name: string, timeout: number, fn: () => void | Promise<void>) =>
    it(name, async () => {
      lab.mark();
      try {
        await fn();
      } catch (err) {
        if (err instanceof Error) err.message += lab.diagnostics();
        // Guests this test left running would change what the next tests see.
        for (const n of virsh("list", "--name").stdout.split("\n").map((l) => l.trim())) {
          if (n.startsWith(PREFIX)) virsh("destroy", n);
        }
        throw err;
      }
    }, timeout);

  const state = (name: string) => virshOk("domstate", name).trim();
  const start = (name: string) => virshOk("start", name);
  const destroy = (name: string) => virshOk("destroy", name);

  /** The admin's own profile of a guest we never touch: its bytes must never change. */
  const adminProfileIntact = () => expect(read(profileOf(other.uuid))).toBe(other.text);

  beforeAll(() => {
    // The suite installs and uninstalls virt-aa-hook itself: never on top of a real installation.
    if (exists(`${STATE_DIR}/install-manifest`)) {
      throw new Error(`virt-aa-hook is installed on this machine (${STATE_DIR}/install-manifest): uninstall it before running the system tests`);
    }
    lab = new Lab();
    before = snapshot(SNAPSHOT_ROOTS);
    divertedBefore = diversions();
    lab.startDaemons();
    plain = { name: g("plain"), uuid: randomUuid(), disks: [{ path: img("plain.qcow2"), format: "qcow2", target: "vda" }] };
    lab.qemuImg(["create", "-q", "-f", "qcow2", img("plain.qcow2"), "16M"]);
    lab.define(plain);
  }, 5 * MIN);

  afterAll(() => {
    if (!lab) return;
    process.stdout.write(`\n${lab.timeTable()}\n\n`);
    const problems = lab.teardown();
    const left: string[] = [];
    for (const e of fs.readdirSync("/etc/libvirt/qemu")) if (e.startsWith(PREFIX)) left.push(`/etc/libvirt/qemu/${e}`);
    for (const p of [STATE_DIR, RUN_DIR, "/usr/lib/virt-aa-hook", HOOK_LINK, CONFIG, lab.images]) if (exists(p)) left.push(p);
    for (const u of [...lab.uuids, other.uuid]) {
      for (const p of [profileOf(u), filesOf(u)]) if (exists(p)) left.push(p);
    }
    if (problems.length || left.length) {
      throw new Error(`cleanup: ${[...problems, ...left.map((l) => `left behind: ${l}`)].join("; ")}`);
    }
  }, 5 * MIN);

  test("without virt-aa-hook: libvirt starts and destroys a plain guest (the baseline)", 5 * MIN, () => {
    start(plain.name);
    expect(state(plain.name)).toBe("running");
    baseline = qemuProcess(plain.name);
    expect(baseline.exe).toBe("/usr/bin/qemu-system-x86_64");
    destroy(plain.name);
    expect(state(plain.name)).toBe("shut off");
    expect(hookOps(plain.name, lab.hookLogMark)).toEqual([]);
  });

  test("install.sh installs the hook into qemu.d and signals libvirtd", 2 * MIN, () => {
    const r = lab.install();
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("sent SIGHUP to libvirtd");
    expect(fs.readlinkSync(HOOK_LINK)).toBe("/usr/lib/virt-aa-hook/qemu-hook");
    expect(exists(INSTALLED_BUNDLE)).toBe(true);
    // qemu.conf pins security_driver = "none" (the lab): the installer chose the wrapper, and said so.
    expect(r.stdout).toContain(
      'virt-aa-hook install: /etc/libvirt/virt-aa-hook.conf: attach = "wrapper", started_check = "enforce" (chosen for this host: /etc/libvirt/qemu.conf: security_driver = "none" → attach = "wrapper")\n',
    );
    // The admin command is on PATH and runs the installed bundle.
    const cmd = spawnSync("/usr/sbin/virt-aa-hook", ["status", "--json"], { encoding: "utf8", env: { PATH: "/usr/bin:/bin" } });
    expect({ status: cmd.status, stderr: cmd.stderr }).toEqual({ status: 0, stderr: "" });
    expect(Array.isArray(JSON.parse(cmd.stdout))).toBe(true);
    lab.writeConfig();
    // An admin's hand-made profile for a guest we never run.
    other.text = `# admin's own profile, edited by hand\n#include <tunables/global>\nprofile libvirt-${other.uuid} flags=(attach_disconnected) {\n  #include <abstractions/libvirt-qemu>\n  /srv/admin-data/** rwk,\n}\n`;
    fs.writeFileSync(profileOf(other.uuid), other.text, { mode: 0o644 });
    lab.extraFiles.push(profileOf(other.uuid));
    // libvirtd rescans the hook directories when it handles SIGHUP.
    lab.waitForHookScan(true);
  });

  test("start/destroy: qcow2 on a 2-deep backing chain, cdrom, serial log, OVMF loader + NVRAM", 5 * MIN, () => {
    fs.mkdirSync(img("a"));
    lab.qemuImg(["create", "-q", "-f", "qcow2", img("a", "base.qcow2"), "16M"]);
    lab.qemuImg(["create", "-q", "-f", "qcow2", "-b", img("a", "base.qcow2"), "-F", "qcow2", img("a", "mid.qcow2")]);
    lab.qemuImg(["create", "-q", "-f", "qcow2", "-b", img("a", "mid.qcow2"), "-F", "qcow2", img("a", "top.qcow2")]);
    fs.writeFileSync(img("a", "cd.iso"), Buffer.alloc(1 << 20));
    const a: GuestSpec = {
      name: g("a"),
      uuid: randomUuid(),
      disks: [
        { path: img("a", "top.qcow2"), format: "qcow2", target: "vda" },
        { path: img("a", "cd.iso"), format: "raw", device: "cdrom", target: "hdc" },
      ],
      serialLog: img("a", "serial.log"),
      nvram: `${NVRAM_DIR}/${g("a")}_VARS.fd`,
    };
    lab.define(a);
    lab.resetSecurityfs();
    start(a.name);
    expect(state(a.name)).toBe("running");
    expect(hookOps(a.name, lab.hookLogMark)).toEqual(["prepare 0", "start 0", "started 0"]);
    const qa = qemuProcess(a.name);
    expect(hookSummaries(lab.hookLogMark).filter((s) => s.guest === a.name).map((s) => s.result)).toEqual([
      `libvirt-${a.uuid}: loaded new rules, created profile`,
      `libvirt-${a.uuid}: unchanged`,
      `warning: cannot read the AppArmor label of QEMU (pid ${qa.pid})`,
    ]);

    // The per-guest profile (ours, from the template) and the rules file with the exact paths.
    const profile = read(profileOf(a.uuid));
    expect(profile).toContain(`profile libvirt-${a.uuid} `);
    expect(profile).toContain(`  include if exists <libvirt/libvirt-${a.uuid}.files>\n`);
    // Exactly these rules, in this order (libvirt names the private and channel dirs after the
    // domain id and the first 20 characters of the name).
    const dir = `domain-${virshOk("domid", a.name).trim()}-${a.name.slice(0, 20)}`;
    const files = read(filesOf(a.uuid));
    expect(files).toBe(
      [
        `# Generated by virt-aa-hook for guest ${a.name} (${a.uuid}).`,
        `# Rewritten at every start of the guest: do not edit.`,
        `# Local changes belong in the per-guest profile libvirt-${a.uuid}.`,
        `  "${img("a", "top.qcow2")}" rwk,  # disk vda`,
        `  "${img("a", "mid.qcow2")}" rk,  # disk vda backing 1`,
        `  "${img("a", "base.qcow2")}" rk,  # disk vda backing 2`,
        `  "${img("a", "cd.iso")}" rk,  # disk hdc`,
        `  "${OVMF_CODE}" rk,  # loader`,
        `  "${a.nvram}" rwk,  # nvram`,
        `  "${img("a", "serial.log")}" rw,  # serial 0, console 0`,
        `  "/run/libvirt/qemu/${a.name}.pid" rwk,  # pidfile`,
        `  "/var/lib/libvirt/qemu/${dir}{,/**}" rwk,  # private dir`,
        `  "/var/lib/libvirt/qemu/channel/target/${dir}{,/**}" rw,  # channel dir`,
        ``,
      ].join("\n"),
    );
    // The profile compiles as written on disk.
    const parse = run(PARSER, ["-Q", "-K", "-M", FEATURES, "--base", "/etc/apparmor.d", profileOf(a.uuid)]);
    expect(parse.stderr).toBe("");
    expect(parse.status).toBe(0);
    // "Loaded": what the parser sent to the (fake) kernel is exactly this profile, compiled.
    const compiled = run(PARSER, ["-S", "-K", "-M", FEATURES, "--base", "/etc/apparmor.d", profileOf(a.uuid)], { encoding: "latin1" });
    expect(compiled.status).toBe(0);
    const sent = lab.replaced();
    expect(sent.includes(Buffer.from(`libvirt-${a.uuid}`))).toBe(true);
    expect(sent.toString("latin1")).toBe(compiled.stdout);
    const state0 = JSON.parse(read(stateOf(a.uuid))) as { name?: string };
    expect(state0.name).toBe(a.name);
    expect(exists(a.nvram!)).toBe(true);
    adminProfileIntact();

    lab.mark();
    destroy(a.name);
    expect(state(a.name)).toBe("shut off");
    expect(hookOps(a.name, lab.hookLogMark)).toEqual(["stopped 0", "release 0"]);
    expect(lab.removed()).toContain(`libvirt-${a.uuid}`);
    expect(exists(profileOf(a.uuid))).toBe(false);
    expect(exists(filesOf(a.uuid))).toBe(false);
    expect(exists(stateOf(a.uuid))).toBe(false);
    // No parser cache entry, lock or staging leftover names the guest.
    for (const dir of [CACHE_DIR, RUN_DIR, STATE_DIR, PROFILE_DIR]) {
      expect(exists(dir) ? fs.readdirSync(dir, { recursive: true }).map(String).filter((f) => f.includes(a.uuid)) : []).toEqual([]);
    }
    adminProfileIntact();
    virshOk("undefine", "--nvram", a.name);
  });

  test("two guests running at once: neither's rules mention the other's disks", 5 * MIN, () => {
    const mk = (s: string): GuestSpec => {
      fs.mkdirSync(img(s));
      lab.qemuImg(["create", "-q", "-f", "qcow2", img(s, "disk.qcow2"), "16M"]);
      return { name: g(s), uuid: randomUuid(), disks: [{ path: img(s, "disk.qcow2"), format: "qcow2", target: "vda" }] };
    };
    const b = mk("b");
    const c = mk("c");
    lab.define(b);
    lab.define(c);
    start(b.name);
    start(c.name);
    expect([state(b.name), state(c.name)]).toEqual(["running", "running"]);
    const fb = read(filesOf(b.uuid));
    const fc = read(filesOf(c.uuid));
    expect(fb).toContain(`  "${img("b", "disk.qcow2")}" rwk,  # disk vda\n`);
    expect(fc).toContain(`  "${img("c", "disk.qcow2")}" rwk,  # disk vda\n`);
    for (const [mine, theirs] of [[fb, c], [fc, b]] as const) {
      expect(mine).not.toContain(img(theirs === c ? "c" : "b"));
      expect(mine).not.toContain(theirs.name);
      expect(mine).not.toContain(theirs.uuid);
    }
    destroy(b.name);
    // Releasing one guest leaves the other's files alone.
    expect(exists(filesOf(b.uuid))).toBe(false);
    expect(read(filesOf(c.uuid))).toBe(fc);
    destroy(c.name);
    expect(exists(filesOf(c.uuid))).toBe(false);
    adminProfileIntact();
    virshOk("undefine", b.name);
    virshOk("undefine", c.name);
  });

  test("a guest asking for a restricted path is refused with our one-line error; nothing is left", 5 * MIN, () => {
    const secret = `/root/${PREFIX}${lab.id}-secret.img`;
    fs.writeFileSync(secret, Buffer.alloc(1 << 20), { mode: 0o600 });
    lab.extraFiles.push(secret);
    const d: GuestSpec = { name: g("d"), uuid: randomUuid(), disks: [{ path: secret, format: "raw", target: "vda" }] };
    lab.define(d);
    const r = virsh("start", d.name);
    expect(r.status).toBe(1);
    const line = `virt-aa-hook: error: ${d.name}: ${secret}: disk vda: restricted location /root is never granted to guests`;
    process.stdout.write(`virsh start ${d.name} (refused), its stderr:\n${r.stderr}`);
    expect(r.stderr).toContain(line);
    expect(state(d.name)).toBe("shut off");
    const ops = hookOps(d.name, lab.hookLogMark);
    expect(ops).toEqual(["prepare 1", "stopped 0", "release 0"]);
    expect(exists(profileOf(d.uuid))).toBe(false);
    expect(exists(filesOf(d.uuid))).toBe(false);
    expect(exists(stateOf(d.uuid))).toBe(false);
    // libvirt never got as far as labelling the file for QEMU.
    const st = fs.statSync(secret);
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([0, 0, 0o600]);
    adminProfileIntact();
    virshOk("undefine", d.name);
  });

  let e: GuestSpec;
  test("virsh save / virsh restore", 5 * MIN, () => {
    fs.mkdirSync(img("e"));
    lab.qemuImg(["create", "-q", "-f", "qcow2", img("e", "disk.qcow2"), "16M"]);
    e = { name: g("e"), uuid: randomUuid(), disks: [{ path: img("e", "disk.qcow2"), format: "qcow2", target: "vda" }] };
    lab.define(e);
    start(e.name);
    const files = readRules(filesOf(e.uuid));
    const saveFile = img("e", "saved");
    lab.mark();
    virshOk("save", e.name, saveFile);
    expect(state(e.name)).toBe("shut off");
    expect(hookOps(e.name, lab.hookLogMark)).toEqual(["stopped 0", "release 0"]);
    expect(exists(filesOf(e.uuid))).toBe(false);
    lab.mark();
    lab.resetSecurityfs();
    virshOk("restore", saveFile);
    expect(state(e.name)).toBe("running");
    expect(hookOps(e.name, lab.hookLogMark)).toEqual(["restore 0", "prepare 0", "start 0", "started 0"]);
    expect(readRules(filesOf(e.uuid))).toBe(files);
    expect(lab.replaced().includes(Buffer.from(`libvirt-${e.uuid}`))).toBe(true);
  });

  test("virsh managedsave, then start restores the guest with its profile", 5 * MIN, () => {
    const files = readRules(filesOf(e.uuid));
    virshOk("managedsave", e.name);
    expect(state(e.name)).toBe("shut off");
    expect(exists(filesOf(e.uuid))).toBe(false);
    expect(virshOk("dominfo", e.name)).toMatch(/^Managed save:\s+yes$/m);
    lab.mark();
    lab.resetSecurityfs();
    start(e.name);
    expect(state(e.name)).toBe("running");
    expect(virshOk("dominfo", e.name)).toMatch(/^Managed save:\s+no$/m);
    expect(hookOps(e.name, lab.hookLogMark)).toEqual(["restore 0", "prepare 0", "start 0", "started 0"]);
    // The same rules plus a read of the managed save image libvirt hands the restoring QEMU
    // (it existed at prepare; src/rules/runtime.ts).
    const pidfile = `  "/run/libvirt/qemu/${e.name}.pid" rwk,  # pidfile\n`;
    expect(files).toContain(pidfile);
    const save = `  "/var/lib/libvirt/qemu/save/${e.name}.save" r,  # managed save image\n`;
    expect(readRules(filesOf(e.uuid))).toBe(files.replace(pidfile, pidfile + save));
    expect(lab.replaced().includes(Buffer.from(`libvirt-${e.uuid}`))).toBe(true);
  });

  test("libvirtd restart while the guest runs: reconnect keeps it running and its profile loaded", 5 * MIN, () => {
    const q0 = qemuProcess(e.name);
    // The guest was last started from its managed save image (previous test), which libvirt
    // deleted once QEMU had read it: reconnect drops that one read rule and nothing else.
    const save = `  "/var/lib/libvirt/qemu/save/${e.name}.save" r,  # managed save image\n`;
    const files = read(filesOf(e.uuid));
    expect(files).toContain(save);
    expect(exists(`/var/lib/libvirt/qemu/save/${e.name}.save`)).toBe(false);
    lab.resetSecurityfs();
    lab.restartLibvirtd();
    expect(state(e.name)).toBe("running");
    expect(hookOps(e.name, lab.hookLogMark)).toEqual(["reconnect 0"]);
    expect(hookSummaries(lab.hookLogMark).find((s) => s.guest === e.name)?.result).toBe(`libvirt-${e.uuid}: loaded new rules`);
    const q1 = qemuProcess(e.name);
    expect(q1.pid).toBe(q0.pid);
    expect(q1.argv).toEqual(q0.argv);
    expect(read(filesOf(e.uuid))).toBe(files.replace(save, ""));
    // The fake securityfs lists no loaded profiles, so reconnect loads the profile to be sure.
    expect(lab.replaced().includes(Buffer.from(`libvirt-${e.uuid}`))).toBe(true);
    destroy(e.name);
    expect(exists(filesOf(e.uuid))).toBe(false);
    adminProfileIntact();
    virshOk("undefine", e.name);
  });

  test("a guest adopted with `virt-aa-hook adopt` (wrapper mode) starts and runs through the wrapper", 8 * MIN, () => {
    // The kernel has no AppArmor: in enforce mode the wrapper would refuse to start QEMU
    // unconfined, so this guest runs in complain mode and the wrapper warns in the QEMU log.
    lab.writeConfig({ attach: "wrapper", mode: "complain" });
    fs.mkdirSync(img("w"));
    lab.qemuImg(["create", "-q", "-f", "qcow2", img("w", "disk.qcow2"), "16M"]);
    const w: GuestSpec = { name: g("w"), uuid: randomUuid(), disks: [{ path: img("w", "disk.qcow2"), format: "qcow2", target: "vda" }] };
    lab.define(w);
    const wrapper = "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64";
    const adopt = run(process.execPath, [INSTALLED_BUNDLE, "adopt", "-c", URI, w.name]);
    expect(adopt.stderr).toBe("");
    expect(adopt.stdout).toBe(`${w.name}: adopted (attach = wrapper)\n`);
    expect(adopt.status).toBe(0);
    expect(virshOk("dumpxml", "--inactive", w.name)).toContain(`<emulator>${wrapper}</emulator>`);
    start(w.name);
    expect(state(w.name)).toBe("running");
    expect(hookOps(w.name, lab.hookLogMark)).toEqual(["prepare 0", "start 0", "started 0"]);
    const q = qemuProcess(w.name);
    const logged = loggedCommandLine(w.name);
    // libvirt ran the wrapper; the wrapper exec'd (not forked) the real QEMU with the same arguments.
    expect(logged[0]).toBe(wrapper);
    expect(q.exe).toBe("/usr/bin/qemu-system-x86_64");
    expect(q.argv[0]).toBe("/usr/bin/qemu-system-x86_64");
    expect(q.argv.slice(1)).toEqual(logged.slice(1));
    expect(q.argv).toContain(w.uuid);
    // Same parent as a guest started without the wrapper (libvirt daemonizes QEMU): no shell left in between.
    expect([q.ppid, q.parentExe, q.parentComm]).toEqual([baseline?.ppid, baseline?.parentExe, baseline?.parentComm]);
    process.stdout.write(`wrapper guest: QEMU pid ${q.pid}, parent pid ${q.ppid} (${q.parentComm}, exe ${q.parentExe}); baseline parent pid ${baseline?.ppid} (${baseline?.parentComm})\n`);
    expect(read(filesOf(w.uuid))).toContain(`  "${img("w", "disk.qcow2")}" rwk,  # disk vda\n`);
    expect(read(`/var/log/libvirt/qemu/${w.name}.log`)).toContain(
      `virt-aa-hook wrapper: warning: libvirt-${w.uuid}: AppArmor profile not loaded (/sys/kernel/security/apparmor/profiles); QEMU runs unconfined (mode = complain)`,
    );
    destroy(w.name);
    expect(exists(filesOf(w.uuid))).toBe(false);
    const undo = run(process.execPath, [INSTALLED_BUNDLE, "adopt", "--undo", "-c", URI, w.name]);
    expect(undo.stdout).toBe(`${w.name}: undone\n`);
    expect(undo.status).toBe(0);
    expect(virshOk("dumpxml", "--inactive", w.name)).toContain("<emulator>/usr/bin/qemu-system-x86_64</emulator>");
    lab.writeConfig();
    virshOk("undefine", w.name);
  });

  // Issue 17: hotplug, media, snapshots, block jobs, NICs, save/restore on running guests
  // (test/system/runtime-grants.ts).
  registerRuntimeGrantTests({ lab: () => lab, test, g, img });

  test("uninstall.sh puts everything back; libvirt starts guests exactly as before", 5 * MIN, () => {
    // A guest an earlier failure left running would keep its profile past the uninstall.
    for (const n of virshOk("list", "--name").split("\n").map((l) => l.trim()).filter((l) => l.startsWith(PREFIX))) destroy(n);
    fs.rmSync(profileOf(other.uuid));
    const r = lab.uninstall();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("sent SIGHUP to libvirtd");
    // The test wrote its own config over the installed one: uninstall keeps an edited config
    // (the admin's words), so the lab removes it itself.
    expect(r.stdout).toContain(`virt-aa-hook uninstall: kept ${CONFIG}: edited since install\n`);
    expect(exists(CONFIG)).toBe(true);
    fs.rmSync(CONFIG);
    expect(snapshot(SNAPSHOT_ROOTS)).toEqual(before);
    expect(diversions()).toEqual(divertedBefore);
    // What the hook made at run time goes too: its parser cache and its lock directory.
    expect([exists(CACHE_DIR), exists(RUN_DIR)]).toEqual([false, false]);
    expect([exists("/usr/sbin/virt-aa-hook"), exists("/etc/systemd/system/libvirtd.service.d/virt-aa-hook.conf")]).toEqual([false, false]);
    lab.waitForHookScan(false);
    lab.mark();
    start(plain.name);
    expect(state(plain.name)).toBe("running");
    const q = qemuProcess(plain.name);
    expect([q.exe, q.ppid, q.parentExe, q.parentComm]).toEqual([baseline?.exe, baseline?.ppid, baseline?.parentExe, baseline?.parentComm]);
    expect(exists(filesOf(plain.uuid))).toBe(false);
    destroy(plain.name);
    expect(hookOps(plain.name, lab.hookLogMark)).toEqual([]);
    virshOk("undefine", plain.name);
  });
});
