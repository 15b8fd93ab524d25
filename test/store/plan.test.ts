import { describe, expect, it } from "vitest";
import { sha256 } from "../../src/store/guest-files.js";
import {
  planSync,
  planTarget,
  type BuiltGuest,
  type LoadedAs,
  type LoadPolicy,
  type OnDisk,
  type SyncPlan,
  type Target,
  type TargetConfig,
} from "../../src/store/plan.js";
import type { GuestState, HeldPath } from "../../src/store/state.js";

// Every row of the decision tables in src/store/plan.ts's header, each with the exact plan.

const UUID = "0c2a6b1e-3f4d-4e5f-8a9b-112233445566";
const NAME = `libvirt-${UUID}`;
const HOST_PROFILE = `/etc/apparmor.d/libvirt/${NAME}`;
const PROFILE = `#include <tunables/global>\nprofile ${NAME} {\n  #include <libvirt/${NAME}.files>\n}\n`;
const FILES = `  "/var/lib/libvirt/images/a.img" rwk,\n`;
const NEW_FILES = `  "/var/lib/libvirt/images/a.img" rwk,\n  "/var/lib/libvirt/images/b.img" rwk,\n`;
const NOW = Date.parse("2026-03-04T05:06:07.000Z");
const iso = (ms: number) => new Date(ms).toISOString();
/** Prepared 10 s ago: no refresh due (REFRESH_MS is a minute). */
const PREPARED = iso(NOW - 10_000);
const RECORDED = iso(NOW - 5_000);
const DISK_A: HeldPath = { path: "/var/lib/libvirt/images/a.img", write: true, shareable: false, source: "disk vda", id: "file:1:2" };
const DISK_B: HeldPath = { path: "/var/lib/libvirt/images/b.img", write: true, shareable: false, source: "disk vdb" };

function built(over: Partial<BuiltGuest> = {}): BuiltGuest {
  return { uuid: UUID, name: "vm1", profileName: NAME, filesText: FILES, holds: [DISK_A], newProfile: PROFILE, ...over };
}

/** The record a previous prepare left: our profile, these rules, loaded enforce, holding disk A. */
function record(over: Partial<GuestState> = {}): GuestState {
  // As read from JSON: a field given as undefined is absent.
  return withoutUndefined({
    version: 1,
    uuid: UUID,
    name: "vm1",
    profileName: NAME,
    profileSha256: sha256(PROFILE),
    filesSha256: sha256(FILES),
    loadedAs: "enforce",
    holds: [DISK_A],
    prepared: PREPARED,
    updated: RECORDED,
    ...over,
  });
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function onDisk(over: Partial<OnDisk> = {}): OnDisk {
  return {
    hostProfile: HOST_PROFILE,
    state: record(),
    files: Buffer.from(FILES),
    // Written before the record: the recorded hash stands for it.
    filesMtimeMs: NOW - 20_000,
    profile: Buffer.from(PROFILE),
    ...over,
  };
}

describe("planTarget: where the profile goes", () => {
  const rows: Array<[canLoad: boolean, noApparmor: TargetConfig["noApparmor"], mode: TargetConfig["mode"], target: Target]> = [
    [true, "fail", "complain", { kind: "profile", as: "complain", modeFrom: "config" }],
    [true, "skip", "complain", { kind: "profile", as: "complain", modeFrom: "config" }],
    [true, "compile-only", "complain", { kind: "profile", as: "complain", modeFrom: "config" }],
    [true, "fail", "enforce", { kind: "profile", as: "enforce", modeFrom: "config" }],
    [true, "skip", "enforce", { kind: "profile", as: "enforce", modeFrom: "config" }],
    [true, "compile-only", "enforce", { kind: "profile", as: "enforce", modeFrom: "config" }],
    [true, "fail", "off", { kind: "profile", as: "enforce", modeFrom: "config" }],
    [false, "fail", "enforce", { kind: "refuse" }],
    [false, "fail", "complain", { kind: "refuse" }],
    [false, "skip", "enforce", { kind: "skip" }],
    [false, "skip", "complain", { kind: "skip" }],
    [false, "compile-only", "enforce", { kind: "profile", as: "compile-only", modeFrom: "config" }],
    [false, "compile-only", "complain", { kind: "profile", as: "compile-only", modeFrom: "config" }],
  ];
  it.each(rows)("load target %s, no_apparmor %s, mode %s", (canLoad, noApparmor, mode, target) => {
    expect(planTarget({ mode, noApparmor }, { canLoad })).toEqual(target);
  });

  // The domain's <vah:mode> (docs/metadata.md): [config mode, require_attach, guest_mode, guest mode, target].
  type GM = "ignore" | "tighten" | "any" | undefined;
  const guestRows: Array<[TargetConfig["mode"], boolean, GM, "enforce" | "complain" | undefined, Target]> = [
    // guest_mode = "ignore" (the default, also when absent): the domain's request changes nothing (review finding #3).
    ["enforce", false, undefined, "complain", { kind: "profile", as: "enforce", modeFrom: "ignored" }],
    ["enforce", false, "ignore", "complain", { kind: "profile", as: "enforce", modeFrom: "ignored" }],
    ["enforce", true, "ignore", "complain", { kind: "profile", as: "enforce", modeFrom: "ignored" }],
    ["enforce", false, "ignore", "enforce", { kind: "profile", as: "enforce", modeFrom: "config" }],
    ["complain", false, "ignore", "enforce", { kind: "profile", as: "complain", modeFrom: "ignored" }],
    // "tighten": only enforce.
    ["enforce", false, "tighten", "complain", { kind: "profile", as: "enforce", modeFrom: "ignored" }],
    ["complain", false, "tighten", "enforce", { kind: "profile", as: "enforce", modeFrom: "metadata" }],
    ["complain", false, "tighten", "complain", { kind: "profile", as: "complain", modeFrom: "config" }],
    ["enforce", false, "tighten", "enforce", { kind: "profile", as: "enforce", modeFrom: "metadata" }],
    // "any": both.
    ["enforce", false, "any", "complain", { kind: "profile", as: "complain", modeFrom: "metadata" }],
    ["enforce", false, "any", "enforce", { kind: "profile", as: "enforce", modeFrom: "metadata" }],
    ["enforce", false, "any", undefined, { kind: "profile", as: "enforce", modeFrom: "config" }],
    ["complain", false, "any", "enforce", { kind: "profile", as: "enforce", modeFrom: "metadata" }],
    ["complain", true, "any", "enforce", { kind: "profile", as: "enforce", modeFrom: "metadata" }],
    ["complain", true, "any", "complain", { kind: "profile", as: "complain", modeFrom: "metadata" }],
    ["enforce", true, "any", "enforce", { kind: "profile", as: "enforce", modeFrom: "metadata" }],
    // mode = "off" wins: the hook does nothing (run.ts), so nothing the domain says counts.
    ["off", false, "any", "complain", { kind: "profile", as: "enforce", modeFrom: "config" }],
  ];
  it.each(guestRows)("config mode %s, require_attach %s, guest_mode %s, the domain's <mode> %s", (mode, requireAttach, guestMode, domainMode, target) => {
    expect(planTarget({ mode, noApparmor: "fail", requireAttach, ...(guestMode ? { guestMode } : {}) }, { canLoad: true }, domainMode)).toEqual(target);
  });

  it("under guest_mode = any, refuses the domain's complain under mode = enforce with require_attach = yes, even without AppArmor", () => {
    for (const canLoad of [true, false]) {
      expect(() => planTarget({ mode: "enforce", noApparmor: "compile-only", requireAttach: true, guestMode: "any" }, { canLoad }, "complain")).toThrow(
          'metadata/guest/mode: the domain asks for complain mode, but require_attach = "yes" requires every guest confined; remove <mode> from the domain\'s metadata (virsh metadata) or set require_attach = "no"',
      );
    }
    // Negative control: the same config without the domain's complain.
    expect(planTarget({ mode: "enforce", noApparmor: "compile-only", requireAttach: true }, { canLoad: true }, undefined)).toEqual({
      kind: "profile",
      as: "enforce",
      modeFrom: "config",
    });
  });
});

describe("planSync: what is written and loaded", () => {
  interface Row {
    as: LoadedAs;
    policy: LoadPolicy;
    /** The `.files` on disk: the same rules, other rules, or none. */
    files: "same" | "changed" | "missing";
    profile: "present" | "missing";
    /** loadedAs in the record. */
    recorded: LoadedAs;
    /** What the kernel says (only reconnect asks). */
    kernel?: string | null;
    write: "none" | "files" | "files+profile";
    parser: SyncPlan["parser"];
    skipReadCache: boolean;
    summary: string;
    /** loadedAs of the next record; undefined: the record is not rewritten. */
    next: LoadedAs | undefined;
  }
  const rows: Array<[string, Row]> = [
    // compile-only: never loaded, validated only when something is written.
    ["compile-only, new rules", { as: "compile-only", policy: "always", files: "changed", profile: "present", recorded: "compile-only", write: "files", parser: "validate", skipReadCache: false, summary: "compiled new rules", next: "compile-only" }],
    ["compile-only, no .files and no profile (the record's hashes stand)", { as: "compile-only", policy: "always", files: "missing", profile: "missing", recorded: "compile-only", write: "files+profile", parser: "validate", skipReadCache: false, summary: "compiled new rules, created profile", next: undefined }],
    ["compile-only, profile removed, same rules", { as: "compile-only", policy: "if-changed", files: "same", profile: "missing", recorded: "compile-only", write: "files+profile", parser: "validate", skipReadCache: false, summary: "compiled unchanged rules, created profile", next: undefined }],
    ["compile-only, unchanged", { as: "compile-only", policy: "always", files: "same", profile: "present", recorded: "compile-only", write: "none", parser: "none", skipReadCache: false, summary: "unchanged", next: undefined }],
    ["compile-only, unchanged, was loaded before", { as: "compile-only", policy: "if-not-loaded", files: "same", profile: "present", recorded: "enforce", write: "none", parser: "none", skipReadCache: false, summary: "unchanged", next: "compile-only" }],
    // prepare: always loaded.
    ["prepare, new rules", { as: "enforce", policy: "always", files: "changed", profile: "present", recorded: "enforce", write: "files", parser: "load", skipReadCache: true, summary: "loaded new rules", next: "enforce" }],
    ["prepare, no .files and no profile", { as: "enforce", policy: "always", files: "missing", profile: "missing", recorded: "enforce", write: "files+profile", parser: "load", skipReadCache: true, summary: "loaded new rules, created profile", next: undefined }],
    ["prepare, profile removed, same rules", { as: "enforce", policy: "always", files: "same", profile: "missing", recorded: "enforce", write: "files+profile", parser: "load", skipReadCache: true, summary: "loaded unchanged rules, created profile", next: undefined }],
    ["prepare, new rules, mode changed", { as: "complain", policy: "always", files: "changed", profile: "present", recorded: "enforce", write: "files", parser: "load", skipReadCache: true, summary: "loaded new rules", next: "complain" }],
    ["prepare, mode changed", { as: "complain", policy: "always", files: "same", profile: "present", recorded: "enforce", write: "none", parser: "load", skipReadCache: true, summary: "reloaded as complain", next: "complain" }],
    ["prepare, unchanged: a cache hit", { as: "enforce", policy: "always", files: "same", profile: "present", recorded: "enforce", write: "none", parser: "load", skipReadCache: false, summary: "loaded unchanged rules", next: undefined }],
    ["prepare, unchanged, complain", { as: "complain", policy: "always", files: "same", profile: "present", recorded: "complain", write: "none", parser: "load", skipReadCache: false, summary: "loaded unchanged rules", next: undefined }],
    // start: only what changed.
    ["start, new rules", { as: "enforce", policy: "if-changed", files: "changed", profile: "present", recorded: "enforce", write: "files", parser: "load", skipReadCache: true, summary: "loaded new rules", next: "enforce" }],
    ["start, .files gone", { as: "enforce", policy: "if-changed", files: "missing", profile: "present", recorded: "enforce", write: "files", parser: "load", skipReadCache: true, summary: "loaded new rules", next: undefined }],
    ["start, profile removed", { as: "enforce", policy: "if-changed", files: "same", profile: "missing", recorded: "enforce", write: "files+profile", parser: "load", skipReadCache: true, summary: "loaded unchanged rules, created profile", next: undefined }],
    ["start, mode changed", { as: "enforce", policy: "if-changed", files: "same", profile: "present", recorded: "complain", write: "none", parser: "load", skipReadCache: true, summary: "reloaded as enforce", next: "enforce" }],
    ["start, was compile-only, AppArmor now enabled", { as: "enforce", policy: "if-changed", files: "same", profile: "present", recorded: "compile-only", write: "none", parser: "load", skipReadCache: true, summary: "reloaded as enforce", next: "enforce" }],
    ["start, unchanged", { as: "enforce", policy: "if-changed", files: "same", profile: "present", recorded: "enforce", write: "none", parser: "none", skipReadCache: false, summary: "unchanged", next: undefined }],
    // reconnect: what changed, or what the kernel lacks.
    ["reconnect, new rules", { as: "enforce", policy: "if-not-loaded", files: "changed", profile: "present", recorded: "enforce", kernel: "enforce", write: "files", parser: "load", skipReadCache: true, summary: "loaded new rules", next: "enforce" }],
    ["reconnect, profile removed", { as: "enforce", policy: "if-not-loaded", files: "same", profile: "missing", recorded: "enforce", kernel: "enforce", write: "files+profile", parser: "load", skipReadCache: true, summary: "loaded unchanged rules, created profile", next: undefined }],
    // (A change to complain is never applied after prepare: "a loosened mode is applied at prepare only" below.)
    ["reconnect, mode changed to enforce", { as: "enforce", policy: "if-not-loaded", files: "same", profile: "present", recorded: "complain", kernel: "complain", write: "none", parser: "load", skipReadCache: true, summary: "reloaded as enforce", next: "enforce" }],
    ["reconnect, not loaded", { as: "enforce", policy: "if-not-loaded", files: "same", profile: "present", recorded: "enforce", kernel: null, write: "none", parser: "load", skipReadCache: false, summary: "loaded unchanged rules", next: undefined }],
    ["reconnect, kernel cannot say", { as: "enforce", policy: "if-not-loaded", files: "same", profile: "present", recorded: "enforce", kernel: undefined, write: "none", parser: "load", skipReadCache: false, summary: "loaded unchanged rules", next: undefined }],
    ["reconnect, loaded in another mode", { as: "enforce", policy: "if-not-loaded", files: "same", profile: "present", recorded: "enforce", kernel: "complain", write: "none", parser: "load", skipReadCache: false, summary: "loaded unchanged rules", next: undefined }],
    ["reconnect, loaded as wanted", { as: "enforce", policy: "if-not-loaded", files: "same", profile: "present", recorded: "enforce", kernel: "enforce", write: "none", parser: "none", skipReadCache: false, summary: "unchanged", next: undefined }],
  ];

  it.each(rows)("%s", (_, row) => {
    const filesText = row.files === "changed" ? NEW_FILES : FILES;
    const state = record({ loadedAs: row.recorded });
    const plan = planSync(
      built({ filesText }),
      onDisk({ state, files: row.files === "missing" ? undefined : Buffer.from(FILES), profile: row.profile === "missing" ? undefined : Buffer.from(PROFILE) }),
      { policy: row.policy, as: row.as },
      { now: NOW, loadedMode: row.kernel },
    );
    const expected: SyncPlan = {
      claim: undefined,
      write: row.write === "none" ? undefined : { files: Buffer.from(filesText), profile: row.write === "files+profile" ? PROFILE : undefined },
      parser: row.parser,
      skipReadCache: row.skipReadCache,
      dropCacheOnFailure: row.parser === "load" && row.write !== "none",
      complain: row.as === "complain",
      next:
        row.next === undefined
          ? undefined
          : {
              version: 1,
              uuid: UUID,
              name: "vm1",
              profileName: NAME,
              profileSha256: sha256(PROFILE),
              filesSha256: sha256(filesText),
              loadedAs: row.next,
              holds: [DISK_A],
              prepared: PREPARED,
            },
      summary: row.summary,
      warnings: [],
    };
    expect(plan).toEqual(expected);
  });
});

describe("planSync: the claim on the guest's paths", () => {
  /** The record written before the load: the old one, holding the old and the new paths. */
  const claimOf = (holds: HeldPath[], prepared: string, state: GuestState = record()) => ({
    record: { ...state, name: "vm1", holds, prepared, updated: iso(NOW) },
    restore: state,
  });
  const rows: Array<[string, { policy: LoadPolicy; state: GuestState | undefined; holds: HeldPath[]; claim: SyncPlan["claim"] }]> = [
    ["same paths, prepared recently: checked only", { policy: "always", state: record(), holds: [DISK_A], claim: undefined }],
    ["fewer paths at start: checked only", { policy: "if-changed", state: record({ holds: [DISK_A, DISK_B] }), holds: [DISK_B], claim: undefined }],
    ["read where write was held: checked only", { policy: "if-changed", state: record(), holds: [{ ...DISK_A, write: false }], claim: undefined }],
    ["shareable where exclusive was held: checked only", { policy: "if-changed", state: record(), holds: [{ ...DISK_A, shareable: true }], claim: undefined }],
    ["a new path: claimed (old and new)", { policy: "if-changed", state: record(), holds: [DISK_B], claim: claimOf([DISK_A, DISK_B], PREPARED) }],
    ["write where read was held: claimed", { policy: "if-not-loaded", state: record({ holds: [{ ...DISK_A, write: false }] }), holds: [DISK_A], claim: claimOf([DISK_A], PREPARED, record({ holds: [{ ...DISK_A, write: false }] })) }],
    ["exclusive where shareable was held: claimed", { policy: "if-changed", state: record({ holds: [{ ...DISK_A, shareable: true }] }), holds: [DISK_A], claim: claimOf([{ ...DISK_A, shareable: false }], PREPARED, record({ holds: [{ ...DISK_A, shareable: true }] })) }],
    ["a record without holds: claimed", { policy: "if-changed", state: record({ holds: undefined }), holds: [DISK_A], claim: claimOf([DISK_A], PREPARED, record({ holds: undefined })) }],
    ["a record without holds, nothing to hold: checked only", { policy: "if-changed", state: record({ holds: undefined }), holds: [], claim: undefined }],
    ["prepare, record older than a minute: the grace window restarts", { policy: "always", state: record({ prepared: iso(NOW - 61_000) }), holds: [DISK_A], claim: claimOf([DISK_A], iso(NOW), record({ prepared: iso(NOW - 61_000) })) }],
    ["prepare, record prepared in the future (clock set back)", { policy: "always", state: record({ prepared: iso(NOW + 61_000) }), holds: [DISK_A], claim: claimOf([DISK_A], iso(NOW), record({ prepared: iso(NOW + 61_000) })) }],
    ["prepare, record never prepared", { policy: "always", state: record({ prepared: undefined }), holds: [DISK_A], claim: claimOf([DISK_A], iso(NOW), record({ prepared: undefined })) }],
    ["start, record older than a minute: no refresh", { policy: "if-changed", state: record({ prepared: iso(NOW - 61_000) }), holds: [DISK_A], claim: undefined }],
    // A tree (hook/exclusive.ts) and a path of the same name are two holds.
    ["a tree where the same path was held: claimed (both)", { policy: "if-changed", state: record(), holds: [{ ...DISK_A, tree: true }], claim: claimOf([DISK_A, { ...DISK_A, tree: true }], PREPARED) }],
    ["the same tree again: checked only", { policy: "if-changed", state: record({ holds: [{ ...DISK_A, tree: true }] }), holds: [{ ...DISK_A, tree: true }], claim: undefined }],
    ["no record yet: claimed", { policy: "always", state: undefined, holds: [DISK_A], claim: { record: { version: 1, uuid: UUID, name: "vm1", profileName: NAME, holds: [DISK_A], prepared: iso(NOW), updated: iso(NOW) }, restore: undefined } }],
  ];
  it.each(rows)("%s", (_, row) => {
    const plan = planSync(built({ holds: row.holds }), onDisk({ state: row.state }), { policy: row.policy, as: "enforce" }, { now: NOW, loadedMode: "enforce" });
    expect(plan.claim).toEqual(row.claim);
    // The next record holds exactly the new paths, with the (possibly restarted) prepare time.
    const prepared = row.claim?.record.prepared ?? row.state?.prepared;
    expect(plan.next?.holds ?? row.state?.holds).toEqual(row.holds);
    expect(plan.next?.prepared ?? row.state?.prepared).toBe(prepared);
  });
});

describe("planSync: the next record", () => {
  const plan = (disk: Partial<OnDisk>, guest: Partial<BuiltGuest> = {}) =>
    planSync(built(guest), onDisk(disk), { policy: "if-changed", as: "enforce" }, { now: NOW, loadedMode: "enforce" });
  const next = (over: Partial<GuestState>) => {
    const { updated: _, ...rest } = record(over);
    return rest;
  };
  const OTHER_HASH = "0".repeat(64);

  it("unchanged: left alone (no write of a new `updated` only)", () => {
    expect(plan({}).next).toBeUndefined();
  });
  it("same rules, record newer than the .files: the recorded hash is kept (no hashing)", () => {
    expect(plan({ state: record({ filesSha256: OTHER_HASH }) }).next).toBeUndefined();
  });
  it("same rules, .files modified after the record (a hook killed before writing it): hashed again", () => {
    expect(plan({ state: record({ filesSha256: OTHER_HASH }), filesMtimeMs: NOW - 1_000 }).next).toEqual(next({}));
  });
  it("same rules, .files time unknown: hashed again", () => {
    expect(plan({ state: record({ filesSha256: OTHER_HASH }), filesMtimeMs: undefined }).next).toEqual(next({}));
  });
  it("same rules, record time unreadable: hashed again", () => {
    expect(plan({ state: record({ filesSha256: OTHER_HASH, updated: "yesterday" }) }).next).toEqual(next({}));
  });
  it("same rules, no hash recorded: hashed", () => {
    expect(plan({ state: record({ filesSha256: undefined }) }).next).toEqual(next({}));
  });
  it("a profile that was never ours stays without a hash", () => {
    expect(plan({ state: record({ profileSha256: undefined }) }).next).toBeUndefined();
    expect(plan({ state: record({ profileSha256: undefined }) }, { filesText: NEW_FILES }).next).toEqual(
      next({ profileSha256: undefined, filesSha256: sha256(NEW_FILES) }),
    );
  });
  it("the admin's profile was removed: the one created now is ours, its hash recorded", () => {
    expect(plan({ state: record({ profileSha256: undefined }), profile: undefined }).next).toEqual(next({}));
  });
  it("the domain was renamed: the record follows the name", () => {
    expect(plan({}, { name: "vm1-renamed" }).next).toEqual(next({ name: "vm1-renamed" }));
  });
  it("no record at all: a full one (the profile on disk is not ours)", () => {
    const p = planSync(built(), onDisk({ state: undefined }), { policy: "always", as: "enforce" }, { now: NOW, loadedMode: null });
    expect(p.next).toEqual({ version: 1, uuid: UUID, name: "vm1", profileName: NAME, filesSha256: sha256(FILES), loadedAs: "enforce", holds: [DISK_A], prepared: iso(NOW) });
    expect(p.summary).toBe("reloaded as enforce");
  });
  it("compile-only is recorded even when nothing was compiled", () => {
    const p = planSync(built(), onDisk({ state: record({ loadedAs: undefined }) }), { policy: "if-changed", as: "compile-only" }, { now: NOW, loadedMode: undefined });
    expect(p.next).toEqual(next({ loadedAs: "compile-only" }));
  });
});

describe("planSync: where the mode came from (the domain's <vah:mode> or the config)", () => {
  const plan = (policy: LoadPolicy, state: GuestState, as: LoadedAs, modeFrom: "config" | "metadata") =>
    planSync(built(), onDisk({ state }), { policy, as, modeFrom }, { now: NOW, loadedMode: "enforce" });
  it("a load records it", () => {
    expect(plan("always", record(), "complain", "metadata").next?.modeFrom).toBe("metadata");
    expect(plan("always", record({ modeFrom: "metadata" }), "enforce", "config").next?.modeFrom).toBe("config");
  });
  it("a mode that changed its source but not its value reloads nothing at start, and the record keeps what was loaded", () => {
    const p = plan("if-changed", record({ modeFrom: "config" }), "enforce", "metadata");
    expect([p.parser, p.next]).toEqual(["none", undefined]);
  });
  it("a tightened mode at start reloads, recorded with its source", () => {
    const p = plan("if-changed", record({ modeFrom: "config", loadedAs: "complain" }), "enforce", "metadata");
    expect([p.parser, p.summary, p.complain, p.next?.loadedAs, p.next?.modeFrom]).toEqual(["load", "reloaded as enforce", false, "enforce", "metadata"]);
  });
  it("a loosened mode is applied at prepare only: start, reconnect keep enforce with a warning", () => {
    for (const policy of ["if-changed", "if-not-loaded"] as const) {
      const p = plan(policy, record({ modeFrom: "config", loadedAs: "enforce" }), "complain", "metadata");
      expect([p.parser, p.complain, p.next], policy).toEqual(["none", false, undefined]);
      expect(p.warnings.map((w) => w.reason)).toEqual(["the guest would now be loaded in complain mode; a running guest's mode is never loosened: it stays enforce until its next start"]);
    }
    // With changed rules it loads them, still enforce, and the record keeps where enforce came from.
    const changed = planSync(built({ filesText: NEW_FILES }), onDisk({ state: record({ modeFrom: "config", loadedAs: "enforce" }) }), { policy: "if-changed", as: "complain", modeFrom: "metadata" }, { now: NOW, loadedMode: "enforce" });
    expect([changed.parser, changed.complain, changed.next?.loadedAs, changed.next?.modeFrom]).toEqual(["load", false, "enforce", "config"]);
    // Control: prepare loosens.
    const prepare = plan("always", record({ modeFrom: "config", loadedAs: "enforce" }), "complain", "metadata");
    expect([prepare.parser, prepare.complain, prepare.next?.loadedAs, prepare.warnings]).toEqual(["load", true, "complain", []]);
  });
});

describe("planSync: warnings and impossible inputs", () => {
  it("a profile that does not include the .files is used, with a warning", () => {
    const admin = `profile ${NAME} {\n}\n`;
    const p = planSync(built(), onDisk({ profile: Buffer.from(admin) }), { policy: "if-changed", as: "enforce" }, { now: NOW, loadedMode: "enforce" });
    expect(p.warnings).toEqual([{ path: "-", reason: `${HOST_PROFILE} does not include <libvirt/${NAME}.files>: the generated rules do not apply` }]);
    expect(p.parser).toBe("none");
  });
  it("the include may be quoted", () => {
    const quoted = `profile ${NAME} {\n  #include "libvirt/${NAME}.files"\n}\n`;
    expect(planSync(built(), onDisk({ profile: Buffer.from(quoted) }), { policy: "if-changed", as: "enforce" }, { now: NOW, loadedMode: "enforce" }).warnings).toEqual([]);
  });
  it("no profile on disk and none to create is a caller's mistake", () => {
    expect(() => planSync(built({ newProfile: undefined }), onDisk({ profile: undefined }), { policy: "always", as: "enforce" }, { now: NOW, loadedMode: null })).toThrow(
      `planSync: ${HOST_PROFILE} is missing and no profile to create was given`,
    );
  });
});
