/**
 * Every guest virt-aa-hook has files for, found on disk (`status --all`, `prune`): a
 * `libvirt-<uuid>` profile or `.files` in the profiles directory, a state record or a kept record.
 * Where each stands is decided against the domains libvirt defines and runs, which the caller
 * reads (adopted/defined.ts, doctor/confinement.ts: the edges); this module only reads our files.
 */
import fs from "node:fs";
import { isCanonicalUuid } from "../names.js";
import type { Layout } from "../layout.js";
import { readIfExists } from "./atomic.js";
import { fileEdited, profileOrigin, writtenProfileSha256, type ProfileOrigin } from "./edited.js";
import { guestPaths, type GuestPaths } from "./guest-files.js";
import { readKept, readState, type GuestState, type KeptProfile } from "./state.js";

export interface GuestFiles {
  uuid: string;
  paths: GuestPaths;
  profile: Buffer | undefined;
  files: Buffer | undefined;
  state: GuestState | undefined;
  kept: KeptProfile | undefined;
  origin: ProfileOrigin;
  filesEdited: boolean;
}

/**
 * managed: we hold a record and its domain is defined or running; kept: no record (released), the
 * domain is still defined: the admin's edited profile waits for its next start; orphaned: its UUID
 * belongs to no defined domain and nothing runs with it; running: no record of ours, but a guest
 * with this UUID runs (its profile is libvirt's own driver's, or left by a crash): never touched.
 */
export type Standing = "managed" | "kept" | "orphaned" | "running";

const PROFILE_FILE = /^libvirt-([0-9a-f-]{36})(\.files)?$/;

/** UUIDs with a profile, `.files`, state or kept record of ours, sorted. */
export function guestUuidsOnDisk(layout: Layout): string[] {
  const uuids = new Set<string>();
  const scan = (dir: string, pattern: RegExp) => {
    let names: string[];
    try {
      names = fs.readdirSync(layout.host(dir));
    } catch {
      return;
    }
    for (const n of names) {
      const m = pattern.exec(n);
      if (m && isCanonicalUuid(m[1]!)) uuids.add(m[1]!);
    }
  };
  scan(layout.profilesDir, PROFILE_FILE);
  scan(layout.stateDir, /^([0-9a-f-]{36})\.json$/);
  scan(`${layout.stateDir}/kept`, /^([0-9a-f-]{36})\.json$/);
  return [...uuids].sort();
}

/** One guest's files as they are now, with "edited" decided the one way (store/edited.ts). */
export function readGuestFiles(layout: Layout, uuid: string): GuestFiles {
  const paths = guestPaths(layout, uuid);
  const profile = readIfExists(paths.profile);
  const files = readIfExists(paths.files);
  const state = readState(paths.state);
  const kept = readKept(paths.kept);
  return {
    uuid,
    paths,
    profile,
    files,
    state,
    kept,
    origin: profileOrigin(profile, writtenProfileSha256(state, kept)),
    filesEdited: fileEdited(files, state?.filesSha256),
  };
}

/** Where a guest's files stand (with or without our state record), given the UUIDs libvirt defines and runs. */
export function standing(uuid: string, hasRecord: boolean, defined: ReadonlySet<string>, running: ReadonlySet<string>): Standing {
  if (running.has(uuid)) return hasRecord ? "managed" : "running";
  if (defined.has(uuid)) return hasRecord ? "managed" : "kept";
  return "orphaned";
}

/** The guest's name as our records know it, else "-". */
export function recordedName(g: Pick<GuestFiles, "state" | "kept">): string {
  return g.state?.name ?? g.kept?.name ?? "-";
}
