import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Layout } from "../../src/layout.js";
import { sha256 } from "../../src/store/guest-files.js";
import { writeState } from "../../src/store/state.js";
import { collectStatus, formatStatus } from "../../src/store/status.js";

const U1 = "11111111-1111-4111-8111-111111111111";
const U2 = "22222222-2222-4222-8222-222222222222";
const U3 = "33333333-3333-4333-8333-333333333333";
let root: string;
let layout: Layout;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-status-"));
  layout = new Layout(root);
  fs.mkdirSync(layout.host(layout.profilesDir), { recursive: true });
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function guest(uuid: string, name: string, profile: string | undefined, recorded: string | undefined, files = "  \"/a\" rwk,\n") {
  if (profile !== undefined) fs.writeFileSync(layout.host(layout.profilePath(uuid)), profile);
  fs.writeFileSync(layout.host(layout.filesPath(uuid)), files);
  writeState(layout.host(`${layout.stateDir}/${uuid}.json`), {
    version: 1, uuid, name, profileName: `libvirt-${uuid}`,
    ...(recorded !== undefined ? { profileSha256: sha256(recorded) } : {}),
    filesSha256: sha256("  \"/a\" rwk,\n"), loadedAs: "enforce", updated: "2025-01-01T00:00:00.000Z",
  });
}

describe("status", () => {
  it("tells pristine, edited, admin-provided and missing profiles apart, and reads the load state", () => {
    guest(U1, "web", "profile A", "profile A");
    guest(U2, "db", "profile B edited", "profile B", "  \"/b\" r,\n");
    guest(U3, "mail", "hand-made", undefined);
    const modes: Record<string, string | null | undefined> = { [`libvirt-${U1}`]: "enforce", [`libvirt-${U2}`]: null };
    const rows = collectStatus(layout, (p) => modes[p]);
    expect(rows.map((r) => [r.name, r.profileOrigin, r.filesModified, r.loaded])).toEqual([
      ["db", "edited", true, "not loaded"],
      ["mail", "admin", false, "unknown"],
      ["web", "pristine", false, "enforce"],
    ]);
    expect(rows[2]).toEqual({
      name: "web", uuid: U1, profile: `libvirt-${U1}`,
      profilePath: `/etc/apparmor.d/libvirt/libvirt-${U1}`, profileExists: true,
      filesPath: `/etc/apparmor.d/libvirt/libvirt-${U1}.files`, filesExists: true,
      profileOrigin: "pristine", filesModified: false, profileComplain: false, loaded: "enforce", loadedAs: "enforce", updated: "2025-01-01T00:00:00.000Z",
    });
    fs.rmSync(layout.host(layout.profilePath(U1)));
    expect(collectStatus(layout, () => undefined).find((r) => r.name === "web")!.profileOrigin).toBe("missing");
  });

  it("prints a table, one guest per line, names escaped", () => {
    guest(U1, "we\nb", "p", "p");
    expect(formatStatus(collectStatus(layout, () => "complain"))).toBe(
      "GUEST  PROFILE                                       LOADED    AS       PROFILE FILE  .FILES\n" +
        `we\\nb  libvirt-${U1}  complain  enforce  pristine      ok\n`,
    );
    expect(formatStatus([])).toBe("no guests managed by virt-aa-hook\n");
  });
});
