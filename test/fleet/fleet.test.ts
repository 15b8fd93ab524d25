// Fleet tests (issue 21): two libvirt hosts on this machine, each in its own mount, UTS and network
// namespaces with virt-aa-hook installed by install/install.sh, sharing one image directory; real
// TCG guests migrate between them (test/fleet/hosts.ts, docs/fleet-tests.md). Starts daemons and
// namespaces, so it runs only with VIRT_AA_HOOK_FLEET=1 or CI=true; everything it made is gone in
// afterAll, and the machine's trees, links and mounts are compared with their state before.
//
// One file, tests in order (describe.sequential): the hosts are shared state.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONFIG, loggedCommandLine, qemuImg, qemuProcess, randomUuid, run, type GuestSpec, type Run } from "../system/lab.js";
import { ENABLED, Fleet, HOW, IMAGES, PREFIX, QEMU, WRAPPER, machineState, type Host } from "./hosts.js";
import { arrivalChecks, beforeHop, expectedFiles, startingUp, type Hop } from "./observe.js";

const MIN = 60_000;
const exists = (p: string) => fs.existsSync(p);
const read = (p: string) => fs.readFileSync(p, "utf8");

if (!ENABLED) {
  describe("fleet tests: two libvirtd hosts, live migration", () => {
    it.skip(`skipped: ${HOW}`, () => {});
  });
  process.stdout.write(`test/fleet skipped: ${HOW}\n`);
} else describe.sequential("fleet tests: two libvirtd hosts in namespaces, guests migrating between them", () => {
  let fleet: Fleet;
  let before: ReturnType<typeof machineState>;
  let installs: { a: Run; b: Run };
  const t0 = performance.now();
  const g = (s: string) => `${PREFIX}${fleet.id}-${s}`;
  const img = (f: string) => path.join(IMAGES, f);

  const test = (name: string, timeout: number, fn: () => void | Promise<void>) =>
    it(name, async () => {
      fleet.mark();
      try {
        await fn();
      } catch (err) {
        if (err instanceof Error) err.message += fleet.diagnostics();
        throw err;
      }
    }, timeout);

  /** A qcow2 on the shared storage and a guest using it, defined on `host`. */
  const guest = (host: Host, s: string, extra: Partial<GuestSpec> = {}): GuestSpec => {
    qemuImg(["create", "-q", "-f", "qcow2", path.join(fleet.shared, `${s}.qcow2`), "16M"]);
    const spec: GuestSpec = { name: g(s), uuid: randomUuid(), disks: [{ path: img(`${s}.qcow2`), format: "qcow2", target: "vda" }], ...extra };
    fleet.define(host, spec);
    return spec;
  };

  beforeAll(async () => {
    // Never next to a real installation: the hosts copy the machine's /etc/libvirt and /etc/apparmor.d.
    for (const p of ["/var/lib/virt-aa-hook/install-manifest", "/etc/libvirt/hooks/qemu.d/virt-aa-hook", CONFIG]) {
      if (exists(p)) throw new Error(`virt-aa-hook is installed on this machine (${p}): the fleet hosts copy its /etc/libvirt; uninstall it first`);
    }
    before = machineState();
    fleet = new Fleet();
    installs = fleet.up();
    if (installs.a.status === 0 && installs.b.status === 0) await fleet.probeWrapper();
  }, 5 * MIN);

  afterAll(() => {
    if (!fleet) return;
    const problems = fleet.teardown();
    const timings = Object.entries(fleet.timings).map(([k, v]) => `${k} ${v} ms`).join(", ");
    const after = machineState();
    process.stdout.write(`\nfleet: set-up ${timings}; whole file ${Math.round((performance.now() - t0) / 1000)} s\n`);
    if (problems.length) throw new Error(`cleanup: ${problems.join("; ")}`);
    expect(after.links).toEqual(before.links);
    expect(after.mounts).toEqual(before.mounts);
    expect(after.files).toEqual(before.files);
    expect(after.cgroups).toEqual(before.cgroups);
    expect(exists(fleet.tmp)).toBe(false);
  }, 5 * MIN);

  test("two hosts: own hostname, host UUID, network and /etc; install.sh in each; one shared image directory", 2 * MIN, () => {
    const { a, b } = fleet;
    for (const h of [a, b]) {
      const r = installs[h.name];
      expect({ host: h.name, status: r.status, stderr: r.stderr }).toEqual({ host: h.name, status: 0, stderr: "" });
      expect(r.stdout).toContain("sent SIGHUP to libvirtd");
      expect(fs.readlinkSync(h.path("/etc/libvirt/hooks/qemu.d/virt-aa-hook"))).toBe("/usr/lib/virt-aa-hook/qemu-hook");
      expect(exists(h.path("/usr/sbin/virt-aa-hook"))).toBe(true);
      expect(h.execOk("/usr/bin/hostname", []).trim()).toBe(h.hostname);
      expect(h.virshOk("capabilities")).toContain(`<uuid>${h.hostUuid}</uuid>`);
    }
    // The machine itself has none of it (its hostname, its /usr/sbin, its links).
    expect(exists("/usr/sbin/virt-aa-hook")).toBe(false);
    expect(exists("/etc/libvirt/hooks/qemu.d/virt-aa-hook")).toBe(false);
    expect(fs.readFileSync("/proc/sys/kernel/hostname", "utf8").trim()).not.toMatch(/^vaah-fleet-/);
    expect(before.links.some((l) => l.startsWith("vaah-f"))).toBe(false);
    // Each libvirtd answers the other over the veth (and only there: not on the machine's loopback).
    expect(a.execOk("/usr/bin/virsh", ["-c", b.uri, "hostname"]).trim()).toBe(b.hostname);
    expect(b.execOk("/usr/bin/virsh", ["-c", a.uri, "hostname"]).trim()).toBe(a.hostname);
    expect(a.exec("/usr/bin/virsh", ["-c", "qemu+tcp://127.0.0.1/system", "hostname"]).status).not.toBe(0);
    // Own /etc/libvirt, /run, /var/lib/virt-aa-hook; the same images directory (same inode).
    const id = (p: string) => `${fs.statSync(p).dev}:${fs.statSync(p).ino}`;
    expect(id(a.path(CONFIG))).not.toBe(id(b.path(CONFIG)));
    expect(id(a.path("/run/libvirt/libvirt-sock"))).not.toBe(id(b.path("/run/libvirt/libvirt-sock")));
    fs.writeFileSync(path.join(fleet.shared, "probe"), "x");
    expect(id(a.path(`${IMAGES}/probe`))).toBe(id(b.path(`${IMAGES}/probe`)));
    fs.rmSync(path.join(fleet.shared, "probe"));
  });

  /**
   * One live migration with every check of observe.ts: destination hook calls, profile and rules,
   * loaded before QEMU started there, the XML rewritten only as the mode needs, the source released.
   */
  const liveHop = (hop: Hop) => {
    const was = beforeHop(hop);
    const r = hop.from.virsh("migrate", "--live", "--unsafe", "--migrateuri", `tcp://${hop.to.ip}`, hop.guest.name, hop.to.uri);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    arrivalChecks(hop, was);
  };

  for (const mode of ["wrapper", "none"] as const) {
    test(`live migration A -> B -> A, attach = "${mode}" on both hosts`, 5 * MIN, () => {
      const { a, b } = fleet;
      for (const h of [a, b]) h.writeConfig(mode === "wrapper" ? { attach: "wrapper", mode: "complain" } : { attach: "none" });
      // Defined on A with the real emulator: in wrapper mode only the migrate hook makes it run
      // through the wrapper on B.
      const spec = guest(a, `live-${mode}`);
      a.virshOk("start", spec.name);
      const first = qemuProcess(spec.name, a.path(""));
      expect(first.exe).toBe(QEMU);
      expect(loggedCommandLine(spec.name, a.path(""))[0]).toBe(QEMU);
      fleet.mark();
      if (mode === "none") {
        // Without --unsafe libvirt refuses: the shared directory is ext4 behind a bind mount, not a
        // filesystem it knows to be shared (qemu_migration.c qemuMigrationSrcIsSafe). B runs no hook.
        const r = a.virsh("migrate", "--live", "--migrateuri", `tcp://${b.ip}`, spec.name, b.uri);
        expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: "error: Unsafe migration: Migration without shared storage is unsafe\n" });
        expect(b.hookOps(spec.name)).toEqual([]);
        // Each host needs its own host_uuid: libvirt refuses a migration to a libvirtd with the
        // source's (qemu_migration_cookie.c qemuMigrationCookieXMLParse), here A to itself.
        const self = a.virsh("migrate", "--live", "--unsafe", "--migrateuri", `tcp://${a.ip}`, spec.name, a.uri);
        expect({ status: self.status, stderr: self.stderr }).toEqual({ status: 1, stderr: `error: internal error: Attempt to migrate guest to the same host ${a.hostUuid}\n` });
        // A's libvirt, as destination, ran its migrate hook before it read the cookie; nothing more.
        expect(a.hookOps(spec.name)).toEqual(["migrate 0"]);
        expect(a.virshOk("domstate", spec.name).trim()).toBe("running");
        fleet.mark();
      }
      const disk = img(`live-${mode}.qcow2`);
      const there = mode === "wrapper" ? WRAPPER : QEMU;
      const result = (adopted: boolean) =>
        mode === "none" ? "nothing to do"
        : adopted ? `adopted for attach = wrapper: <emulator> ${QEMU} -> ${WRAPPER}`
        : "already adopted for attach = wrapper: XML passed on unchanged";
      liveHop({ from: a, to: b, guest: spec, mode, emulatorBefore: QEMU, emulatorAfter: there, disk, migrateResult: result(true), sourcePersistent: true });
      fleet.mark();
      liveHop({ from: b, to: a, guest: spec, mode, emulatorBefore: there, emulatorAfter: there, disk, migrateResult: result(false), sourcePersistent: false });
      if (mode === "wrapper") {
        // --persistent: B also defines the domain, from A's persistent definition, which travels
        // in the migration cookie and passes no hook (docs/hook.md "Migration"): the real
        // emulator, while the running guest's live definition is the adopted one.
        const inactive = a.virshOk("dumpxml", "--inactive", spec.name);
        expect(inactive).toContain(`<emulator>${QEMU}</emulator>`);
        fleet.mark();
        const r = a.virsh("migrate", "--live", "--unsafe", "--persistent", "--migrateuri", `tcp://${b.ip}`, spec.name, b.uri);
        expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
        expect(b.hookOps(spec.name)).toEqual(["migrate 0", "prepare 0", "start 0", "started 0"]);
        expect(b.virshOk("dumpxml", spec.name)).toContain(`<emulator>${WRAPPER}</emulator>`);
        expect(b.virshOk("dumpxml", "--inactive", spec.name)).toBe(inactive);
        b.virshOk("destroy", spec.name);
        b.virshOk("undefine", spec.name);
        a.virshOk("undefine", spec.name);
        return;
      }
      a.virshOk("destroy", spec.name);
      a.virshOk("undefine", spec.name);
    });
  }

  /** The guest still runs on A exactly as before a refused migration; B kept nothing of it. */
  const stillOnA = (spec: GuestSpec, pid: number, profile: string, files: string) => {
    const { a, b } = fleet;
    expect(a.virshOk("domstate", spec.name).trim()).toBe("running");
    expect(qemuProcess(spec.name, a.path("")).pid).toBe(pid);
    expect(a.hookOps(spec.name)).toEqual([]);
    expect(read(a.profile(spec.uuid))).toBe(profile);
    expect(read(a.files(spec.uuid))).toBe(files);
    expect(exists(a.record(spec.uuid))).toBe(true);
    expect(a.removed()).toBe("");
    expect(b.virshOk("list", "--all", "--name")).not.toContain(spec.name);
    for (const p of [b.profile(spec.uuid), b.files(spec.uuid), b.record(spec.uuid)]) expect({ p, exists: exists(p) }).toEqual({ p, exists: false });
    expect(b.replaced()).toBe("");
  };

  test("migrations B refuses (a restricted path there, an invalid config there) fail cleanly; the guest stays on A", 5 * MIN, () => {
    const { a, b } = fleet;
    for (const h of [a, b]) h.writeConfig({ attach: "none" });
    const spec = guest(a, "refused");
    const disk = img("refused.qcow2");
    a.virshOk("start", spec.name);
    const pid = qemuProcess(spec.name, a.path("")).pid;
    const profile = read(a.profile(spec.uuid));
    const files = read(a.files(spec.uuid));
    const migrate = (...extra: string[]) =>
      a.virsh("migrate", "--live", "--unsafe", "--migrateuri", `tcp://${b.ip}`, ...extra, spec.name, b.uri);

    // (1) The destination XML (virsh migrate --xml: what an admin passes when B names storage
    // differently) puts the disk under /root on B: B's hook refuses it at prepare.
    const secret = `/root/${PREFIX}${fleet.id}-secret.qcow2`;
    const xml = a.virshOk("dumpxml", "--migratable", spec.name);
    expect(xml).toContain(`<source file='${disk}'`);
    const destXml = path.join(fleet.tmp, "refused-dest.xml");
    fs.writeFileSync(destXml, xml.replace(`<source file='${disk}'`, `<source file='${secret}'`));
    fleet.mark();
    for (const h of [a, b]) h.resetSecurityfs();
    const r1 = migrate("--xml", destXml);
    process.stdout.write(`virsh migrate to a restricted path on B (refused), its stderr:\n${r1.stderr}`);
    expect(r1.status).toBe(1);
    expect(r1.stderr).toContain(`virt-aa-hook: error: ${spec.name}: ${secret}: disk vda: restricted location /root is never granted to guests`);
    expect(b.hookOps(spec.name)).toEqual(["migrate 0", "prepare 1", "stopped 0", "release 0"]);
    stillOnA(spec, pid, profile, files);

    // (2) An invalid config on B: its hook fails at migrate begin, before libvirt starts anything there.
    const valid = read(b.path(CONFIG));
    b.writeRawConfig(`${valid}no_such_key = "1"\n`);
    const line = valid.split("\n").length;
    fleet.mark();
    for (const h of [a, b]) h.resetSecurityfs();
    const r2 = migrate();
    process.stdout.write(`virsh migrate to B with an invalid config (refused), its stderr:\n${r2.stderr}`);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toContain(`: virt-aa-hook: error: ${spec.name}: -: cannot read config ${CONFIG}: line ${line}: no_such_key: unknown key (known: mode, `);
    expect(b.hookOps(spec.name)).toEqual(["migrate 1"]);
    stillOnA(spec, pid, profile, files);

    // Negative control: the same guest, B's config valid again, no --xml: B takes it.
    b.writeRawConfig(valid);
    fleet.mark();
    const was = beforeHop({ from: a, to: b, guest: spec, mode: "none", emulatorBefore: QEMU, emulatorAfter: QEMU, disk, migrateResult: "nothing to do", sourcePersistent: true });
    const r3 = migrate();
    expect({ status: r3.status, stderr: r3.stderr }).toEqual({ status: 0, stderr: "" });
    arrivalChecks({ from: a, to: b, guest: spec, mode: "none", emulatorBefore: QEMU, emulatorAfter: QEMU, disk, migrateResult: "nothing to do", sourcePersistent: true }, was);
    b.virshOk("destroy", spec.name);
    a.virshOk("undefine", spec.name);
  });

  test("offline migration (--offline --persistent): B defines the definition its migrate hook adopted, and starts it through B's wrapper", 5 * MIN, () => {
    const { a, b } = fleet;
    a.writeConfig({ attach: "none" });
    // require_attach: B refuses any definition that does not run through the wrapper.
    b.writeConfig({ attach: "wrapper", mode: "complain", require_attach: "yes" });
    const spec = guest(a, "offline");
    const inactive = a.virshOk("dumpxml", "--inactive", spec.name);
    const adopted = inactive.replace(`<emulator>${QEMU}</emulator>`, `<emulator>${WRAPPER}</emulator>`);
    expect(adopted).not.toBe(inactive);
    fleet.mark();
    const r = a.virsh("migrate", "--offline", "--persistent", spec.name, b.uri);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    expect(b.virshOk("domstate", spec.name).trim()).toBe("shut off");
    expect(a.virshOk("domstate", spec.name).trim()).toBe("shut off");
    // B's migrate hook adopted the incoming definition and libvirt 9.0 defined exactly that:
    // A's definition with B's wrapper as <emulator>, nothing else changed. A ran no hook.
    expect(b.hookOps(spec.name)).toEqual(["migrate 0"]);
    expect(b.hookSummaries(spec.name)[0]!.result).toBe(`adopted for attach = wrapper: <emulator> ${QEMU} -> ${WRAPPER}`);
    expect(b.virshOk("dumpxml", "--inactive", spec.name)).toBe(adopted);
    expect(a.virshOk("dumpxml", "--inactive", spec.name)).toBe(inactive);
    expect(a.hookOps(spec.name)).toEqual([]);
    expect(exists(b.files(spec.uuid))).toBe(false);
    fleet.mark();
    b.resetSecurityfs();
    b.virshOk("start", spec.name);
    expect(b.hookOps(spec.name)).toEqual(["prepare 0", "start 0", "started 0"]);
    const q = qemuProcess(spec.name, b.path(""));
    expect(q.exe).toBe(QEMU);
    expect(loggedCommandLine(spec.name, b.path(""))[0]).toBe(WRAPPER);
    expect(startingUp(b.qemuLog(spec.name)).after).toContain(`virt-aa-hook wrapper: warning: libvirt-${spec.uuid}: AppArmor profile not loaded`);
    expect(read(b.files(spec.uuid))).toBe(expectedFiles(spec, img("offline.qcow2"), b.virshOk("domid", spec.name).trim()));
    expect(b.replaced()).toContain(`libvirt-${spec.uuid}`);
    b.virshOk("destroy", spec.name);
    // Negative control: A's definition as it was (the real emulator) is refused on B.
    const file = path.join(fleet.tmp, "offline-as-on-a.xml");
    fs.writeFileSync(file, inactive);
    b.virshOk("define", file);
    fleet.mark();
    const refused = b.virsh("start", spec.name);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`virt-aa-hook: error: ${spec.name}: `);
    expect(refused.stderr).toContain(`virt-aa-hook adopt ${spec.name}`);
    expect(b.hookOps(spec.name)).toEqual(["prepare 1", "stopped 0", "release 0"]);
    b.virshOk("undefine", spec.name);
    a.virshOk("undefine", spec.name);
  });

  test("restore on B of a save image made on A: B's restore hook adopts the saved XML for B's attach mode (none: nothing, the negative control)", 5 * MIN, () => {
    const { a, b } = fleet;
    a.writeConfig({ attach: "none" });
    b.writeConfig({ attach: "wrapper", mode: "complain" });
    const spec = guest(a, "restored");
    a.virshOk("start", spec.name);
    // On the shared storage: B reads what A's libvirt wrote (libvirt's iohelper, as root).
    const image = img(`${spec.name}.save`);
    fleet.mark();
    a.virshOk("save", spec.name, image);
    expect(a.hookOps(spec.name)).toEqual(["stopped 0", "release 0"]);
    expect(exists(a.files(spec.uuid))).toBe(false);

    const restoreOn = (attach: "wrapper" | "none", emulator: string, result: string) => {
      if (attach === "none") b.writeConfig({ attach: "none" });
      fleet.mark();
      b.resetSecurityfs();
      const r = b.virsh("restore", image);
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
      expect(b.virshOk("domstate", spec.name).trim()).toBe("running");
      expect(b.hookOps(spec.name)).toEqual(["restore 0", "prepare 0", "start 0", "started 0"]);
      expect(b.hookSummaries(spec.name)[0]!.result).toBe(result);
      // libvirt ran what the hook printed: the wrapper in wrapper mode, exec'ing the real QEMU.
      expect(loggedCommandLine(spec.name, b.path(""))[0]).toBe(emulator);
      expect(qemuProcess(spec.name, b.path("")).exe).toBe(QEMU);
      expect(b.virshOk("dumpxml", spec.name)).toContain(`<emulator>${emulator}</emulator>`);
      expect(read(b.files(spec.uuid))).toBe(expectedFiles(spec, img("restored.qcow2"), b.virshOk("domid", spec.name).trim()));
      expect(b.replaced()).toContain(`libvirt-${spec.uuid}`);
      b.virshOk("destroy", spec.name);
    };
    restoreOn("wrapper", WRAPPER, `adopted for attach = wrapper: <emulator> ${QEMU} -> ${WRAPPER}`);
    restoreOn("none", QEMU, "nothing to do");
    a.virshOk("undefine", spec.name);
    fs.rmSync(path.join(fleet.shared, `${spec.name}.save`));
  });

  test("--copy-storage-all: a disk outside the shared storage is copied to B over NBD on B's veth address, and B's profile grants it", 5 * MIN, () => {
    const { a, b } = fleet;
    for (const h of [a, b]) h.writeConfig({ attach: "none" });
    // Each host's own /var/lib/libvirt (not shared): the image on A with a marker, an empty one
    // of the same size pre-created on B (libvirt pre-creates only volumes of a storage pool:
    // qemu_migration.c qemuMigrationDstPrecreateStorage).
    const local = "/var/lib/libvirt/local-images";
    const disk = `${local}/copied.qcow2`;
    for (const h of [a, b]) {
      fs.mkdirSync(h.path(local), { mode: 0o711 });
      qemuImg(["create", "-q", "-f", "qcow2", h.path(disk), "16M"]);
    }
    // Reads read-only and -U (force-share): the guest's QEMU holds the image's lock on B.
    const io = (h: typeof a, cmd: string) => run("/usr/bin/qemu-io", [...(cmd.startsWith("read") ? ["-r", "-U"] : []), "-f", "qcow2", "-c", cmd, h.path(disk)]);
    expect(io(a, "write -P 0x5a 1M 64k").status).toBe(0);
    expect(io(b, "read -P 0x5a 1M 64k").stdout).toContain("Pattern verification failed");
    const spec: GuestSpec = { name: g("copied"), uuid: randomUuid(), disks: [{ path: disk, format: "qcow2", target: "vda" }] };
    fleet.define(a, spec);
    a.virshOk("start", spec.name);
    fleet.mark();
    const hop: Hop = { from: a, to: b, guest: spec, mode: "none", emulatorBefore: QEMU, emulatorAfter: QEMU, disk, migrateResult: "nothing to do", sourcePersistent: true };
    const was = beforeHop(hop);
    // No --unsafe: a disk that is copied is safe (qemu_migration.c qemuMigrationSrcIsSafe).
    const r = a.virsh("migrate", "--live", "--copy-storage-all", "--migrateuri", `tcp://${b.ip}`, spec.name, b.uri);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    arrivalChecks(hop, was);
    const marker = io(b, "read -P 0x5a 1M 64k");
    expect(marker.stdout).not.toContain("Pattern verification failed");
    expect(marker.stdout).toContain("read 65536/65536 bytes at offset 1048576");
    // B's NBD server listened on B's veth address (migration_address in B's qemu.conf), the port
    // libvirt chose; QMP command in B's libvirtd log.
    const nbd = b.libvirtdLogText().split("\n").filter((l) => l.includes('"execute":"nbd-server-start"'));
    expect(nbd.length, "nbd-server-start in host b's libvirtd log").toBeGreaterThan(0);
    expect(nbd.map((l) => /"host":"([^"]+)"/.exec(l)?.[1]), nbd.join("\n")).toEqual(nbd.map(() => b.ip));
    b.virshOk("destroy", spec.name);
    a.virshOk("undefine", spec.name);
  });
});
