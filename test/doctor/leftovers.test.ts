/**
 * Issue 19's edited and left-over profiles, through the built bundle and the real hooks/qemu in
 * temp roots, with the real apparmor_parser loading into the stand-in securityfs: one meaning of
 * "edited" for status, doctor, release and prune; `include if exists` keeping a kept profile
 * loadable; `status --all`; `prune`. Needs `npm run build` first.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { defaultTestConfig, FAKE_SECURITYFS, makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callHook, domainXml, installHook, UUID } from "../lifecycle/harness.js";
import { UUID_B, UUID_C } from "../lifecycle/guests.js";

vi.setConfig({ testTimeout: 120_000 });

const NAME = `libvirt-${UUID}`;
const PROFILE = `/etc/apparmor.d/libvirt/${NAME}`;
const FILES = `${PROFILE}.files`;
const STATE = `/var/lib/virt-aa-hook/${UUID}.json`;
const KEPT = `/var/lib/virt-aa-hook/kept/${UUID}.json`;
const DEFINED = "/etc/libvirt/qemu/vm1.xml";
const LOADED = `${FAKE_SECURITYFS}/profiles`;
const REMOVE = `${FAKE_SECURITYFS}/.remove`;

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-left-");
  installHook(t);
  fs.mkdirSync(t.at("/var/lib/libvirt/images"), { recursive: true });
  for (const vm of ["vm1", "vm2", "vm3"]) fs.writeFileSync(t.at(`/var/lib/libvirt/images/${vm}.img`), Buffer.alloc(4096));
  // The stand-in securityfs lists what is loaded (written by the test: the parser does not).
  fs.writeFileSync(t.at(LOADED), "");
});
afterEach(() => t.remove());

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BUNDLE, "--root", t.root, ...args], { encoding: "utf8", cwd: t.root, env: { LC_ALL: "C" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const op = (name: string, operation: string): [string, string, string, string] => [name, operation, operation === "release" ? "end" : "begin", "-"];
function prepare(name: string, uuid: string): void {
  const r = callHook(t, op(name, "prepare"), domainXml({ name, uuid, id: 3, disks: [`/var/lib/libvirt/images/${name}.img`] }));
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
}
function release(name: string, uuid: string): string {
  const r = callHook(t, op(name, "release"), domainXml({ name, uuid, disks: [`/var/lib/libvirt/images/${name}.img`] }));
  expect(r.status).toBe(0);
  return r.stderr;
}
function define(name: string, uuid: string): void {
  fs.mkdirSync(t.at("/etc/libvirt/qemu"), { recursive: true });
  fs.writeFileSync(t.at(`/etc/libvirt/qemu/${name}.xml`), domainXml({ name, uuid }));
}
const statusJson = (...extra: string[]) => JSON.parse(cli("status", "--json", ...extra).stdout) as Record<string, unknown>[];
/** The admin's edit: a comment and flags=(complain) in the header. */
function edit(): void {
  t.at(PROFILE);
  const text = t.read(PROFILE).replace("flags=(attach_disconnected)", "flags=(attach_disconnected, complain)").replace(/}\n$/, "  # the admin's rule\n}\n");
  fs.writeFileSync(t.at(PROFILE), text);
}
/** The host went down long ago: the record's prepare is outside the hook's 5-minute window. */
function age(uuid: string): void {
  const file = `/var/lib/virt-aa-hook/${uuid}.json`;
  const rec = JSON.parse(t.read(file)) as Record<string, unknown>;
  rec.prepared = new Date(Date.now() - 10 * 60 * 1000).toISOString();
  fs.writeFileSync(t.at(file), JSON.stringify(rec));
}
const STARTING = "starting: its record is from a prepare less than 5 minutes ago (";
const doctorLine = (out: string, check: string) => out.split("\n").filter((l) => l.includes(`  ${check}: `) || l.startsWith(`FAIL  ${check}`));

describe("edited: one meaning before and after a restart", () => {
  it("status says edited before and after the restart, shows flags=(complain), release keeps it loadable", () => {
    define("vm1", UUID);
    prepare("vm1", UUID);
    expect(t.read(PROFILE)).toContain(`  include if exists <libvirt/${NAME}.files>\n}\n`);
    expect(statusJson()[0]).toMatchObject({ name: "vm1", profileOrigin: "pristine", profileComplain: false });
    const written = JSON.parse(t.read(STATE)).profileSha256 as string;

    edit();
    expect(statusJson()[0]).toMatchObject({ name: "vm1", profileOrigin: "edited", profileComplain: true, loadedAs: "enforce" });
    const table = cli("status").stdout.split("\n");
    expect(table[2]).toMatch(/^vm1 +not running +libvirt-\S+ +not loaded +complain \(profile flags\) +edited +ok$/);

    expect(release("vm1", UUID)).toBe("");
    expect(t.exists(FILES)).toBe(false);
    expect(t.exists(STATE)).toBe(false);
    expect(JSON.parse(t.read(KEPT))).toMatchObject({ name: "vm1", writtenSha256: written });

    // Without a record: not "no guests managed" while the profile sits there.
    expect(cli("status").stdout.split("\n").slice(1).join("\n")).toBe(
      "no guest running or managed by virt-aa-hook\n1 profile(s) of stopped or undefined guests not listed: virt-aa-hook status --all\n",
    );
    expect(statusJson("--all")).toMatchObject([{ name: "vm1", uuid: UUID, standing: "kept", profileOrigin: "edited", filesExists: false, qemu: "not running" }]);

    // doctor: the kept profile compiles without its .files (no false alarm) and is reported as kept.
    const doc = cli("doctor").stdout;
    expect(doctorLine(doc, "profiles compile")[0]).toMatch(/^ok {4}profiles compile: .*libvirt\/libvirt-6a1e3c2b/);
    expect(doctorLine(doc, "left-over profiles")).toEqual([
      `ok    left-over profiles: every profile belongs to a defined or running guest; kept for stopped defined guests: ${NAME} (vm1, edited)`,
    ]);

    // The restart: still "edited" (it was "admin" after a restart before), and still kept at release.
    prepare("vm1", UUID);
    expect(statusJson()[0]).toMatchObject({ name: "vm1", profileOrigin: "edited" });
    release("vm1", UUID);
    expect(t.exists(PROFILE)).toBe(true);
    expect(JSON.parse(t.read(KEPT))).toMatchObject({ writtenSha256: written });
  });

  it("an edit undone is pristine again: release removes the profile and the kept record", () => {
    define("vm1", UUID);
    prepare("vm1", UUID);
    const original = t.read(PROFILE);
    edit();
    release("vm1", UUID);
    prepare("vm1", UUID);
    fs.writeFileSync(t.at(PROFILE), original);
    expect(statusJson()[0]).toMatchObject({ profileOrigin: "pristine" });
    release("vm1", UUID);
    expect([t.exists(PROFILE), t.exists(KEPT)]).toEqual([false, false]);
  });

  it("a profile of an older version (plain include) without its .files: doctor says what to do, no compile failure", () => {
    define("vm1", UUID);
    prepare("vm1", UUID);
    fs.writeFileSync(t.at(PROFILE), t.read(PROFILE).replace("include if exists <", "#include <"));
    release("vm1", UUID);
    const doc = cli("doctor").stdout;
    expect(doctorLine(doc, "profiles compile")[0]).toMatch(/^ok {4}profiles compile: /);
    const lines = doc.split("\n");
    const at = lines.findIndex((l) => l.startsWith("warn  left-over profiles: "));
    expect(lines.slice(at, at + 2)).toEqual([
      `warn  left-over profiles: made by an older virt-aa-hook, they include their missing .files without "if exists" and cannot load until their guest starts: ${PROFILE} (edited); kept for stopped defined guests: ${NAME} (vm1, edited)`,
      `      fix: in each, replace "#include <libvirt/libvirt-<uuid>.files>" by "include if exists <libvirt/libvirt-<uuid>.files>" (virt-aa-hook never rewrites a profile once written), or remove a pristine one: the next start makes it anew`,
    ]);
    // Negative control: the same profile does not compile, which is what doctor must not report as a failure.
    const r = spawnSync("/usr/sbin/apparmor_parser", ["-QK", "-M", t.at("/usr/share/apparmor-features/features"), "--base", t.at("/etc/apparmor.d"), t.at(PROFILE)], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`${NAME}.files`);
  });
});

describe("a transient guest inside its start window is no left-over", () => {
  it("status --all and doctor show it as ours while its prepare is recent; outside the window (negative control) it is orphaned", () => {
    // An incoming migration or `virsh create`: libvirt defines the domain nowhere while it starts.
    prepare("vm2", UUID_B);
    expect(statusJson("--all").map((r) => [r.name, r.standing])).toEqual([["vm2", "managed"]]);
    const inWindow = doctorLine(cli("doctor").stdout, "left-over profiles");
    expect(inWindow).toHaveLength(1);
    expect(inWindow[0]).not.toContain("no defined domain has the UUID of");

    age(UUID_B);
    expect(statusJson("--all").map((r) => [r.name, r.standing])).toEqual([["vm2", "orphaned"]]);
    expect(doctorLine(cli("doctor").stdout, "left-over profiles")[0]).toContain(`no defined domain has the UUID of: libvirt-${UUID_B} (vm2, pristine)`);
  });
});

describe("prune", () => {
  it("never touches a defined domain's profile; removes an unedited orphan; an edited one only with --force", () => {
    define("vm1", UUID);
    prepare("vm1", UUID);
    edit();
    release("vm1", UUID);
    expect(cli("prune")).toEqual({ status: 0, stdout: "nothing to prune: every profile of virt-aa-hook belongs to a defined domain\n", stderr: "" });
    expect(t.exists(PROFILE)).toBe(true);

    // undefine; and a guest whose host went down before release (record, profile, .files; loaded).
    fs.rmSync(t.at(DEFINED));
    prepare("vm2", UUID_B);
    age(UUID_B);
    fs.writeFileSync(t.at(LOADED), `libvirt-${UUID_B} (enforce)\n`);
    expect(statusJson("--all").map((r) => [r.name, r.standing, r.profileOrigin])).toEqual([
      ["vm1", "orphaned", "edited"],
      ["vm2", "orphaned", "pristine"],
    ]);
    const before = [t.read(PROFILE), t.read(`/etc/apparmor.d/libvirt/libvirt-${UUID_B}`)];

    const dry = cli("prune", "--dry-run");
    expect(dry).toEqual({
      status: 2,
      stdout:
        `kept ${NAME} (vm1): ${PROFILE} is edited (its sha256 is not what virt-aa-hook wrote): --force removes it\n` +
        `would remove libvirt-${UUID_B} (vm2): profile, .files, record, cache entries, unload\n`,
      stderr: "",
    });
    expect([t.read(PROFILE), t.read(`/etc/apparmor.d/libvirt/libvirt-${UUID_B}`)]).toEqual(before);

    expect(t.read(REMOVE)).not.toContain(UUID_B);
    const cache = t.at("/var/cache/apparmor/virt-aa-hook");
    const cached = () => (fs.existsSync(cache) ? fs.readdirSync(cache).flatMap((d) => fs.readdirSync(`${cache}/${d}`)).filter((e) => e.startsWith(`libvirt-${UUID_B}`)) : []);
    // The compiled-policy store loaded the guests (docs/compiled-store.md), so the parser's own
    // cache has no entry of theirs; a parser-cache entry (left by a fallback) is removed likewise.
    fs.mkdirSync(`${cache}/stand-in`, { recursive: true });
    fs.writeFileSync(`${cache}/stand-in/libvirt-${UUID_B}`, "");
    expect(cached()).toEqual([`libvirt-${UUID_B}`]);
    // The compiled-policy store's entries (docs/compiled-store.md): the orphan's go, the kept guest's stay.
    const storeEntries = t.at("/var/cache/virt-aa-hook/entries");
    const stored = (uuid: string) => fs.readdirSync(storeEntries).filter((e) => e.startsWith(`libvirt-${uuid}.`));
    expect(stored(UUID_B)).toHaveLength(1);
    expect(stored(UUID)).toHaveLength(1);
    const r = cli("prune");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(2);
    expect(r.stdout.split("\n")[1]).toBe(`removed libvirt-${UUID_B} (vm2): unloaded, .files, cache entries, profile, record`);
    expect(r.stdout.split("\n")[0]).toBe(`kept ${NAME} (vm1): ${PROFILE} is edited (its sha256 is not what virt-aa-hook wrote): --force removes it`);
    // Unloaded: the parser wrote its name to the stand-in securityfs's .remove.
    expect(t.read(REMOVE)).toContain(`libvirt-${UUID_B}`);
    expect(fs.readdirSync(t.at("/etc/apparmor.d/libvirt")).sort()).toEqual(["TEMPLATE.qemu", NAME]);
    expect(fs.existsSync(t.at(`/var/lib/virt-aa-hook/${UUID_B}.json`))).toBe(false);
    expect(cached()).toEqual([]);
    expect(stored(UUID_B)).toEqual([]);
    expect(stored(UUID)).toHaveLength(1);

    expect(cli("prune", "--force")).toEqual({ status: 0, stdout: `removed ${NAME} (vm1): cache entries, edited profile, kept record\n`, stderr: "" });
    expect([t.exists(PROFILE), t.exists(KEPT)]).toEqual([false, false]);
    expect(stored(UUID)).toEqual([]);
    expect(cli("prune").stdout).toBe("nothing to prune: every profile of virt-aa-hook belongs to a defined domain\n");
  });

  it("never prunes what a running QEMU uses, even with --force: by libvirt's pid file or by a process's label", () => {
    prepare("vm3", UUID_C);
    fs.mkdirSync(t.at("/run/libvirt/qemu"), { recursive: true });
    fs.writeFileSync(t.at("/run/libvirt/qemu/vm3.pid"), "4242\n");
    fs.mkdirSync(t.at("/proc/4242/attr/apparmor"), { recursive: true });
    fs.writeFileSync(t.at("/proc/4242/attr/apparmor/current"), `libvirt-${UUID_C} (enforce)\n`);
    // A QEMU libvirt lost track of (no pid file) still runs under UUID's orphaned profile.
    prepare("vm1", UUID);
    fs.mkdirSync(t.at("/proc/777/attr/apparmor"), { recursive: true });
    fs.writeFileSync(t.at("/proc/777/attr/apparmor/current"), `${NAME} (enforce)\n`);
    const r = cli("prune", "--force");
    expect(r).toEqual({
      status: 2,
      stdout:
        `kept ${NAME} (vm1): a guest with this UUID runs (it is never touched while its QEMU runs)\n` +
        `kept libvirt-${UUID_C} (vm3): a guest with this UUID runs (it is never touched while its QEMU runs)\n`,
      stderr: "",
    });
    expect([t.exists(PROFILE), t.exists(`/etc/apparmor.d/libvirt/libvirt-${UUID_C}`)]).toEqual([true, true]);
    // Negative control: once the process is gone (and the record is older than a start), the same call removes it.
    fs.rmSync(t.at("/proc/777"), { recursive: true });
    expect(cli("prune", "--force").stdout.split("\n")[0]).toContain(`kept ${NAME} (vm1): ${STARTING}`);
    age(UUID);
    expect(cli("prune", "--force").stdout.split("\n")[0]).toMatch(new RegExp(`^removed ${NAME} \\(vm1\\): `));
    expect(t.exists(PROFILE)).toBe(false);
  });
});

describe("prune never touches a guest being started (review19 F6)", () => {
  const SHARED = "/var/lib/libvirt/images/shared.img";
  const hook = (name: string, uuid: string, operation: string) =>
    callHook(t, op(name, operation), domainXml({ name, uuid, id: name === "transA" ? 7 : 8, disks: [SHARED] }));

  it("a transient guest between prepare and QEMU's pid file keeps its profile and its claim; a second guest stays refused", () => {
    fs.writeFileSync(t.at(SHARED), Buffer.alloc(4096));
    expect(hook("transA", UUID, "prepare").status).toBe(0);
    const refused = hook("vmB", UUID_B, "prepare");
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain("transA");

    for (const force of [[], ["--force"]]) {
      const r = cli("prune", ...force);
      expect(r.status).toBe(2);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^kept ${NAME} \\(transA\\): ${STARTING.replace(/[()]/g, "\\$&")}[^)]+\\); the hook holds its claims that long before QEMU runs\\n$`));
    }
    expect([t.exists(PROFILE), t.exists(FILES), t.exists(STATE)]).toEqual([true, true, true]);
    expect(t.read(REMOVE)).toBe("");
    expect(hook("vmB", UUID_B, "prepare")).toEqual(refused);

    // Negative control: a record older than the window with no QEMU is stale: pruned, and the disk is free.
    age(UUID);
    const r = cli("prune");
    expect(r).toEqual({ status: 0, stdout: `removed ${NAME} (transA): .files, cache entries, profile, record\n`, stderr: "" });
    expect(hook("vmB", UUID_B, "prepare").status).toBe(0);
  });

  it("kept while libvirt's status XML exists, a hook holds the guest lock, or any thread runs under the profile", () => {
    prepare("vm1", UUID);
    age(UUID);
    const dry = () => cli("prune", "--force", "--dry-run");
    fs.mkdirSync(t.at("/run/libvirt/qemu"), { recursive: true });
    fs.writeFileSync(t.at("/run/libvirt/qemu/vm1.xml"), `<domstatus state='paused'>\n<domain type='kvm'>\n<name>vm1</name>\n<uuid>${UUID}</uuid>\n</domain>\n</domstatus>\n`);
    expect(dry()).toEqual({ status: 2, stdout: `kept ${NAME} (vm1): starting or running: libvirt's status XML /run/libvirt/qemu/vm1.xml exists\n`, stderr: "" });
    fs.rmSync(t.at("/run/libvirt/qemu/vm1.xml"));

    fs.mkdirSync(t.at(`/run/virt-aa-hook/locks/${UUID}.lock`), { recursive: true });
    expect(dry()).toEqual({ status: 2, stdout: `kept ${NAME} (vm1): starting: a hook holds its lock /run/virt-aa-hook/locks/${UUID}.lock\n`, stderr: "" });
    fs.rmSync(t.at(`/run/virt-aa-hook/locks/${UUID}.lock`), { recursive: true });

    // Only a thread (not the process) carries the profile, as a hat.
    fs.mkdirSync(t.at("/proc/900/task/901/attr"), { recursive: true });
    fs.mkdirSync(t.at("/proc/900/attr"), { recursive: true });
    fs.writeFileSync(t.at("/proc/900/attr/current"), "unconfined\n");
    fs.writeFileSync(t.at("/proc/900/task/901/attr/current"), `${NAME}//hat (enforce)\n`);
    expect(dry()).toEqual({ status: 2, stdout: `kept ${NAME} (vm1): a guest with this UUID runs (it is never touched while its QEMU runs)\n`, stderr: "" });
    fs.rmSync(t.at("/proc/900"), { recursive: true });

    // Negative control: nothing of the above: removed; the loaded profile is first replaced by an
    // empty one (the parser writes the stub to .replace), then removed.
    fs.writeFileSync(t.at(LOADED), `${NAME} (enforce)\n`);
    fs.writeFileSync(t.at(`${FAKE_SECURITYFS}/.replace`), "");
    expect(cli("prune")).toEqual({ status: 0, stdout: `removed ${NAME} (vm1): unloaded, .files, cache entries, profile, record\n`, stderr: "" });
    expect(fs.readFileSync(t.at(`${FAKE_SECURITYFS}/.replace`)).includes(Buffer.from(NAME))).toBe(true);
    expect(t.read(REMOVE)).toContain(NAME);
  });
});

describe("prune: a QEMU that attaches while the profile is being removed", () => {
  it("after the empty profile is loaded the tasks are scanned again: one under it keeps the guest, the profile file is loaded again, nothing removed", () => {
    prepare("vm1", UUID);
    age(UUID);
    const loadedAtPrepare = fs.readFileSync(t.at(`${FAKE_SECURITYFS}/.replace`));
    fs.writeFileSync(t.at(LOADED), `${NAME} (enforce)\n`);
    // A fake, only for a race a test cannot time otherwise: a QEMU exec'ing into the profile
    // between prune's scan and the removal. It runs the real parser after making task 950 appear
    // when the empty profile is loaded (-r -K).
    fs.writeFileSync(
      t.at("/racing-parser"),
      `#!/bin/sh\nif [ "$1" = "-r" ] && [ "$2" = "-K" ]; then mkdir -p '${t.at("/proc/950/attr")}' && echo '${NAME} (enforce)' > '${t.at("/proc/950/attr/current")}'; fi\nexec /usr/sbin/apparmor_parser "$@"\n`,
      { mode: 0o755 },
    );
    t.writeConfig({ ...defaultTestConfig(), parser: t.at("/racing-parser") });
    fs.writeFileSync(t.at(`${FAKE_SECURITYFS}/.replace`), "");
    expect(cli("prune")).toEqual({
      status: 2,
      stdout: `kept ${NAME} (vm1): task 950 started under it during the prune; ${PROFILE} is loaded again\n`,
      stderr: "",
    });
    expect([t.exists(PROFILE), t.exists(FILES), t.exists(STATE)]).toEqual([true, true, true]);
    expect(t.read(REMOVE)).toBe("");
    // The last load is the profile file again: the same policy the hook loaded at prepare.
    expect(fs.readFileSync(t.at(`${FAKE_SECURITYFS}/.replace`)).length).toBeGreaterThan(0);
    expect(fs.readFileSync(t.at(`${FAKE_SECURITYFS}/.replace`)).equals(loadedAtPrepare)).toBe(true);
  });
});

describe("prune: what libvirt may define is defined (review19 F11)", () => {
  it("a definition our scanner cannot parse, the UUID in character references, an unreadable file: kept even with --force", () => {
    prepare("vm1", UUID);
    age(UUID);
    fs.mkdirSync(t.at("/etc/libvirt/qemu/autostart"), { recursive: true });
    const keptBy = (file: string) => ({ status: 2, stdout: `kept ${NAME} (vm1): its UUID appears in ${file}, which libvirt may read as its definition\n`, stderr: "" });
    // libvirt rewriting the file: cut short, the UUID in upper case without dashes.
    fs.writeFileSync(t.at(DEFINED), `<domain type='kvm'>\n  <name>vm1</name>\n  <uuid>${UUID.replace(/-/g, "").toUpperCase()}</uu`);
    expect(cli("prune", "--force")).toEqual(keptBy(DEFINED));
    fs.rmSync(t.at(DEFINED));
    const refs = [...UUID].map((c) => `&#x${c.charCodeAt(0).toString(16)};`).join("");
    fs.writeFileSync(t.at("/etc/libvirt/qemu/autostart/x.xml"), `<domain type='kvm'><name>vm&#9;1</name><uuid>${refs}</uuid></domain>\n`);
    expect(cli("prune", "--force")).toEqual(keptBy("/etc/libvirt/qemu/autostart/x.xml"));
    fs.rmSync(t.at("/etc/libvirt/qemu/autostart/x.xml"));
    fs.writeFileSync(t.at("/etc/libvirt/qemu/big.xml"), "");
    fs.truncateSync(t.at("/etc/libvirt/qemu/big.xml"), 17 * 1024 * 1024);
    expect(cli("prune", "--force")).toEqual({
      status: 2,
      stdout: `kept ${NAME} (vm1): cannot tell whether libvirt defines it: cannot read /etc/libvirt/qemu/big.xml (larger than 16777216 bytes)\n`,
      stderr: "",
    });
    // Negative control: another domain's definition names other UUIDs only: removed.
    fs.rmSync(t.at("/etc/libvirt/qemu/big.xml"));
    define("vm3", UUID_C);
    expect(cli("prune")).toEqual({ status: 0, stdout: `removed ${NAME} (vm1): .files, cache entries, profile, record\n`, stderr: "" });
  });
});
