/**
 * `virt-aa-hook adopt --root DIR` through the real bundle never touches the real host: virsh is
 * DIR's own (a stand-in here), its temporary XML goes under DIR, and the profile a static label
 * needs is loaded by the hook under DIR (not into this machine's /etc/apparmor.d). Needs
 * `npm run build`.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { defaultTestConfig, makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE } from "../lifecycle/harness.js";
import { guestXml, UUID_A } from "../lifecycle/guests.js";
import { FAKE_VIRSH } from "./fake-virsh.js";
import { TEST_NODE } from "../helpers/node.js";

const VIRSH = "/usr/local/sbin/stand-in-virsh";
const REAL_PROFILE = `/etc/apparmor.d/libvirt/libvirt-${UUID_A}`;

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-adopt-root-");
  t.writeConfig({ ...defaultTestConfig(), attach: "seclabel" });
  const dir = path.dirname(t.at(VIRSH));
  fs.mkdirSync(path.join(dir, "domains"), { recursive: true });
  fs.writeFileSync(t.at(VIRSH), FAKE_VIRSH, { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "domains/vm1"), guestXml({ name: "vm1", uuid: UUID_A, disks: [] }));
});
afterEach(() => t.remove());

describe("adopt --root", () => {
  it("uses the root's virsh, temporary directory and profiles only", () => {
    expect(fs.existsSync(REAL_PROFILE)).toBe(false);
    const r = spawnSync(TEST_NODE, [BUNDLE, "--root", t.root, "adopt", "--virsh", VIRSH, "vm1"], { env: { LC_ALL: "C" } });
    expect({ status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() }).toEqual({
      status: 0,
      stdout: "vm1: adopted (attach = seclabel)\n",
      stderr: "",
    });
    const calls = fs.readFileSync(path.join(path.dirname(t.at(VIRSH)), "calls"), "utf8").trim().split("\n");
    expect(calls[0]).toBe("dumpxml --inactive --security-info vm1");
    expect(calls[1]).toMatch(new RegExp(`^define ${t.root.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/tmp/virt-aa-hook-adopt-[^/]+/domain\\.xml$`));
    expect(calls).toHaveLength(2);
    // The label's profile was made and loaded under the root, by the hook.
    expect(t.exists(`/etc/apparmor.d/libvirt/libvirt-${UUID_A}`)).toBe(true);
    expect(fs.readFileSync(t.at("/run/fake-securityfs/.replace")).includes(Buffer.from(`libvirt-${UUID_A}`))).toBe(true);
    expect(fs.existsSync(REAL_PROFILE)).toBe(false);
    expect(fs.readFileSync(path.join(path.dirname(t.at(VIRSH)), "domains/vm1"), "utf8")).toContain(
      `<seclabel type='static' model='apparmor' relabel='no'>`,
    );
  });
});
