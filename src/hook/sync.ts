import fs from "node:fs";
import path from "node:path";
import { randomHex } from "../lazy.js";
import { detectEnvironment, KERNEL_ENABLED_FILE, Parser, removeCacheEntries } from "../apparmor/index.js";
import { buildProfile } from "../pipeline.js";
import { renderProfile } from "../render/index.js";
import { installIfAbsent, isTempNameFor, readIfExists, removeDurably, renameDurably, writeNewFile } from "../store/atomic.js";
import { filesInclude, guestPaths, hostLockPath, sha256, type GuestPaths } from "../store/guest-files.js";
import { withGuestLock, withHostLock, type GuestLock } from "../store/lock.js";
import { readState, writeState, type GuestState, type HeldPath } from "../store/state.js";
import { checkAttach } from "./attach-check.js";
import type { HookContext } from "./context.js";
import { conflictError, coveredBy, findConflict, heldPaths, needsRefresh, unionHolds } from "./exclusive.js";
import { PathError } from "../errors.js";
import { checkKeptOwner } from "./kept.js";

/**
 * When to (re)load the profile:
 * - always: `prepare`: the profile must be in the kernel before QEMU runs (an unchanged guest is a
 *   cache hit, a few milliseconds);
 * - if-changed: `start`: only when the rules (or the mode) changed since `prepare`;
 * - if-not-loaded: `reconnect`: when changed or when the kernel does not (visibly) have it.
 */
export type LoadPolicy = "always" | "if-changed" | "if-not-loaded";

export interface SyncOutcome {
  uuid: string;
  profileName: string;
  /** What happened, for the log: "loaded", "unchanged", "compiled", "skipped: ..." */
  summary: string;
}

/**
 * Derive the rules for a domain XML and bring the guest's files and loaded profile in line with
 * them, as one transaction under the guest's lock:
 *
 * 1. derive the `.files` text (buildProfile); a rejected guest throws GuestError before anything
 *    is touched;
 * 2. if the `.files` differs from what is on disk, or the per-guest profile does not exist yet,
 *    write the new files into a staging directory next to the real ones (dot-named: the parser
 *    skips it) and compile/load from there (`-I stage` is searched before the base, so the
 *    profile's `#include <libvirt/libvirt-<uuid>.files>` reads the staged file);
 * 3. only once the parser accepted them, rename the staged files into place (the profile only if
 *    still absent: it is the admin's once it exists). Any failure before that leaves the previous
 *    files exactly as they were.
 */
export async function syncProfile(ctx: HookContext, xml: Buffer, policy: LoadPolicy): Promise<SyncOutcome> {
  const { layout, config } = ctx;
  // start/reconnect: image chains may only narrow what prepare granted (rules/storage.ts), so the
  // header-derived part is judged against the .files on disk.
  const previousFiles = policy === "always" ? undefined : (uuid: string) => readIfExists(guestPaths(layout, uuid).files);
  const built = buildProfile(xml, { layout, ...(previousFiles ? { previousFiles } : {}) });
  const uuid = built.domain.uuid;
  // require_attach: a guest that would run outside its profile is refused before anything is written.
  if (policy !== "if-not-loaded") checkAttach(config, built.domain);
  const paths = guestPaths(layout, uuid);
  const env = detectEnvironment(layout, config);

  let compileOnly = false;
  if (!env.target) {
    if (config.noApparmor === "fail") {
      throw new PathError(
        KERNEL_ENABLED_FILE,
        `cannot load ${paths.profileName}: AppArmor is not enabled in this kernel (set no_apparmor in ${layout.configPath} to start guests without it)`,
      );
    }
    if (config.noApparmor === "skip") return { uuid, profileName: paths.profileName, summary: "skipped: AppArmor is not enabled" };
    compileOnly = true;
  }
  const parser = new Parser(config.parser, env, config.parserTimeout * 1000);
  const wantedAs: NonNullable<GuestState["loadedAs"]> = compileOnly ? "compile-only" : config.mode === "complain" ? "complain" : "enforce";

  fs.mkdirSync(paths.profilesDir, { recursive: true, mode: 0o755 });
  return withGuestLock({ lockPath: paths.lock, guest: ctx.guest, timeoutMs: config.lockTimeout * 1000 }, async (lock) => {
    if (removeStaleStages(paths) > 0) {
      // A hook was killed mid-transaction. If it got as far as loading its staged files, the
      // parser cache (-W) holds that uncommitted compile, newer than the .files on disk, and a
      // later cache-hit load would put those rules in the kernel while the .files says otherwise.
      removeCacheEntries(env.cacheDir, paths.profileName);
      ctx.log.detail("warn", ctx.guest, ctx.op, "removed the staging leftovers of an interrupted hook and the profile's cache entries");
    }
    const state = readState(paths.state);
    const existingProfile = readIfExists(paths.profile);
    checkKeptOwner(ctx, paths, built.domain.name, state, existingProfile);
    const now = Date.now();
    const holds = heldPaths(layout, built.domain, built.rules);
    const claim = await claimPaths(ctx, paths, built.domain.name, state, holds, policy === "always", now);
    try {
      return await commit(lock, state, existingProfile, holds, claim.prepared);
    } catch (err) {
      if (claim.recorded) undoClaim(ctx, paths, state);
      throw err;
    }
  });

  /** Steps 2 and 3 under the guest's lock, once the guest's paths are claimed. */
  async function commit(
    lock: GuestLock,
    state: GuestState | undefined,
    existingProfile: Buffer | undefined,
    holds: HeldPath[],
    prepared: string | undefined,
  ): Promise<SyncOutcome> {
    const newFiles = Buffer.from(built.filesText, "utf8");
    const oldFiles = readIfExists(paths.files);
    const filesChanged = oldFiles === undefined || !oldFiles.equals(newFiles);
    const newProfile = existingProfile === undefined ? createProfileText(ctx, paths) : undefined;
    const modeChanged = state?.loadedAs !== wantedAs;

    if (existingProfile !== undefined && !includesFiles(existingProfile, uuid)) {
      ctx.log.detail("warn", ctx.guest, ctx.op, `${paths.hostProfile} does not include <${filesInclude(uuid)}>: the generated rules do not apply`);
    }

    let load: boolean;
    if (compileOnly) load = false;
    else if (policy === "always") load = true;
    else if (filesChanged || newProfile !== undefined || modeChanged) load = true;
    else load = policy === "if-not-loaded" && parser.loadedMode(paths.profileName) !== wantedAs;

    const complain = wantedAs === "complain";
    let summary: string;
    if (filesChanged || newProfile !== undefined) {
      let stage: Stage | undefined;
      let staleCache = false;
      try {
        stage = makeStage(paths, layout);
        const stagedFiles = path.join(stage.libvirtDir, path.basename(paths.files));
        const stagedProfile = path.join(stage.libvirtDir, path.basename(paths.profile));
        staging(paths, layout, () => {
          writeNewFile(stagedFiles, newFiles);
          if (newProfile !== undefined) writeNewFile(stagedProfile, newProfile);
        });
        const compiled = newProfile !== undefined ? stagedProfile : paths.profile;
        const shown = { real: stage.libvirtDir, host: layout.profilesDir };
        if (load) {
          staleCache = true;
          await parser.load(compiled, paths.profileName, { stageDir: stage.root, stageShownAs: shown, skipReadCache: true, complain });
        } else {
          await parser.validate(compiled, paths.profileName, { stageDir: stage.root, stageShownAs: shown });
        }
        lock.check();
        renameDurably(stagedFiles, paths.files);
        staleCache = false;
        if (newProfile !== undefined && !installIfAbsent(stagedProfile, paths.profile)) {
          ctx.log.detail("warn", ctx.guest, ctx.op, `${paths.hostProfile} appeared meanwhile; kept it`);
        }
      } catch (err) {
        // The parser may have cached the staged compile (-W): it must not outlive the staged files.
        if (staleCache) removeCacheEntries(env.cacheDir, paths.profileName);
        throw asFailure(err, paths);
      } finally {
        if (stage) fs.rmSync(stage.root, { recursive: true, force: true });
      }
      summary = `${load ? "loaded" : "compiled"} ${filesChanged ? "new rules" : "unchanged rules"}${newProfile !== undefined ? ", created profile" : ""}`;
    } else if (load) {
      try {
        await parser.load(paths.profile, paths.profileName, { skipReadCache: modeChanged, complain });
      } catch (err) {
        throw asFailure(err, paths);
      }
      summary = modeChanged ? `reloaded as ${wantedAs}` : "loaded unchanged rules";
    } else {
      summary = "unchanged";
    }

    lock.check();
    const didLoad = load || compileOnly;
    const next: GuestState = {
      version: 1,
      uuid,
      name: built.domain.name,
      profileName: paths.profileName,
      ...(newProfile !== undefined
        ? { profileSha256: sha256(newProfile) }
        : state?.profileSha256 !== undefined
          ? { profileSha256: state.profileSha256 }
          : {}),
      // Unchanged rules keep the hash we recorded for them: hashing loads node:crypto (~4 ms), and
      // if someone rewrote the .files to exactly these rules, the old hash only makes release keep it.
      // Only if the record is newer than the .files: a hook killed between renaming a new .files
      // into place and writing its record left a record that describes the previous one.
      filesSha256: !filesChanged && state?.filesSha256 !== undefined && !newerThan(paths.files, state.updated) ? state.filesSha256 : sha256(newFiles),
      ...(didLoad ? { loadedAs: wantedAs } : state?.loadedAs ? { loadedAs: state.loadedAs } : {}),
      // What the guest holds from now on: exactly this profile's paths (the claim made before the
      // load held the union of the old and the new profile's).
      holds,
      ...(prepared !== undefined ? { prepared } : {}),
      updated: new Date().toISOString(),
    };
    // A record that would only get a new `updated` is left alone: the atomic write fsyncs twice,
    // which is most of what an unchanged start costs (docs/performance.md).
    if (state === undefined || !sameRecord(state, next)) writeState(paths.state, next);
    return { uuid, profileName: paths.profileName, summary };
  }
}

/**
 * Check `holds` against every other running guest and, when they claim anything this guest did
 * not already hold (or a `prepare` restarts the guest's grace window), record the claim before the
 * profile is loaded: under the host-wide lock, briefly (a few reads and one write), so two guests
 * preparing at once see each other. The record then holds the union of the old and the new paths
 * until the load is done (the old profile may still be in the kernel); `commit` narrows it to the
 * new paths, `undoClaim` restores the old record if the load fails.
 */
async function claimPaths(
  ctx: HookContext,
  paths: GuestPaths,
  name: string,
  state: GuestState | undefined,
  holds: HeldPath[],
  prepare: boolean,
  now: number,
): Promise<{ recorded: boolean; prepared: string | undefined }> {
  const { layout } = ctx;
  const check = () => {
    const conflict = findConflict(layout, paths.uuid, holds, now, (other, held) => {
      ctx.log.detail(
        "warn",
        ctx.guest,
        ctx.op,
        `${held}: also held by guest ${other.name} (${other.uuid}), not counted: no running QEMU and prepared ${other.prepared ?? "at an unknown time"}`,
      );
    });
    if (conflict) throw conflictError(name, conflict);
  };
  const refresh = prepare && needsRefresh(state, now);
  if (!refresh && coveredBy(holds, state?.holds)) {
    check();
    return { recorded: false, prepared: state?.prepared };
  }
  const prepared = refresh ? new Date(now).toISOString() : state?.prepared;
  await withHostLock(hostLockPath(layout), ctx.config.lockTimeout * 1000, async (hostLock) => {
    check();
    hostLock.check();
    const base: GuestState = state ?? { version: 1, uuid: paths.uuid, name, profileName: paths.profileName, updated: "" };
    writeState(paths.state, {
      ...base,
      name,
      holds: unionHolds(state?.holds, holds),
      ...(prepared !== undefined ? { prepared } : {}),
      updated: new Date(now).toISOString(),
    });
  });
  return { recorded: true, prepared };
}

/** The load failed after a claim was recorded: put the old record back (a narrower claim, no lock needed). */
function undoClaim(ctx: HookContext, paths: GuestPaths, state: GuestState | undefined): void {
  try {
    if (state === undefined) removeDurably(paths.state);
    else writeState(paths.state, state);
  } catch (err) {
    ctx.log.detail("warn", ctx.guest, ctx.op, `cannot restore ${paths.hostState} after the failure: ${(err as Error).message}`);
  }
}

/** Was `file` modified after the ISO time `when` (or cannot that be told)? */
function newerThan(file: string, when: string): boolean {
  const written = Date.parse(when);
  const st = fs.statSync(file, { throwIfNoEntry: false });
  return st === undefined || !Number.isFinite(written) || st.mtimeMs > written;
}

/** Same record apart from the time it was written. */
function sameRecord(a: GuestState, b: GuestState): boolean {
  const keys = (s: GuestState) => Object.keys(s).filter((k) => k !== "updated").sort();
  const ka = keys(a);
  const kb = keys(b);
  const value = (s: GuestState, k: string) => JSON.stringify((s as unknown as Record<string, unknown>)[k]);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && value(a, k) === value(b, k));
}

function createProfileText(ctx: HookContext, paths: GuestPaths): string {
  const template = ctx.config.template;
  let text: string;
  try {
    text = fs.readFileSync(ctx.layout.host(template), "utf8");
  } catch (err) {
    throw new PathError(template, `cannot read the AppArmor template: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return renderProfile(text, paths.profileName, filesInclude(paths.uuid));
  } catch (err) {
    throw new PathError(template, `cannot create ${paths.hostProfile} from the template: ${(err as Error).message}`);
  }
}

function includesFiles(profile: Buffer, uuid: string): boolean {
  const name = filesInclude(uuid);
  return profile.includes(`<${name}>`) || profile.includes(`"${name}"`);
}

/** Parser and filesystem faults name the per-guest profile they were about. */
function asFailure(err: unknown, paths: GuestPaths): unknown {
  if (err instanceof PathError) return err;
  if (err instanceof Error && (err.name === "HostError" || (err as NodeJS.ErrnoException).code !== undefined)) {
    return new PathError(paths.hostProfile, err.message);
  }
  return err;
}

interface Stage {
  root: string;
  libvirtDir: string;
}

function makeStage(paths: GuestPaths, layout: HookContext["layout"]): Stage {
  const root = path.join(paths.profilesDir, `${paths.stagePrefix}${process.pid}-${randomHex(4)}`);
  const libvirtDir = path.join(root, "libvirt");
  // One level at a time: a recursive mkdir reports a read-only filesystem as ENOENT.
  staging(paths, layout, () => {
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
function staging(paths: GuestPaths, layout: HookContext["layout"], fn: () => void): void {
  try {
    fn();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === undefined) throw err;
    const reason = /^[A-Z0-9]+: [^,]*/.exec(e.message)?.[0] ?? e.code;
    throw new PathError(paths.hostFiles, `cannot write the new rules in ${layout.profilesDir}: ${reason}`);
  }
}

/**
 * Staging dirs of this guest, and temporary files of its state record, left by a killed hook; safe
 * to remove: we hold the guest's lock. Returns how many staging dirs there were.
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
