/**
 * Negative controls for the corpus harness: its verdicts fail where they must (an unexpected
 * refusal, another reason, a pending entry whose outcome changed, a stale or missing libvirtOnly
 * entry), its coverage check says "no" to what ours does not grant, a crash is not an outcome,
 * and libvirt's helper is recognised only as libvirt's own binary.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compileProfile, FEATURES, PARSER } from "../helpers/apparmor.js";
import { covers, generate, libvirtHelper, oracleProblems, outcomeProblems, parseLibvirtRules, tempParent, type Expectation, type OurRule } from "./corpus.js";

const ok: Expectation = { kind: "k", outcome: "ok", rules: ['  "/a" rw,  # disk vda'] };
const refused: Expectation = { kind: "k", outcome: "refused", error: "virt-aa-hook: error: g: /etc/x: disk vda: no", why: "because" };

describe("outcomeProblems", () => {
  it("passes what the entry says", () => {
    expect(outcomeProblems(ok, { outcome: "ok", rules: ['  "/a" rw,  # disk vda'], paths: [] })).toEqual([]);
    expect(outcomeProblems(refused, { outcome: "refused", error: refused.error! })).toEqual([]);
  });

  it("fails an unexpected refusal, naming it", () => {
    expect(outcomeProblems(ok, { outcome: "refused", error: "virt-aa-hook: error: g: /x: nope" })).toEqual(["expected ok, got refused: virt-aa-hook: error: g: /x: nope"]);
  });

  it("fails a refusal with another reason, and an accepted guest that should be refused", () => {
    expect(outcomeProblems(refused, { outcome: "refused", error: "virt-aa-hook: error: g: /etc/x: other" })).toEqual([
      `refused with "virt-aa-hook: error: g: /etc/x: other", expected "${refused.error}"`,
    ]);
    expect(outcomeProblems(refused, { outcome: "ok", rules: [], paths: [] })).toEqual(["expected refused, got ok"]);
  });

  it("fails when a rule is added, lost or moved", () => {
    expect(outcomeProblems(ok, { outcome: "ok", rules: ['  "/a" rw,  # disk vda', '  "/b" r,  # x'], paths: [] })).toEqual([`rules differ: new ["  \\"/b\\" r,  # x"], gone []`]);
    expect(outcomeProblems(ok, { outcome: "ok", rules: [], paths: [] })).toEqual([`rules differ: new [], gone ["  \\"/a\\" rw,  # disk vda"]`]);
    const two: Expectation = { ...ok, rules: ["x", "y"] };
    expect(outcomeProblems(two, { outcome: "ok", rules: ["y", "x"], paths: [] })).toEqual(["rules in another order"]);
  });

  it("tells the lead to flip a pending entry whose outcome changed", () => {
    const pending: Expectation = { kind: "k", outcome: "refused", error: "virt-aa-hook: error: g: d: unsupported", pending: "storage: resolve it" };
    expect(outcomeProblems(pending, { outcome: "ok", rules: [], paths: [] })).toEqual([
      'expected refused, got ok [pending "storage: resolve it": if the helper\'s work changed this, review the new outcome and flip the entry (docs/corpus.md)]',
    ]);
  });
});

describe("oracleProblems", () => {
  it("is exact both ways", () => {
    const e: Expectation = { kind: "k", outcome: "ok", libvirtOnly: { "/dev/vfio/[0-9]*": "every group", "/g": "pending gl: x" } };
    expect(oracleProblems(e, ["/dev/vfio/[0-9]*", "/g"])).toEqual([]);
    expect(oracleProblems(e, ["/dev/vfio/[0-9]*", "/g", "/new"])).toEqual(["libvirt grants /new, ours does not: grant it, or list it in libvirtOnly with the reason"]);
    expect(oracleProblems(e, ["/dev/vfio/[0-9]*"])).toEqual(["libvirtOnly lists /g, but ours covers it now (or libvirt no longer grants it): drop it and flip the pending entry"]);
  });

  it("lets a host-dependent path be absent, not unlisted", () => {
    const e: Expectation = { kind: "k", outcome: "ok", libvirtOnly: { "/fw": "(host-dependent) autoselected" } };
    expect(oracleProblems(e, [])).toEqual([]);
    expect(oracleProblems(e, ["/fw"])).toEqual([]);
    expect(oracleProblems({ kind: "k", outcome: "ok" }, ["/fw"])).toHaveLength(1);
  });
});

describe("covers", () => {
  const ours: OurRule[] = [
    { path: "/srv/share", suffix: "{,/**}", perms: "rw" },
    { path: "/img/a.qcow2", suffix: "", perms: "rwk" },
    { path: "/var/lib/x", suffix: "/*", perms: "rw" },
  ];
  it.each([
    ["/srv/share", true],
    ["/srv/share/", true],
    ["/srv/share/**", true],
    ["/srv/share/sub/**", true],
    ["/srv/share/f", true],
    ["/srv/sharex", false],
    ["/srv/**", false],
    ["/img/a.qcow2", true],
    ["/img/b.qcow2", false],
    ["/img/*", false],
    ["/var/lib/x/f", true],
    ["/var/lib/x/d/f", false],
    ["/dev/vfio/[0-9]*", false],
    ["/**", false],
  ] as const)("%s: %s", (libvirtPath, expected) => {
    expect(covers(ours, libvirtPath)).toBe(expected);
  });
});

describe("the rest of the harness", () => {
  const t = tempParent();
  afterAll(() => t.cleanup());

  it("an outcome is ok or a refusal with its one line", () => {
    expect(generate("<domain", t.dir)).toMatchObject({ outcome: "refused" });
    expect(generate("<domain type='kvm' id='1'><name>g</name><uuid>c0a5e000-0000-4000-8000-0000000000ff</uuid><devices><disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vda'/></disk></devices></domain>", t.dir)).toEqual({
      outcome: "refused",
      error: "virt-aa-hook: error: g: /etc/shadow: disk vda: restricted location /etc is never granted to guests",
    });
  });

  it.skipIf(!fs.existsSync(PARSER) || !fs.existsSync(FEATURES))("the compile check can fail: a broken rule line in one of the profiles", async () => {
    const good = 'profile corpus-0 {\n  "/a" rw,  # disk vda\n}\n';
    expect((await compileProfile(good)).ok).toBe(true);
    expect((await compileProfile(good + 'profile corpus-1 {\n  "/b{" rw,\n}\n')).ok).toBe(false);
  });

  it("reads libvirt's dry-run lines and nothing else", () => {
    const stderr = 'virt-aa-helper: warning: path does not exist\nvirt-aa-helper:\n/etc/apparmor.d/libvirt/libvirt-u.files\nvirt-aa-helper:\n  "/a b" rwk,\n  "/**" rwl,\n  # c\n';
    expect(parseLibvirtRules(stderr)).toEqual([
      { path: "/a b", perms: "rwk" },
      { path: "/**", perms: "rwl" },
    ]);
  });

  it("takes libvirt's helper only if it is an ELF binary (not virt-aa-hook's launcher)", () => {
    const found = libvirtHelper();
    if (found === undefined) return expect(fs.existsSync("/usr/lib/libvirt/virt-aa-helper.real") && fs.readFileSync("/usr/lib/libvirt/virt-aa-helper.real").subarray(0, 4).toString("latin1") === "\x7fELF").toBe(false);
    expect(path.isAbsolute(found)).toBe(true);
    expect(fs.readFileSync(found).subarray(0, 4).toString("latin1")).toBe("\x7fELF");
  });
});
