/**
 * The one definition of "edited" (issue 19), used by `status`, `doctor`, `release` and `prune`:
 * a file virt-aa-hook wrote whose sha256 no longer matches the sha256 recorded when writing it.
 *
 * For the per-guest profile the recorded hash lives in the guest's state record while the guest is
 * managed, and in its kept record (state.ts KeptProfile.writtenSha256) once `release` kept the
 * edited profile and dropped the state record. Without either, the profile was never ours (the
 * admin or libvirt's own driver wrote it before we saw the guest): "admin", not "edited".
 */
import { sha256 } from "./guest-files.js";
import type { GuestState, KeptProfile } from "./state.js";

/**
 * pristine: byte-identical to what virt-aa-hook wrote; edited: virt-aa-hook wrote it and it changed
 * since; admin: virt-aa-hook never wrote it; missing: no file.
 */
export type ProfileOrigin = "pristine" | "edited" | "admin" | "missing";

/** The sha256 recorded when virt-aa-hook wrote the guest's profile, if it did. */
export function writtenProfileSha256(state: Pick<GuestState, "profileSha256"> | undefined, kept: Pick<KeptProfile, "writtenSha256"> | undefined): string | undefined {
  return state?.profileSha256 ?? kept?.writtenSha256;
}

/** What the profile on disk is, against the hash recorded when we wrote it. */
export function profileOrigin(profile: Buffer | undefined, written: string | undefined): ProfileOrigin {
  if (profile === undefined) return "missing";
  if (written === undefined) return "admin";
  return sha256(profile) === written ? "pristine" : "edited";
}

/** A generated file (the `.files`) we wrote with hash `written`: edited when present and different. */
export function fileEdited(content: Buffer | undefined, written: string | undefined): boolean {
  return content !== undefined && written !== undefined && sha256(content) !== written;
}

/** Only a pristine profile is ours to delete: an edited or foreign one is the admin's. */
export function ourToRemove(origin: ProfileOrigin): boolean {
  return origin === "pristine";
}
