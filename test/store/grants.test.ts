/**
 * Runtime grants in the state record: validated on read (a malformed entry is dropped, the rest
 * of the record stays), and carried by the planner's next record.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RuntimeGrant } from "../../src/ir.js";
import { sha256 } from "../../src/store/guest-files.js";
import { planSync, type BuiltGuest, type OnDisk } from "../../src/store/plan.js";
import { readState, writeState, type GuestState, type HeldPath } from "../../src/store/state.js";

const UUID = "0c2a6b1e-3f4d-4e5f-8a9b-112233445566";
const NAME = `libvirt-${UUID}`;
const PROFILE = `profile ${NAME} {\n  #include <libvirt/${NAME}.files>\n}\n`;
const FILES = `  "/var/lib/libvirt/images/a.img" rwk,  # disk vda\n`;
const WITH_GRANT = `${FILES}  "/srv/new.qcow2" rwk,  # admin grant\n`;
const NOW = Date.parse("2026-03-04T05:06:07.000Z");
const DISK_A: HeldPath = { path: "/var/lib/libvirt/images/a.img", write: true, shareable: false, source: "disk vda" };
const NEW: HeldPath = { path: "/srv/new.qcow2", write: true, shareable: false, source: "admin grant" };
const ADMIN: RuntimeGrant = { path: "/srv/new.qcow2", write: true, by: "admin", source: "admin grant" };
const PORT: RuntimeGrant = { path: "/dev/vhost-net", write: true, by: "network", source: "network port p1", port: "p1" };

const base: GuestState = {
  version: 1,
  uuid: UUID,
  name: "vm1",
  profileName: NAME,
  profileSha256: sha256(PROFILE),
  filesSha256: sha256(FILES),
  loadedAs: "enforce",
  holds: [DISK_A],
  prepared: new Date(NOW - 10_000).toISOString(),
  updated: new Date(NOW - 5_000).toISOString(),
};

describe("state record: grants", () => {
  let dir: string;
  beforeEach(() => void (dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-grants-state-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = () => path.join(dir, `${UUID}.json`);

  it("round-trips valid grants", () => {
    writeState(file(), { ...base, grants: [ADMIN, PORT] });
    expect(readState(file())).toEqual({ ...base, grants: [ADMIN, PORT] });
  });

  it("drops each malformed grant alone and keeps the record and the valid grants", () => {
    const bad = [
      { ...ADMIN, path: "relative/x" },
      { ...ADMIN, write: "yes" },
      { ...ADMIN, by: "someone" },
      { ...ADMIN, source: 7 },
      { ...PORT, port: 5 },
      { path: "/x", write: true, by: "admin" },
      null,
      "x",
    ];
    fs.writeFileSync(file(), JSON.stringify({ ...base, grants: [bad[0], ADMIN, ...bad.slice(1), PORT] }));
    expect(readState(file())).toEqual({ ...base, grants: [ADMIN, PORT] });
  });

  it("a grants field that is not a list, or has nothing valid, is dropped (the record stays)", () => {
    fs.writeFileSync(file(), JSON.stringify({ ...base, grants: { path: "/x" } }));
    expect(readState(file())).toEqual(base);
    fs.writeFileSync(file(), JSON.stringify({ ...base, grants: [{ path: "/x" }] }));
    expect(readState(file())).toEqual(base);
  });
});

describe("planSync carries the grants", () => {
  const built = (over: Partial<BuiltGuest> = {}): BuiltGuest => ({ uuid: UUID, name: "vm1", profileName: NAME, filesText: FILES, holds: [DISK_A], ...over });
  const onDisk = (over: Partial<OnDisk> = {}): OnDisk => ({
    hostProfile: `/etc/apparmor.d/libvirt/${NAME}`,
    state: base,
    files: Buffer.from(FILES),
    filesMtimeMs: NOW - 20_000,
    profile: Buffer.from(PROFILE),
    ...over,
  });
  const settings = { policy: "if-changed" as const, as: "enforce" as const };
  const env = { now: NOW, loadedMode: undefined };

  it("a grant that changes the .files is a normal change: written, loaded, claimed, recorded", () => {
    const plan = planSync(built({ filesText: WITH_GRANT, holds: [DISK_A, NEW], grants: [ADMIN] }), onDisk(), settings, env);
    expect(plan.summary).toBe("loaded new rules");
    expect(plan.write?.files.toString()).toBe(WITH_GRANT);
    expect(plan.parser).toBe("load");
    // the new path is a wider claim: checked and recorded under the host lock before the load
    expect(plan.claim?.record.holds).toEqual([DISK_A, NEW]);
    expect(plan.claim?.restore).toBe(base);
    expect(plan.next).toEqual({ ...withoutUpdated(base), filesSha256: sha256(WITH_GRANT), holds: [DISK_A, NEW], grants: [ADMIN] });
  });

  it("a change of grants alone (the XML names the path already) rewrites only the record", () => {
    const grant: RuntimeGrant = { path: "/var/lib/libvirt/images/a.img", write: true, by: "libvirt", source: "disk vda" };
    const plan = planSync(built({ grants: [grant] }), onDisk(), settings, env);
    expect(plan.summary).toBe("unchanged");
    expect(plan.write).toBeUndefined();
    expect(plan.parser).toBe("none");
    expect(plan.next).toEqual({ ...withoutUpdated(base), grants: [grant] });
  });

  it("no grants: the next record has no grants field; dropping the last grant removes it", () => {
    expect(planSync(built(), onDisk(), settings, env).next).toBeUndefined();
    const plan = planSync(built({ grants: [] }), onDisk({ state: { ...base, grants: [ADMIN] }, files: Buffer.from(WITH_GRANT) }), settings, env);
    expect(plan.summary).toBe("loaded new rules");
    expect(plan.next).toEqual({ ...withoutUpdated(base), filesSha256: sha256(FILES) });
    expect(plan.next).not.toHaveProperty("grants");
  });
});

function withoutUpdated(s: GuestState): Omit<GuestState, "updated"> {
  const { updated: _u, ...rest } = s;
  return rest;
}
