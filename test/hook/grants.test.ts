/**
 * syncProfile with a GrantChange (runtime grants), in a temporary root with the real
 * apparmor_parser loading into a stand-in securityfs: the grant reaches the `.files` and the
 * record, a refused grant writes nothing, grants hold paths against other running guests (both
 * ways), `prepare` starts without the grants of an earlier run, `start` keeps them, and releasing
 * by UUID (virt-aa-helper -D) removes them with the record.
 */
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadLayout } from "../../src/config.js";
import { GuestError } from "../../src/errors.js";
import type { HookContext } from "../../src/hook/context.js";
import { releaseByUuid } from "../../src/hook/release.js";
import { applyGrantChange, syncProfile, type GrantChange } from "../../src/hook/sync.js";
import type { RuntimeGrant } from "../../src/ir.js";
import { readState } from "../../src/store/state.js";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { callBundle, domainXml, UUID } from "../lifecycle/harness.js";

const NAME = `libvirt-${UUID}`;
const FILES = `/etc/apparmor.d/libvirt/${NAME}.files`;
const STATE = `/var/lib/virt-aa-hook/${UUID}.json`;
const UUID_B = "0f9e8d7c-6b5a-4938-a271-605f4e3d2c1b";
const IMG = "/var/lib/libvirt/images";
const NEW = `${IMG}/new.qcow2`;
const admin = (path: string, write = true): RuntimeGrant => ({ path, write, by: "admin", source: "admin grant" });

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-grants-");
  fs.mkdirSync(t.at(IMG), { recursive: true });
  for (const f of ["vm1.img", "new.qcow2", "b.img"]) fs.writeFileSync(t.at(`${IMG}/${f}`), Buffer.alloc(4096));
});
afterEach(() => t.remove());

function ctx(op: string, guest = "vm1"): HookContext {
  const { layout, config } = loadLayout(t.root);
  return { layout, config, guest, op, warnings: [] };
}
const xml = Buffer.from(domainXml());
const sync = (change?: GrantChange, policy: "always" | "if-changed" = "if-changed") => syncProfile(ctx("grant"), xml, policy, change);
const grantsOf = (uuid = UUID) => readState(t.at(`/var/lib/virt-aa-hook/${uuid}.json`))?.grants;

describe("applyGrantChange", () => {
  it("drops, then adds; an added grant replaces the same path from the same giver only", () => {
    const lib: RuntimeGrant = { path: NEW, write: true, by: "libvirt", source: "virt-aa-helper -F" };
    const p1: RuntimeGrant = { path: "/dev/vhost-net", write: true, by: "network", source: "network port p1", port: "p1" };
    const p2: RuntimeGrant = { ...p1, source: "network port p2", port: "p2" };
    const cur = [admin(NEW, false), lib, p1];
    expect(applyGrantChange(cur, { add: [admin(NEW, true)] })).toEqual([lib, p1, admin(NEW, true)]);
    expect(applyGrantChange(cur, { add: [p2] })).toEqual([...cur, p2]);
    expect(applyGrantChange(cur, { drop: (g) => g.by === "libvirt" })).toEqual([admin(NEW, false), p1]);
    expect(applyGrantChange(undefined, undefined)).toEqual([]);
    expect(applyGrantChange(cur)).toEqual(cur);
  });
});

describe("syncProfile with runtime grants", () => {
  it("adds a grant to the .files and the record, and drops it again", async () => {
    await sync(undefined, "always");
    const before = t.read(FILES);
    expect(before).not.toContain(NEW);

    expect((await sync({ add: [admin(NEW)] })).summary).toBe("loaded new rules");
    expect(t.read(FILES)).toBe(before + `  "${NEW}" rwk,  # admin grant\n`);
    expect(grantsOf()).toEqual([admin(NEW)]);
    expect(readState(t.at(STATE))?.holds?.map((h) => [h.path, h.write, h.source])).toContainEqual([NEW, true, "admin grant"]);

    // read-only instead: one grant, rk
    expect((await sync({ add: [admin(NEW, false)] })).summary).toBe("loaded new rules");
    expect(t.read(FILES)).toBe(before + `  "${NEW}" rk,  # admin grant\n`);

    // a start keeps the grants (nothing changed)
    expect((await sync()).summary).toBe("unchanged");
    expect(grantsOf()).toEqual([admin(NEW, false)]);

    expect((await sync({ drop: (g) => g.path === NEW })).summary).toBe("loaded new rules");
    expect(t.read(FILES)).toBe(before);
    expect(readState(t.at(STATE))).not.toHaveProperty("grants");
  });

  it("a refused grant throws GuestError naming guest, path and reason, and writes nothing", async () => {
    await sync({ add: [admin(NEW)] }, "always");
    const files = t.read(FILES);
    const state = t.read(STATE);
    for (const [path, reason] of [
      ["/etc/shadow", /^admin grant: restricted location \/etc/],
      ["/dev/kvm", /^admin grant: \/dev\/kvm is not a device node a runtime grant may use/],
      ["/var/lib/libvirt/qemu/domain-3-other/monitor.sock", /^admin grant: \/var\/lib\/libvirt\/qemu holds libvirt's runtime state for every guest/],
    ] as const) {
      const err = await sync({ add: [admin(path)] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GuestError);
      expect([(err as GuestError).guest, (err as GuestError).path]).toEqual(["vm1", path]);
      expect((err as GuestError).reason).toMatch(reason);
      expect(t.read(FILES)).toBe(files);
      expect(t.read(STATE)).toBe(state);
    }
  });

  it("a grant is refused a path another running guest writes, and vice versa", async () => {
    // Guest B, just prepared (within its grace window: running as far as exclusivity goes), writes b.img.
    const xmlB = Buffer.from(domainXml({ name: "B", uuid: UUID_B, disks: [`${IMG}/b.img`] }));
    await syncProfile(ctx("prepare", "B"), xmlB, "always");
    await sync(undefined, "always");
    const files = t.read(FILES);
    const err = await sync({ add: [admin(`${IMG}/b.img`, false)] }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(`vm1: ${IMG}/b.img: admin grant: written by running guest B (${UUID_B}); mark both disks <shareable/> to share it`);
    expect(t.read(FILES)).toBe(files);
    expect(grantsOf()).toBeUndefined();

    // control: a path nobody holds is granted
    await sync({ add: [admin(NEW)] });
    expect(grantsOf()).toEqual([admin(NEW)]);

    // the other way: guest C may not start with the disk vm1 got by a grant
    const xmlC = Buffer.from(domainXml({ name: "C", uuid: "11111111-2222-4333-8444-555555555555", disks: [NEW] }));
    const errC = await syncProfile(ctx("prepare", "C"), xmlC, "always").catch((e: unknown) => e);
    expect((errC as Error).message).toBe(`C: ${NEW}: disk vda: written by running guest vm1 (${UUID}); mark both disks <shareable/> to share it`);
  });

  it("releasing by UUID (virt-aa-helper -D) removes the .files and the record with its grants", async () => {
    await sync({ add: [admin(NEW)] }, "always");
    const r = await releaseByUuid(ctx("release", "-"), UUID);
    expect(r.summary).toBe("unloaded, removed .files, removed profile");
    expect(t.exists(FILES)).toBe(false);
    expect(t.exists(STATE)).toBe(false);
  });
});

describe("through the hook (the built bundle)", () => {
  it("prepare drops the grants of an earlier run; start keeps them", async () => {
    expect(callBundle(t, ["vm1", "prepare", "begin", "-"], domainXml()).status).toBe(0);
    const clean = t.read(FILES);
    await sync({ add: [admin(NEW)] });
    expect(callBundle(t, ["vm1", "start", "begin", "-"], domainXml()).status).toBe(0);
    expect(t.read(FILES)).toContain(NEW);
    expect(grantsOf()).toEqual([admin(NEW)]);
    // a record left by a run that never reached release (host crash): the next start is clean
    expect(callBundle(t, ["vm1", "prepare", "begin", "-"], domainXml()).status).toBe(0);
    expect(t.read(FILES)).toBe(clean);
    expect(grantsOf()).toBeUndefined();
  });
});
