import fs from "node:fs";
import path from "node:path";
import { HostError, PathError, type Warning } from "../errors.js";
import { randomHex } from "../lazy.js";
import { installIfAbsent, isTempNameFor, readIfExists, removeDurably, renameDurably, writeNewFile } from "./atomic.js";
import type { GuestPaths } from "./guest-files.js";
import { withHostLock, type GuestLock } from "./lock.js";
import type { OnDisk, SyncPlan } from "./plan.js";
import { readState, writeState, type GuestState } from "./state.js";

/**
 * Carrying out a sync plan (plan.ts), under the guest's lock, with every guarantee the hook gives
 * (docs/hook.md "Files", docs/threat-model.md):
 *
 * 1. the claim: the guest's paths are checked against the other running guests, and a wider
 *    claim is recorded under the host-wide lock before anything is loaded;
 * 2. new files are written into a staging directory next to the real ones (dot-named: the parser
 *    skips it) and compiled or loaded from there (`-I stage` is searched before the base, so the
 *    profile's `#include <libvirt/libvirt-<uuid>.files>` reads the staged file);
 * 3. only once the parser accepted them are they renamed into place (the profile only if still
 *    absent: it is the admin's once it exists). Any failure before that leaves the previous files
 *    exactly as they were, and the previous record is put back;
 * 4. the next record is written.
 *
 * The parser is apparmor/'s, a later stage: the hook hands it in as a ProfileCompiler.
 */

export interface CompileOptions {
  /** Real path of a staging dir searched before the base for includes (`-I`). */
  stageDir?: string;
  /** How the admin sees the staging dir's `libvirt/` in messages (host profiles dir). */
  stageShownAs?: { real: string; host: string };
}

/** The parser, for one guest's profile (apparmor/parser.ts behind it). Failures throw HostError. */
export interface ProfileCompiler {
  /** Compile `profile` (real path) without loading or caching. */
  validate(profile: string, opts: CompileOptions): Promise<void>;
  /** Load or replace `profile` (real path), through the cache unless `skipReadCache`. */
  load(profile: string, opts: CompileOptions & { skipReadCache: boolean; complain: boolean }): Promise<void>;
  /** Remove the profile's compiled entries from the parser cache. */
  removeCacheEntries(): void;
}

export interface ApplyContext {
  paths: GuestPaths;
  /** Host path of the profiles directory, for messages. */
  hostProfilesDir: string;
  /** The guest's lock, held: checked before anything is committed. */
  lock: GuestLock;
  compiler: ProfileCompiler;
  /** Throws when another running guest holds what this guest claims (hook/exclusive.ts). */
  checkClaim: () => void;
  hostLock: { path: string; timeoutMs: number };
}

/**
 * A hook killed mid-transaction left staging dirs behind: remove them and, with them, the
 * profile's cache entries: if it got as far as loading its staged files, the parser cache (-W)
 * holds that uncommitted compile, newer than the .files on disk, and a later cache-hit load would
 * put those rules in the kernel while the .files says otherwise.
 */
export function recoverInterrupted(paths: GuestPaths, compiler: Pick<ProfileCompiler, "removeCacheEntries">, warnings: Warning[]): void {
  if (removeStaleStages(paths) === 0) return;
  compiler.removeCacheEntries();
  warnings.push({ path: "-", reason: "removed the staging leftovers of an interrupted hook and the profile's cache entries" });
}

/** What planSync needs to know of the guest's files (under the guest's lock). */
export function readOnDisk(paths: GuestPaths): OnDisk {
  return {
    hostProfile: paths.hostProfile,
    state: readState(paths.state),
    files: readIfExists(paths.files),
    filesMtimeMs: fs.statSync(paths.files, { throwIfNoEntry: false })?.mtimeMs,
    profile: readIfExists(paths.profile),
  };
}

/** Carry out `plan`; what it tolerated is added to `warnings` (also when it then fails). */
export async function applySync(plan: SyncPlan, ctx: ApplyContext, warnings: Warning[]): Promise<void> {
  const { paths } = ctx;
  if (plan.claim === undefined) {
    ctx.checkClaim();
  } else {
    const record = plan.claim.record;
    // Briefly (a few reads and one write), so two guests preparing at once see each other.
    await withHostLock(ctx.hostLock.path, ctx.hostLock.timeoutMs, async (hostLock) => {
      ctx.checkClaim();
      hostLock.check();
      writeState(paths.state, record);
    });
  }
  warnings.push(...plan.warnings);
  try {
    await compileAndCommit(plan, ctx, warnings);
    ctx.lock.check();
    if (plan.next !== undefined) writeState(paths.state, { ...plan.next, updated: new Date().toISOString() });
  } catch (err) {
    if (plan.claim !== undefined) undoClaim(paths, plan.claim.restore, warnings);
    throw err;
  }
}

async function compileAndCommit(plan: SyncPlan, ctx: ApplyContext, warnings: Warning[]): Promise<void> {
  const { paths, compiler } = ctx;
  const write = plan.write;
  if (write === undefined) {
    if (plan.parser !== "load") return;
    try {
      await compiler.load(paths.profile, { skipReadCache: plan.skipReadCache, complain: plan.complain });
    } catch (err) {
      throw asFailure(err, paths);
    }
    return;
  }
  let stage: Stage | undefined;
  let uncommitted = false;
  try {
    stage = makeStage(paths, ctx.hostProfilesDir);
    const stagedFiles = path.join(stage.libvirtDir, path.basename(paths.files));
    const stagedProfile = path.join(stage.libvirtDir, path.basename(paths.profile));
    staging(paths, ctx.hostProfilesDir, () => {
      writeNewFile(stagedFiles, write.files);
      if (write.profile !== undefined) writeNewFile(stagedProfile, write.profile);
    });
    const compiled = write.profile !== undefined ? stagedProfile : paths.profile;
    const opts = { stageDir: stage.root, stageShownAs: { real: stage.libvirtDir, host: ctx.hostProfilesDir } };
    if (plan.parser === "load") {
      uncommitted = plan.dropCacheOnFailure;
      await compiler.load(compiled, { ...opts, skipReadCache: plan.skipReadCache, complain: plan.complain });
    } else {
      // Nothing is committed that the parser has not accepted.
      await compiler.validate(compiled, opts);
    }
    ctx.lock.check();
    renameDurably(stagedFiles, paths.files);
    uncommitted = false;
    if (write.profile !== undefined && !installIfAbsent(stagedProfile, paths.profile)) {
      warnings.push({ path: "-", reason: `${paths.hostProfile} appeared meanwhile; kept it` });
    }
  } catch (err) {
    // The parser may have cached the staged compile (-W): it must not outlive the staged files.
    if (uncommitted) compiler.removeCacheEntries();
    throw asFailure(err, paths);
  } finally {
    if (stage) fs.rmSync(stage.root, { recursive: true, force: true });
  }
}

/** The load failed after a claim was recorded: put the old record back (a narrower claim, no lock needed). */
function undoClaim(paths: GuestPaths, previous: GuestState | undefined, warnings: Warning[]): void {
  try {
    if (previous === undefined) removeDurably(paths.state);
    else writeState(paths.state, previous);
  } catch (err) {
    warnings.push({ path: "-", reason: `cannot restore ${paths.hostState} after the failure: ${(err as Error).message}` });
  }
}

/** Parser and filesystem faults name the per-guest profile they were about. */
function asFailure(err: unknown, paths: GuestPaths): unknown {
  if (err instanceof PathError) return err;
  if (err instanceof HostError || (err instanceof Error && (err as NodeJS.ErrnoException).code !== undefined)) {
    return new PathError(paths.hostProfile, err.message);
  }
  return err;
}

interface Stage {
  root: string;
  libvirtDir: string;
}

function makeStage(paths: GuestPaths, hostProfilesDir: string): Stage {
  const root = path.join(paths.profilesDir, `${paths.stagePrefix}${process.pid}-${randomHex(4)}`);
  const libvirtDir = path.join(root, "libvirt");
  // One level at a time: a recursive mkdir reports a read-only filesystem as ENOENT.
  staging(paths, hostProfilesDir, () => {
    fs.mkdirSync(root, { mode: 0o700 });
    try {
      fs.mkdirSync(libvirtDir, { mode: 0o700 });
    } catch (err) {
      fs.rmSync(root, { recursive: true, force: true });
      throw err;
    }
  });
  return { root, libvirtDir };
}

/**
 * Filesystem faults while staging (full disk, read-only mount, quota) name the `.files` and the
 * directory the admin knows, with the system's reason ("ENOSPC: no space left on device"), not
 * our dot-named staging path.
 */
function staging(paths: GuestPaths, hostProfilesDir: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === undefined) throw err;
    const reason = /^[A-Z0-9]+: [^,]*/.exec(e.message)?.[0] ?? e.code;
    throw new PathError(paths.hostFiles, `cannot write the new rules in ${hostProfilesDir}: ${reason}`);
  }
}

/**
 * Staging dirs of this guest, and temporary files of its state record, left by a killed hook; safe
 * to remove under the guest's lock (sync and release). Returns how many staging dirs there were.
 */
export function removeStaleStages(paths: GuestPaths): number {
  let stages = 0;
  for (const e of entriesOf(paths.profilesDir)) {
    if (e.startsWith(paths.stagePrefix)) {
      fs.rmSync(path.join(paths.profilesDir, e), { recursive: true, force: true });
      stages++;
    }
  }
  const stateDir = path.dirname(paths.state);
  for (const e of entriesOf(stateDir)) {
    if (isTempNameFor(paths.state, e)) fs.rmSync(path.join(stateDir, e), { force: true });
  }
  return stages;
}

/** A directory's entries; none when it does not exist (yet) or cannot be read. */
function entriesOf(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
