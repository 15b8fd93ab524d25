import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HostError, PathError, type Warning } from "../../src/errors.js";
import { Layout } from "../../src/layout.js";
import { applySync, readOnDisk, recoverInterrupted, removeStaleStages, type ApplyContext, type CompileOptions } from "../../src/store/apply.js";
import { guestPaths, hostLockPath, type GuestPaths } from "../../src/store/guest-files.js";
import { GuestLock } from "../../src/store/lock.js";
import { planSync, type SyncPlan } from "../../src/store/plan.js";
import { readState, writeState, type GuestState } from "../../src/store/state.js";

// The applier with a stand-in parser: what it writes, in which order, and what a failure leaves.

const UUID = "0c2a6b1e-3f4d-4e5f-8a9b-112233445566";
const NAME = `libvirt-${UUID}`;
const PROFILE = `profile ${NAME} {\n  #include <libvirt/${NAME}.files>\n}\n`;
const OLD_FILES = `  "/old.img" rwk,\n`;
const NEW_FILES = `  "/new.img" rwk,\n`;
const NOW = Date.parse("2026-03-04T05:06:07.000Z");

let root: string;
let paths: GuestPaths;
let lock: GuestLock;
let layout: Layout;

beforeEach(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-apply-"));
  layout = new Layout(root);
  paths = guestPaths(layout, UUID);
  fs.mkdirSync(paths.profilesDir, { recursive: true });
  lock = await GuestLock.acquire({ lockPath: paths.lock, guest: "vm1", timeoutMs: 1000 });
});
afterEach(async () => {
  await lock.release();
  fs.rmSync(root, { recursive: true, force: true });
});

interface Call {
  op: "validate" | "load";
  profile: string;
  /** What the compiled profile's include would read: the staged .files, else the real one. */
  files: string | undefined;
  opts: CompileOptions & { skipReadCache?: boolean; complain?: boolean };
}

/** A parser that records what it was asked, with what it would have read, and can be made to fail. */
function fakeCompiler(fail?: Error) {
  const calls: Call[] = [];
  let cacheDrops = 0;
  const seen = (op: Call["op"], profile: string, opts: Call["opts"]) => {
    const staged = opts.stageDir === undefined ? undefined : path.join(opts.stageDir, "libvirt", path.basename(paths.files));
    const files = staged !== undefined && fs.existsSync(staged) ? staged : paths.files;
    calls.push({ op, profile: profile.replace(root, ""), files: fs.existsSync(files) ? fs.readFileSync(files, "utf8") : undefined, opts: { ...opts } });
    if (fail) throw fail;
  };
  return {
    calls,
    drops: () => cacheDrops,
    compiler: {
      validate: async (profile: string, opts: CompileOptions) => seen("validate", profile, opts),
      load: async (profile: string, opts: CompileOptions & { skipReadCache: boolean; complain: boolean }) => seen("load", profile, opts),
      removeCacheEntries: () => void cacheDrops++,
    },
  };
}

function context(compiler: ApplyContext["compiler"], checkClaim: () => void = () => {}): ApplyContext {
  return { paths, hostProfilesDir: layout.profilesDir, lock, compiler, checkClaim, hostLock: { path: hostLockPath(layout), timeoutMs: 1000 } };
}

const previous: GuestState = { version: 1, uuid: UUID, name: "vm1", profileName: NAME, loadedAs: "enforce", holds: [], prepared: new Date(NOW).toISOString(), updated: new Date(NOW - 1000).toISOString() };

/** A prepare with new rules for a guest whose old files and record are on disk. */
function newRulesPlan(): SyncPlan {
  fs.writeFileSync(paths.files, OLD_FILES);
  fs.writeFileSync(paths.profile, PROFILE);
  writeState(paths.state, previous);
  const holds = [{ path: "/new.img", write: true, shareable: false, source: "disk vda" }];
  return planSync({ uuid: UUID, name: "vm1", profileName: NAME, filesText: NEW_FILES, holds }, readOnDisk(paths), { policy: "always", as: "enforce" }, { now: NOW, loadedMode: null });
}

const leftovers = () => fs.readdirSync(paths.profilesDir).filter((e) => e.startsWith("."));

describe("applySync", () => {
  it("loads the staged .files, then commits it and writes the record", async () => {
    const plan = newRulesPlan();
    const f = fakeCompiler();
    const warnings: Warning[] = [];
    await applySync(plan, context(f.compiler), warnings);
    expect(f.calls).toEqual([
      {
        op: "load",
        profile: `/etc/apparmor.d/libvirt/${NAME}`,
        files: NEW_FILES,
        opts: { stageDir: expect.stringContaining(paths.stagePrefix), stageShownAs: { real: expect.stringMatching(/\/libvirt$/), host: "/etc/apparmor.d/libvirt" }, skipReadCache: true, complain: false },
      },
    ]);
    expect(fs.readFileSync(paths.files, "utf8")).toBe(NEW_FILES);
    const { updated, ...rest } = readState(paths.state)!;
    expect(rest).toEqual(plan.next);
    expect(Date.parse(updated)).toBeGreaterThan(Date.now() - 60_000);
    expect(leftovers()).toEqual([]);
    expect(f.drops()).toBe(0);
    expect(warnings).toEqual([]);
  });

  it("a failed load leaves the old .files, puts the old record back, drops the staged compile from the cache, and names the profile", async () => {
    const plan = newRulesPlan();
    expect(plan.claim).toBeDefined();
    const f = fakeCompiler(new HostError(`cannot load ${NAME}: parser says no`));
    const err = await applySync(plan, context(f.compiler), []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PathError);
    expect(err).toMatchObject({ path: paths.hostProfile, reason: `cannot load ${NAME}: parser says no` });
    expect(fs.readFileSync(paths.files, "utf8")).toBe(OLD_FILES);
    expect(readState(paths.state)).toEqual(previous);
    expect(f.drops()).toBe(1);
    expect(leftovers()).toEqual([]);
  });

  it("a refused claim writes nothing and runs no parser", async () => {
    const plan = newRulesPlan();
    const f = fakeCompiler();
    const refusal = new PathError("/new.img", "held by another guest");
    await expect(applySync(plan, context(f.compiler, () => { throw refusal; }), [])).rejects.toBe(refusal);
    expect(f.calls).toEqual([]);
    expect(fs.readFileSync(paths.files, "utf8")).toBe(OLD_FILES);
    expect(readState(paths.state)).toEqual(previous);
  });

  it("the claim is recorded (old and new paths) before the parser runs", async () => {
    const plan = newRulesPlan();
    let during: GuestState | undefined;
    const f = fakeCompiler();
    const compiler = { ...f.compiler, load: async () => void (during = readState(paths.state)) };
    await applySync(plan, context(compiler), []);
    expect(during).toEqual(plan.claim!.record);
  });

  it("validates a new profile from the stage and never overwrites one that appeared meanwhile", async () => {
    const holds: never[] = [];
    const plan = planSync(
      { uuid: UUID, name: "vm1", profileName: NAME, filesText: NEW_FILES, holds, newProfile: PROFILE },
      readOnDisk(paths),
      { policy: "always", as: "compile-only" },
      { now: NOW, loadedMode: undefined },
    );
    const admin = "# the admin's\n";
    const f = fakeCompiler();
    const compiler = { ...f.compiler, validate: async (p: string, o: CompileOptions) => {
      await f.compiler.validate(p, o);
      fs.writeFileSync(paths.profile, admin);
    } };
    const warnings: Warning[] = [];
    await applySync(plan, context(compiler), warnings);
    expect(f.calls.map((c) => [c.op, path.basename(path.dirname(path.dirname(c.profile))).startsWith(paths.stagePrefix), c.files])).toEqual([["validate", true, NEW_FILES]]);
    expect(fs.readFileSync(paths.profile, "utf8")).toBe(admin);
    expect(fs.readFileSync(paths.files, "utf8")).toBe(NEW_FILES);
    expect(warnings).toEqual([{ path: "-", reason: `${paths.hostProfile} appeared meanwhile; kept it` }]);
  });

  it("a staging dir that cannot be made names the .files and the directory the admin knows", async () => {
    const plan = newRulesPlan();
    fs.rmSync(paths.profilesDir, { recursive: true });
    fs.writeFileSync(paths.profilesDir, "not a directory");
    const err = await applySync(plan, context(fakeCompiler().compiler), []).catch((e: unknown) => e);
    expect(err).toMatchObject({ path: paths.hostFiles, reason: "cannot write the new rules in /etc/apparmor.d/libvirt: ENOTDIR: not a directory" });
  });
});

describe("recovery after a killed hook", () => {
  it("removes this guest's staging dirs and state temp files, drops the cache entries, and says so", () => {
    fs.mkdirSync(path.join(paths.profilesDir, `${paths.stagePrefix}123-abcd`, "libvirt"), { recursive: true });
    fs.mkdirSync(path.dirname(paths.state), { recursive: true });
    fs.writeFileSync(path.join(path.dirname(paths.state), `.${UUID}.json.tmp-123-abcdef`), "{");
    const other = path.join(paths.profilesDir, ".virt-aa-hook-stage-ffffffff-3f4d-4e5f-8a9b-112233445566-1-abcd");
    fs.mkdirSync(other);
    let drops = 0;
    const warnings: Warning[] = [];
    recoverInterrupted(paths, { removeCacheEntries: () => void drops++ }, warnings);
    expect(leftovers()).toEqual([path.basename(other)]);
    expect(fs.readdirSync(path.dirname(paths.state))).toEqual([]);
    expect(drops).toBe(1);
    expect(warnings).toEqual([{ path: "-", reason: "removed the staging leftovers of an interrupted hook and the profile's cache entries" }]);
  });

  it("nothing left: nothing dropped, nothing said", () => {
    let drops = 0;
    const warnings: Warning[] = [];
    recoverInterrupted(paths, { removeCacheEntries: () => void drops++ }, warnings);
    expect([drops, warnings, removeStaleStages(paths)]).toEqual([0, [], 0]);
  });
});
