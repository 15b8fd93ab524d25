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
import { loggedCommandLine, qemuProcess, randomUuid, type GuestSpec, type Run } from "../system/lab.js";
import { CONFIG, ENABLED, Fleet, HOW, IMAGES, PREFIX, QEMU, WRAPPER, machineState, type Host } from "./hosts.js";
import { arrivalChecks, beforeHop, type Hop } from "./observe.js";

const MIN = 60_000;
const exists = (p: string) => fs.existsSync(p);

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
    fleet.qemuImg(["create", "-q", "-f", "qcow2", path.join(fleet.shared, `${s}.qcow2`), "16M"]);
    const spec: GuestSpec = { name: g(s), uuid: randomUuid(), disks: [{ path: img(`${s}.qcow2`), format: "qcow2", target: "vda" }], ...extra };
    fleet.define(host, spec);
    return spec;
  };

  beforeAll(() => {
    // Never next to a real installation: the hosts copy the machine's /etc/libvirt and /etc/apparmor.d.
    for (const p of ["/var/lib/virt-aa-hook/install-manifest", "/etc/libvirt/hooks/qemu.d/virt-aa-hook", CONFIG]) {
      if (exists(p)) throw new Error(`virt-aa-hook is installed on this machine (${p}): the fleet hosts copy its /etc/libvirt; uninstall it first`);
    }
    before = machineState();
    fleet = new Fleet();
    installs = fleet.up();
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
      const disk = img(`live-${mode}.qcow2`);
      const there = mode === "wrapper" ? WRAPPER : QEMU;
      const result = (adopted: boolean) =>
        mode === "none" ? "attach = none: XML passed on unchanged"
        : adopted ? `adopted for attach = wrapper: <emulator> ${QEMU} -> ${WRAPPER}`
        : "already adopted for attach = wrapper: XML passed on unchanged";
      liveHop({ from: a, to: b, guest: spec, mode, emulatorBefore: QEMU, emulatorAfter: there, disk, migrateResult: result(true) });
      fleet.mark();
      liveHop({ from: b, to: a, guest: spec, mode, emulatorBefore: there, emulatorAfter: there, disk, migrateResult: result(false) });
      a.virshOk("destroy", spec.name);
      a.virshOk("undefine", spec.name);
    });
  }

});
