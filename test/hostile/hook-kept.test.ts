/**
 * A per-guest profile the admin edited, kept at release, belongs to its guest: a different domain
 * reusing the UUID is refused instead of inheriting it. Through the real hook (hooks/qemu in a
 * temporary root). Needs `npm run build`.
 */
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { callHook, installHook } from "../lifecycle/harness.js";
import { guestXml, op, UUID_A } from "../lifecycle/guests.js";

const DISK = "/var/lib/libvirt/images/a.img";
const PROFILE = `/etc/apparmor.d/libvirt/libvirt-${UUID_A}`;
const KEPT = `/var/lib/virt-aa-hook/kept/${UUID_A}.json`;

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-kept-");
  installHook(t);
  fs.mkdirSync(t.at("/var/lib/libvirt/images"), { recursive: true });
  fs.writeFileSync(t.at(DISK), Buffer.alloc(4096));
});
afterEach(() => t.remove());

const xml = (name: string) => guestXml({ name, uuid: UUID_A, id: 5, disks: [DISK] });
const OK = { status: 0, stdout: "", stderr: "" };
const result = (r: { status: number | null; stdout: string; stderr: string }) => ({ status: r.status, stdout: r.stdout, stderr: r.stderr });

/** web runs once, the admin edits its profile, web is released: the profile is kept. */
function keptFromWeb(): string {
  expect(result(callHook(t, op("web", "prepare"), xml("web")))).toEqual(OK);
  const edited = t.read(PROFILE).replace("}", "  /srv/web/** r,\n}");
  fs.writeFileSync(t.at(PROFILE), edited);
  expect(result(callHook(t, op("web", "release"), xml("web")))).toEqual(OK);
  expect(t.read(PROFILE)).toBe(edited);
  return edited;
}

describe("a kept admin profile", () => {
  it("records whose it is at release", () => {
    keptFromWeb();
    expect(JSON.parse(t.read(KEPT))).toMatchObject({ version: 1, uuid: UUID_A, name: "web" });
  });

  it("refuses a different domain reusing the UUID, saying which file to remove or rename; the profile is untouched", () => {
    const edited = keptFromWeb();
    expect(result(callHook(t, op("mail", "prepare"), xml("mail")))).toEqual({
      status: 1,
      stdout: "",
      stderr: `virt-aa-hook: error: mail: ${PROFILE}: kept from guest web (${UUID_A}), a different domain with this UUID: remove or rename ${PROFILE} to give mail a new profile (if mail is web renamed, remove ${KEPT} instead)\n`,
    });
    expect(t.read(PROFILE)).toBe(edited);
    expect(t.exists(`${PROFILE}.files`)).toBe(false);
    expect(t.exists(`/var/lib/virt-aa-hook/${UUID_A}.json`)).toBe(false);
  });

  it("negative control: the same guest comes back to its profile", () => {
    keptFromWeb();
    expect(result(callHook(t, op("web", "prepare"), xml("web")))).toEqual(OK);
  });

  it("negative control: once the admin removes (or renames) the profile, the new domain gets a fresh one", () => {
    keptFromWeb();
    fs.renameSync(t.at(PROFILE), t.at("/etc/apparmor.d/libvirt/web.disabled"));
    expect(result(callHook(t, op("mail", "prepare"), xml("mail")))).toEqual(OK);
    expect(t.exists(KEPT)).toBe(false);
    expect(t.read(PROFILE)).not.toContain("/srv/web/");
  });

  it("negative control: a profile we created and nobody edited is removed at release, nothing is kept", () => {
    expect(result(callHook(t, op("web", "prepare"), xml("web")))).toEqual(OK);
    expect(result(callHook(t, op("web", "release"), xml("web")))).toEqual(OK);
    expect(t.exists(KEPT)).toBe(false);
    expect(result(callHook(t, op("mail", "prepare"), xml("mail")))).toEqual(OK);
  });
});
