import { profileFlags } from "../render/profile.js";
import type { ProfileOrigin } from "./edited.js";
import { readGuestFiles, recordedName, type GuestFiles } from "./leftovers.js";
import { listStates } from "./state.js";
import type { Layout } from "../layout.js";

/** One guest as `virt-aa-hook status` reports it. */
export interface GuestStatus {
  name: string;
  uuid: string;
  profile: string;
  /** Host paths and whether they exist. */
  profilePath: string;
  profileExists: boolean;
  filesPath: string;
  filesExists: boolean;
  /** store/edited.ts: pristine, edited (we wrote it, it changed since), admin (never ours), missing. */
  profileOrigin: ProfileOrigin;
  /** `.files` differs from what we last wrote (someone edited our generated file). */
  filesModified: boolean;
  /** The profile's own header says `flags=(complain)`: the kernel only logs, whatever we load it as. */
  profileComplain: boolean;
  /** "enforce"/"complain"/... from the kernel, "not loaded", or "unknown" when the kernel cannot say. */
  loaded: string;
  /** How we last loaded it ("enforce", "complain", "compile-only"), if we did. */
  loadedAs?: string;
  /** Where loadedAs came from: the config's `mode` or the domain's `<vah:mode>`; absent in older records. */
  modeFrom?: "config" | "metadata" | "ignored";
  /** When the record was last written (the kept record's time for a guest without one). */
  updated: string;
}

/**
 * Status of every guest we have a record of. `loadedMode` asks the load target (see
 * Parser.loadedMode): mode, null for not loaded, undefined for unknown.
 */
export function collectStatus(layout: Layout, loadedMode: (profile: string) => string | null | undefined): GuestStatus[] {
  return listStates(layout.host(layout.stateDir)).map((s) => guestStatus(readGuestFiles(layout, s.uuid), loadedMode));
}

/** The status of one guest's files (with or without a record). */
export function guestStatus(g: GuestFiles, loadedMode: (profile: string) => string | null | undefined): GuestStatus {
  const { paths, state: s } = g;
  const mode = loadedMode(paths.profileName);
  return {
    name: recordedName(g),
    uuid: g.uuid,
    profile: paths.profileName,
    profilePath: paths.hostProfile,
    profileExists: g.profile !== undefined,
    filesPath: paths.hostFiles,
    filesExists: g.files !== undefined,
    profileOrigin: g.origin,
    filesModified: g.filesEdited,
    profileComplain: g.profile !== undefined && profileFlags(g.profile.toString("utf8"), paths.profileName).includes("complain"),
    loaded: mode === undefined ? "unknown" : mode === null ? "not loaded" : mode,
    ...(s?.loadedAs ? { loadedAs: s.loadedAs } : {}),
    ...(s?.modeFrom ? { modeFrom: s.modeFrom } : {}),
    updated: s?.updated ?? g.kept?.kept ?? "-",
  };
}

/** Human-readable table, one guest per line. */
export function formatStatus(rows: GuestStatus[]): string {
  if (rows.length === 0) return "no guests managed by virt-aa-hook\n";
  const header = ["GUEST", "PROFILE", "LOADED", "AS", "PROFILE FILE", ".FILES"];
  const body = rows.map((r) => [
    r.name,
    r.profile,
    r.loaded,
    r.loadedAs ?? "-",
    r.profileOrigin,
    r.filesExists ? (r.filesModified ? "modified" : "ok") : "missing",
  ].map((c) => JSON.stringify(c).slice(1, -1)));
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ") + "\n";
  return line(header) + body.map(line).join("");
}
