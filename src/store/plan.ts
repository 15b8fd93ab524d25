import { PathError, type Warning } from "../errors.js";
import { filesInclude, sha256 } from "./guest-files.js";
import { coveredBy, needsRefresh, unionHolds } from "./holds.js";
import type { RuntimeGrant } from "../ir.js";
import type { GuestState, HeldPath } from "./state.js";

/**
 * What a `prepare`, `start` or `reconnect` does to a guest's files, record and loaded profile,
 * decided before anything is done: pure functions of what was derived, what is on disk and what
 * the host offers (no filesystem, no parser, no clock: the time comes in as `now`). store/apply.ts
 * carries a plan out; hook/sync.ts reads the inputs, asks here, and hands the plan over.
 *
 * Why in store/: the plan is about the store's files (the `.files`, the per-guest profile, the
 * state record and its held paths, all defined in this stage); loading is decided here only as
 * data ("load", "validate", "skip the cache"), so nothing here imports apparmor/, a later stage.
 *
 * Two steps, because the first must be taken before anything is locked or read:
 *
 * planTarget(config, environment, guestMode): where the profile goes. "mode" is the effective mode
 * (effectiveMode): the config's `mode`, or the domain's own `<vah:mode>` (domain/metadata.ts) where
 * the config's `guest_mode` honours it: "ignore" (the default) never, "tighten" only enforce,
 * "any" both. Whoever may define a domain writes its metadata, and complain mode only logs what
 * the profile would deny. Under "any", a complain under `mode = "enforce"` with
 * `require_attach = "yes"` is still refused (PathError): that setting says no guest may run
 * unconfined.
 *
 *   | load target | no_apparmor  | mode            | target                     |
 *   |-------------|--------------|-----------------|----------------------------|
 *   | yes         | any          | complain        | profile, loaded complain   |
 *   | yes         | any          | enforce (, off) | profile, loaded enforce    |
 *   | no          | fail         | any             | refuse (the start fails)   |
 *   | no          | skip         | any             | skip (nothing is written)  |
 *   | no          | compile-only | any             | profile, compile-only      |
 *
 * planSync(built, onDisk, settings, environment), under the guest's lock:
 *
 *   "changed" = the `.files` is missing or differs, or the profile is missing (then created from
 *   the template); "mode changed" = the record's loadedAs is not the target's.
 *
 *   | target       | policy                      | changed | mode changed | kernel has it as target | write | parser   | -T  | summary                                  |
 *   |--------------|-----------------------------|---------|--------------|-------------------------|-------|----------|-----|------------------------------------------|
 *   | compile-only | any                         | yes     | any          | -                       | stage | validate | no  | compiled new/unchanged rules[, created profile] |
 *   | compile-only | any                         | no      | any          | -                       | no    | none     | no  | unchanged                                |
 *   | loaded       | always (prepare)            | yes     | any          | -                       | stage | load     | yes | loaded new/unchanged rules[, created profile] |
 *   | loaded       | always (prepare)            | no      | yes          | -                       | no    | load     | yes | reloaded as <mode>                       |
 *   | loaded       | always (prepare)            | no      | no           | -                       | no    | load     | no  | loaded unchanged rules (a cache hit)     |
 *   | loaded       | if-changed / if-not-loaded  | yes     | any          | -                       | stage | load     | yes | loaded new/unchanged rules[, created profile] |
 *   | loaded       | if-changed / if-not-loaded  | no      | yes          | -                       | no    | load     | yes | reloaded as <mode>                       |
 *   | loaded       | if-changed (start)          | no      | no           | -                       | no    | none     | no  | unchanged                                |
 *   | loaded       | if-not-loaded (reconnect)   | no      | no           | no (or unknown)         | no    | load     | no  | loaded unchanged rules                   |
 *   | loaded       | if-not-loaded (reconnect)   | no      | no           | yes                     | no    | none     | no  | unchanged                                |
 *
 *   "stage": the new `.files` (and the new profile) are written into a staging directory, compiled
 *   or loaded from there, and only then renamed into place (store/apply.ts). A staged *load* may
 *   leave the uncommitted compile in the parser cache (-W): it is removed if the commit fails.
 *
 *   The claim (hook/exclusive.ts): the record is written before the load, under the host-wide
 *   lock, holding the old and the new paths, when a `prepare` finds its record's time stale (the
 *   grace window restarts) or the new paths are not covered by what the record holds; otherwise
 *   the paths are only checked.
 *
 *   The next record: written unless it would differ from the current one only in `updated`; it
 *   carries the runtime grants the `.files` was built with (a change of grants alone that leaves
 *   the `.files` as it is rewrites only the record; one that changes it is "changed" above); it
 *   keeps the recorded `.files` hash when the rules did not change and the record is newer than
 *   the `.files` (hashing loads node:crypto); loadedAs becomes the target's whenever the parser
 *   loads or the target is compile-only, else stays as recorded.
 *
 *   Never loosened: only `prepare` (policy "always") sets the mode a guest runs in. A later sync of
 *   the running guest (start, reconnect, a regeneration) whose target is complain while the record
 *   says it was loaded enforce keeps enforce, with a warning: a `<vah:mode>` (or config) changed on
 *   a running guest applies at its next start. Tightening (complain -> enforce) applies at once.
 */

/** How a profile is (or would have been) loaded; the state record's `loadedAs`. */
export type LoadedAs = NonNullable<GuestState["loadedAs"]>;

/**
 * When to (re)load the profile:
 * - always: `prepare`: the profile must be in the kernel before QEMU runs (an unchanged guest is a
 *   cache hit, a few milliseconds);
 * - if-changed: `start`: only when the rules (or the mode) changed since `prepare`;
 * - if-not-loaded: `reconnect`: when changed or when the kernel does not (visibly) have it.
 */
export type LoadPolicy = "always" | "if-changed" | "if-not-loaded";

export type Target = { kind: "refuse" } | { kind: "skip" } | { kind: "profile"; as: LoadedAs; modeFrom: ModeSource };

export interface TargetConfig {
  mode: "enforce" | "complain" | "off";
  noApparmor: "fail" | "compile-only" | "skip";
  /** `require_attach`: under guest_mode "any", no guest may ask for complain under enforce either. */
  requireAttach?: boolean;
  /** `guest_mode`: which `<vah:mode>` requests are honoured (config.ts); absent = "ignore". */
  guestMode?: "ignore" | "tighten" | "any";
}

/**
 * Where a guest's mode comes from: the config's `mode`, the domain's `<vah:mode>`, or the config's
 * `mode` because the domain asked for another one that `guest_mode` does not honour ("ignored").
 */
export type ModeSource = "config" | "metadata" | "ignored";

/** `<vah:mode>` of the domain (Domain.settings.mode), when it has one. */
export type GuestMode = "enforce" | "complain" | undefined;

/**
 * The mode a guest's profile is loaded in, and where it comes from. `mode = "off"` wins over
 * everything (the hook does nothing). A request `guest_mode` does not honour leaves the config's
 * mode ("ignored" when it asked for another one; the caller logs a warning). Throws PathError for
 * a complain `require_attach` forbids under guest_mode "any".
 */
export function effectiveMode(config: Pick<TargetConfig, "mode" | "requireAttach" | "guestMode">, guestMode: GuestMode): { mode: TargetConfig["mode"]; from: ModeSource } {
  if (config.mode === "off" || guestMode === undefined) return { mode: config.mode, from: "config" };
  const honoured = config.guestMode === "any" || (config.guestMode === "tighten" && guestMode === "enforce");
  if (!honoured) return { mode: config.mode, from: guestMode === config.mode ? "config" : "ignored" };
  if (guestMode === "complain" && config.mode === "enforce" && config.requireAttach === true) {
    throw new PathError(
      "metadata/guest/mode",
      `the domain asks for complain mode, but require_attach = "yes" requires every guest confined; remove <mode> from the domain's metadata (virsh metadata) or set require_attach = "no"`,
    );
  }
  return { mode: guestMode, from: "metadata" };
}

/** Step one: where the profile goes (see the first table). `guestMode`: the domain's `<vah:mode>`. */
export function planTarget(config: TargetConfig, environment: { canLoad: boolean }, guestMode?: GuestMode): Target {
  const { mode, from } = effectiveMode(config, guestMode);
  if (environment.canLoad) return { kind: "profile", as: mode === "complain" ? "complain" : "enforce", modeFrom: from };
  if (config.noApparmor === "fail") return { kind: "refuse" };
  if (config.noApparmor === "skip") return { kind: "skip" };
  return { kind: "profile", as: "compile-only", modeFrom: from };
}

/** What was derived for the guest. */
export interface BuiltGuest {
  uuid: string;
  /** Domain name. */
  name: string;
  profileName: string;
  /** The `.files` text (pipeline.ts). */
  filesText: string;
  /** The paths the new rules hold (hook/exclusive.ts heldPaths). */
  holds: HeldPath[];
  /**
   * The runtime grants the `.files` text was built with (the record's, changed by this call):
   * what the next record keeps. Empty or absent: the next record has none.
   */
  grants?: readonly RuntimeGrant[];
  /** The per-guest profile made from the template; needed only when none is on disk. */
  newProfile?: string;
}

/** The guest's files as they are, read under its lock (store/apply.ts readOnDisk). */
export interface OnDisk {
  /** Host path of the per-guest profile, for messages. */
  hostProfile: string;
  state: GuestState | undefined;
  files: Buffer | undefined;
  /** When the `.files` was last modified (ms); undefined when it cannot be told. */
  filesMtimeMs: number | undefined;
  profile: Buffer | undefined;
}

export interface SyncSettings {
  policy: LoadPolicy;
  /** planTarget's answer. */
  as: LoadedAs;
  /** planTarget's answer: where the mode came from (recorded for `status`). */
  modeFrom?: ModeSource;
}

export interface SyncEnvironment {
  /** The time of this call (ms). */
  now: number;
  /**
   * How the kernel has the profile (apparmor Parser.loadedMode): a mode, null when not loaded,
   * undefined when it cannot say. Only `if-not-loaded` looks at it.
   */
  loadedMode: string | null | undefined;
}

/** A record as written, minus `updated`: the applier stamps the time it writes it. */
export type NextRecord = Omit<GuestState, "updated">;

export interface SyncPlan {
  /**
   * Record the claim before the load: after checking the paths against the other running guests
   * under the host-wide lock, write `record` (old and new paths); if anything then fails, put
   * `restore` back (undefined: remove the record). Undefined: only check the paths.
   */
  claim: { record: GuestState; restore: GuestState | undefined } | undefined;
  /** Files to stage, compile from the stage and commit; undefined when nothing is written. */
  write: { files: Buffer; profile: string | undefined } | undefined;
  /** The parser's job: load into the kernel, validate (compile only), or nothing. */
  parser: "load" | "validate" | "none";
  /** Do not read the parser cache (`-T`): the rules or the mode changed since it was written. */
  skipReadCache: boolean;
  /** The staged load may cache a compile that is not committed yet: drop the cache if the commit fails. */
  dropCacheOnFailure: boolean;
  /** Load in complain mode (`-C`). */
  complain: boolean;
  /** The record once done; undefined: the record stays as it is. */
  next: NextRecord | undefined;
  /** What happened, for the log: "loaded new rules", "unchanged", ... */
  summary: string;
  warnings: Warning[];
}

/** The warning for a `<vah:mode>` request `guest_mode` does not honour. */
export function ignoredModeWarning(config: Pick<TargetConfig, "mode" | "guestMode">, guestMode: GuestMode): Warning {
  return {
    path: "metadata/guest/mode",
    reason: `the domain asks for ${guestMode} mode; not honoured (guest_mode = "${config.guestMode ?? "ignore"}"): the guest runs in ${config.mode} mode`,
  };
}

/** Step two: what to write and load (see the second table). */
export function planSync(built: BuiltGuest, onDisk: OnDisk, settings: SyncSettings, environment: SyncEnvironment): SyncPlan {
  const { state } = onDisk;
  const warnings: Warning[] = [];
  // Never loosen a running guest: only prepare decides that it may run in complain mode.
  const keepEnforce = settings.policy !== "always" && settings.as === "complain" && state?.loadedAs === "enforce";
  if (keepEnforce) {
    warnings.push({ path: "-", reason: `the guest would now be loaded in complain mode; a running guest's mode is never loosened: it stays enforce until its next start` });
  }
  const as: LoadedAs = keepEnforce ? "enforce" : settings.as;
  if (keepEnforce) settings = { ...settings, as, ...(state?.modeFrom !== undefined ? { modeFrom: state.modeFrom } : {}) };

  const refresh = settings.policy === "always" && needsRefresh(state, environment.now);
  const prepared = refresh ? new Date(environment.now).toISOString() : state?.prepared;
  const claim = refresh || !coveredBy(built.holds, state?.holds) ? { record: claimRecord(built, state, prepared, environment.now), restore: state } : undefined;

  const newFiles = Buffer.from(built.filesText, "utf8");
  const filesChanged = onDisk.files === undefined || !onDisk.files.equals(newFiles);
  let newProfile: string | undefined;
  if (onDisk.profile === undefined) {
    if (built.newProfile === undefined) throw new Error(`planSync: ${onDisk.hostProfile} is missing and no profile to create was given`);
    newProfile = built.newProfile;
  } else if (!includesFiles(onDisk.profile, built.uuid)) {
    warnings.push({ path: "-", reason: `${onDisk.hostProfile} does not include <${filesInclude(built.uuid)}>: the generated rules do not apply` });
  }
  const modeChanged = state?.loadedAs !== as;
  const write = filesChanged || newProfile !== undefined;

  let load: boolean;
  if (as === "compile-only") load = false;
  else if (settings.policy === "always" || write || modeChanged) load = true;
  else load = settings.policy === "if-not-loaded" && environment.loadedMode !== as;

  let summary: string;
  if (write) summary = `${load ? "loaded" : "compiled"} ${filesChanged ? "new rules" : "unchanged rules"}${newProfile !== undefined ? ", created profile" : ""}`;
  else if (load) summary = modeChanged ? `reloaded as ${as}` : "loaded unchanged rules";
  else summary = "unchanged";

  const next: NextRecord = {
    version: 1,
    uuid: built.uuid,
    name: built.name,
    profileName: built.profileName,
    ...(newProfile !== undefined
      ? { profileSha256: sha256(newProfile) }
      : state?.profileSha256 !== undefined
        ? { profileSha256: state.profileSha256 }
        : {}),
    // Unchanged rules keep the hash we recorded for them: hashing loads node:crypto (~4 ms), and
    // if someone rewrote the .files to exactly these rules, the old hash only makes release keep it.
    // Only if the record is newer than the .files: a hook killed between renaming a new .files
    // into place and writing its record left a record that describes the previous one.
    filesSha256:
      !filesChanged && state?.filesSha256 !== undefined && !modifiedAfter(onDisk.filesMtimeMs, state.updated) ? state.filesSha256 : sha256(newFiles),
    ...(load || as === "compile-only" ? { loadedAs: as } : state?.loadedAs ? { loadedAs: state.loadedAs } : {}),
    // Where loadedAs came from, when this call (re)loads; else as recorded.
    ...(settings.modeFrom !== undefined && (load || as === "compile-only")
      ? { modeFrom: settings.modeFrom }
      : state?.modeFrom !== undefined
        ? { modeFrom: state.modeFrom }
        : {}),
    // What the guest holds from now on: exactly this profile's paths (the claim made before the
    // load held the union of the old and the new profile's).
    holds: built.holds,
    // The grants this .files was built with; a change of grants alone is written like any other.
    ...(built.grants !== undefined && built.grants.length > 0 ? { grants: [...built.grants] } : {}),
    ...(prepared !== undefined ? { prepared } : {}),
  };

  return {
    claim,
    write: write ? { files: newFiles, profile: newProfile } : undefined,
    parser: load ? "load" : write ? "validate" : "none",
    skipReadCache: load && (write || modeChanged),
    dropCacheOnFailure: load && write,
    complain: as === "complain",
    // A record that would only get a new `updated` is left alone: the atomic write fsyncs twice,
    // which is most of what an unchanged start costs (docs/performance.md).
    next: state === undefined || !sameRecord(state, next) ? next : undefined,
    summary,
    warnings,
  };
}

/** The record while the claim is made: the old one holding the old and the new paths. */
function claimRecord(built: BuiltGuest, state: GuestState | undefined, prepared: string | undefined, now: number): GuestState {
  const base: GuestState = state ?? { version: 1, uuid: built.uuid, name: built.name, profileName: built.profileName, updated: "" };
  return {
    ...base,
    name: built.name,
    holds: unionHolds(state?.holds, built.holds),
    ...(prepared !== undefined ? { prepared } : {}),
    updated: new Date(now).toISOString(),
  };
}

/** Was the `.files` modified after the ISO time `when` (or cannot that be told)? */
function modifiedAfter(mtimeMs: number | undefined, when: string): boolean {
  const written = Date.parse(when);
  return mtimeMs === undefined || !Number.isFinite(written) || mtimeMs > written;
}

/** Same record apart from the time it was written. */
function sameRecord(a: GuestState, b: NextRecord): boolean {
  const keys = (s: object) => Object.keys(s).filter((k) => k !== "updated").sort();
  const ka = keys(a);
  const kb = keys(b);
  const value = (s: object, k: string) => JSON.stringify((s as Record<string, unknown>)[k]);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && value(a, k) === value(b, k));
}

function includesFiles(profile: Buffer, uuid: string): boolean {
  const name = filesInclude(uuid);
  return profile.includes(`<${name}>`) || profile.includes(`"${name}"`);
}
