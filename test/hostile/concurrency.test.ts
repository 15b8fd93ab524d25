/**
 * Concurrency through the real hook (hooks/qemu in a temporary root, the real apparmor_parser
 * loading into a fake securityfs): many guests starting at once, prepare/release racing on one
 * guest, and the bounded lock wait.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { GuestLock } from "../../src/store/lock.js";
import { defaultTestConfig, FEATURES, PARSER, type TestRoot } from "../lifecycle/fixture.js";
import {
  callHookAsync,
  expectedFiles,
  expectedProfile,
  guest,
  hookRoot,
  IMAGES,
  LIBVIRT_DIR,
  readOrUndef,
  sha256,
  snapshot,
  statusJson,
  uuidFor,
  versionXml,
  type Guest,
} from "./faults-kit.js";

const LOG = "/var/log/libvirt/virt-aa-hook.log";
let roots: TestRoot[] = [];
afterEach(() => {
  for (const t of roots) t.remove();
  roots = [];
});
function root(prefix: string): TestRoot {
  const t = hookRoot(prefix);
  roots.push(t);
  return t;
}

describe("concurrency", () => {
  it("50 different guests' prepare at once: all succeed, each .files names only its own disk, all compile", async () => {
    const t = root("vaah-conc50-");
    const guests = Array.from({ length: 50 }, (_, i) => guest(`c${String(i).padStart(2, "0")}`, uuidFor("conc50", i)));
    const xmls = guests.map((g) => versionXml(t, g, 0));
    const t0 = performance.now();
    const runs = await Promise.all(guests.map((g, i) => callHookAsync(t, [g.name, "prepare", "begin", "-"], xmls[i]!)));
    const wall = performance.now() - t0;
    console.log(`concurrency: 50 guests prepared at once in ${Math.round(wall)} ms (slowest hook ${Math.round(Math.max(...runs.map((r) => r.ms)))} ms)`);

    for (const [i, g] of guests.entries()) {
      expect({ guest: g.name, status: runs[i]!.status, stdout: runs[i]!.stdout, stderr: runs[i]!.stderr }).toEqual({ guest: g.name, status: 0, stdout: "", stderr: "" });
      const files = t.read(g.files);
      expect(files).toBe(expectedFiles(t, xmls[i]!));
      const disks = files.match(/\/var\/lib\/libvirt\/images\/[^"]+/g) ?? [];
      expect(disks).toEqual([`${IMAGES}/${g.name}-0.img`]);
      expect(t.read(g.profile)).toBe(expectedProfile(t, g));
      expect(JSON.parse(t.read(g.state)).filesSha256).toBe(sha256(files));
    }
    // Nothing else in the profiles dir (no staging leftovers), no lock left.
    expect(fs.readdirSync(t.at(LIBVIRT_DIR)).sort()).toEqual(["TEMPLATE.qemu", ...guests.flatMap((g) => [g.profileName, `${g.profileName}.files`])].sort());
    expect(fs.readdirSync(t.at("/run/virt-aa-hook/locks"))).toEqual([]);
    // All 50 profiles compile together, as the parser would load /etc/apparmor.d/libvirt/.
    execFileSync(PARSER, ["-Q", "-K", "-M", t.at(FEATURES), "--base", t.at("/etc/apparmor.d"), ...guests.map((g) => t.at(g.profile))], {
      stdio: "pipe",
      env: { LC_ALL: "C" },
    });
    // One complete log line per call, none torn by the concurrent appends.
    const lines = t.read(LOG).trimEnd().split("\n");
    expect(lines).toHaveLength(50);
    for (const l of lines) expect(l).toMatch(/^\S+ virt-aa-hook\[\d+\]: guest="c\d\d" op="prepare" exit=0 ms=\d+ result="libvirt-[0-9a-f-]{36}: loaded new rules, created profile"$/);
    expect(new Set(lines.map((l) => /guest="(c\d\d)"/.exec(l)![1])).size).toBe(50);
  }, 180_000);

  it("20 concurrent prepare/release on one guest with different XMLs: one coherent final state, no lock timeout", async () => {
    const t = root("vaah-conc20-");
    const g = guest("vm1", uuidFor("conc20", 0));
    const versions = Array.from({ length: 5 }, (_, v) => versionXml(t, g, v));
    const files = versions.map((x) => expectedFiles(t, x));
    const outcomes: string[] = [];
    for (let burst = 0; burst < 2; burst++) {
      // Deterministic mixes: 6 releases among 14 prepares, then 10 and 10.
      const ops = Array.from({ length: 20 }, (_, k) => (((k * 7 + burst * 3) % 20) < 6 + burst * 4 ? "release" : "prepare"));
      const runs = await Promise.all(
        ops.map((o, k) => callHookAsync(t, [g.name, o, o === "release" ? "end" : "begin", "-"], versions[(k + burst) % versions.length]!)),
      );
      for (const [k, r] of runs.entries()) {
        expect({ k, op: ops[k], status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ k, op: ops[k], status: 0, stdout: "", stderr: "" });
        expect(r.ms).toBeLessThan(30_000); // the default lock_timeout
      }

      const onDisk = snapshot(t, g);
      const status = await statusJson(t);
      const leftovers = fs.readdirSync(t.at(LIBVIRT_DIR)).filter((e) => e.startsWith("."));
      expect(leftovers).toEqual([]);
      expect(fs.existsSync(t.at(g.lock))).toBe(false);
      if (onDisk[g.files] === undefined) {
        // Released: nothing of ours is left, and status knows no guest.
        expect(onDisk).toEqual({ [g.profile]: undefined, [g.files]: undefined, [g.state]: undefined });
        expect(status).toEqual([]);
        outcomes.push("released");
      } else {
        // Exactly one complete version, and the record and status agree with it.
        const v = files.indexOf(onDisk[g.files]!);
        expect(v).toBeGreaterThanOrEqual(0);
        expect(onDisk[g.profile]).toBe(expectedProfile(t, g));
        const state = JSON.parse(onDisk[g.state]!);
        expect(state).toMatchObject({ uuid: g.uuid, name: g.name, filesSha256: sha256(files[v]!), profileSha256: sha256(expectedProfile(t, g)), loadedAs: "enforce" });
        expect(status).toHaveLength(1);
        expect(status[0]).toMatchObject({ name: g.name, uuid: g.uuid, filesExists: true, filesModified: false, profileExists: true, profileOrigin: "pristine", loadedAs: "enforce" });
        outcomes.push(`version ${v}`);
      }
    }
    console.log(`concurrency: 2 bursts of 20 prepare/release on one guest ended as: ${outcomes.join(", ")}`);
    // A last uninterrupted prepare still works after the storm.
    expect(await callHookAsync(t, [g.name, "prepare", "begin", "-"], versions[0]!)).toMatchObject({ status: 0, stderr: "" });
    expect(t.read(g.files)).toBe(files[0]);
  }, 180_000);

  it("the lock wait is bounded: a held lock fails prepare/start after lock_timeout with one clear line; release only warns", async () => {
    const t = root("vaah-conclock-");
    const g: Guest = guest("vm1", uuidFor("conclock", 0));
    const v0 = versionXml(t, g, 0);
    const v1 = versionXml(t, g, 1);
    expect(await callHookAsync(t, [g.name, "prepare", "begin", "-"], v0)).toMatchObject({ status: 0, stderr: "" });
    const before = snapshot(t, g);
    t.writeConfig({ ...defaultTestConfig(), lock_timeout: "1" });

    // Another holder of the guest's lock, the way a hook holds it (same module, same path), alive
    // and refreshing it: it is not stale, so the waiter must give up.
    const held = await GuestLock.acquire({ lockPath: t.at(g.lock), guest: g.name, timeoutMs: 1000 });
    try {
      const line = `cannot lock guest ${g.name}: another virt-aa-hook holds ${t.at(g.lock)} for more than 1 s`;
      for (const o of ["prepare", "start"]) {
        const r = await callHookAsync(t, [g.name, o, "begin", "-"], v1);
        expect({ op: o, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ op: o, status: 1, stdout: "", stderr: `virt-aa-hook: error: ${g.name}: -: ${line}\n` });
        expect(r.ms).toBeGreaterThanOrEqual(900); // it gives up when the next 100 ms retry would pass the bound
        expect(r.ms).toBeLessThan(8000); // 1 s of waiting plus starting node on a loaded machine
        expect(snapshot(t, g)).toEqual(before);
      }
      const rel = await callHookAsync(t, [g.name, "release", "end", "-"], v0);
      expect({ status: rel.status, stderr: rel.stderr }).toEqual({ status: 0, stderr: `virt-aa-hook: warning: ${g.name}: -: ${line}\n` });
      expect(snapshot(t, g)).toEqual(before);
      held.check();
    } finally {
      await held.release();
    }
    const r = await callHookAsync(t, [g.name, "prepare", "begin", "-"], v1);
    expect(r).toMatchObject({ status: 0, stderr: "" });
    expect(readOrUndef(t, g.files)?.toString()).toBe(expectedFiles(t, v1));
  }, 60_000);
});
