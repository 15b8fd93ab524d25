import { GuestError } from "../errors.js";
import { removeDurably } from "../store/atomic.js";
import { profileOrigin } from "../store/edited.js";
import { sha256, type GuestPaths } from "../store/guest-files.js";
import { readKept, writeKept, type GuestState } from "../store/state.js";
import type { HookContext } from "./context.js";

/**
 * A per-guest profile kept at `release` (the admin edited it, or wrote it before we saw the guest)
 * belongs to that guest: a different domain (another name) reusing the UUID would otherwise
 * silently run under the admin's rules for the old guest. Refused with the file to remove or
 * rename. A kept record whose profile is gone is dropped: there is nothing left to inherit.
 *
 * The same applies while our state record still names another guest and the profile is not the
 * one we created (a record left by a host that went down before `release`).
 */
export function checkKeptOwner(ctx: HookContext, paths: GuestPaths, name: string, state: GuestState | undefined, profile: Buffer | undefined): void {
  const kept = readKept(paths.kept);
  if (profile === undefined) {
    if (kept !== undefined) {
      removeDurably(paths.kept);
      ctx.warnings.push({ path: "-", reason: `${paths.hostProfile} is gone: dropped ${paths.hostKept}`, level: "info" });
    }
    return;
  }
  let owner: string | undefined;
  if (kept !== undefined && kept.name !== name) owner = kept.name;
  else if (state !== undefined && state.name !== name && profileOrigin(profile, state.profileSha256) !== "pristine") owner = state.name;
  if (owner === undefined) return;
  throw new GuestError(
    name,
    paths.hostProfile,
    `kept from guest ${owner} (${paths.uuid}), a different domain with this UUID: remove or rename ${paths.hostProfile} to give ${name} a new profile` +
      (kept !== undefined ? ` (if ${name} is ${owner} renamed, remove ${paths.hostKept} instead)` : ""),
  );
}

/**
 * At `release`, when the profile is kept: record whose it is, and the hash recorded when we wrote
 * it (`written`, absent when we never did) so that it stays "edited" without the state record.
 */
export function recordKept(paths: GuestPaths, name: string, profile: Buffer, written: string | undefined): void {
  writeKept(paths.kept, {
    version: 1,
    uuid: paths.uuid,
    name,
    profileSha256: sha256(profile),
    ...(written !== undefined ? { writtenSha256: written } : {}),
    kept: new Date().toISOString(),
  });
}
