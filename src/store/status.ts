import { readIfExists } from "./atomic.js";
import { guestPaths, sha256 } from "./guest-files.js";
import { listStates } from "./state.js";
import type { Layout } from "../layout.js";

/** One managed guest as `virt-aa-hook status` reports it. */
export interface GuestStatus {
  name: string;
  uuid: string;
  profile: string;
  /** Host paths and whether they exist. */
  profilePath: string;
  profileExists: boolean;
  filesPath: string;
  filesExists: boolean;
  /**
   * pristine: byte-identical to what we created; modified: we created it and the admin edited it;
   * admin: it existed before we saw the guest (never ours); missing.
   */
  profileOrigin: "pristine" | "modified" | "admin" | "missing";
  /** `.files` differs from what we last wrote (someone edited our generated file). */
  filesModified: boolean;
  /** "enforce"/"complain"/... from the kernel, "not loaded", or "unknown" when the kernel cannot say. */
  loaded: string;
  /** How we last loaded it ("enforce", "complain", "compile-only"), if we did. */
  loadedAs?: string;
  /** Where loadedAs came from: the config's `mode` or the domain's `<vah:mode>`; absent in older records. */
  modeFrom?: "config" | "metadata" | "ignored";
  updated: string;
}

/**
 * Status of every guest we have a record of. `loadedMode` asks the load target (see
 * Parser.loadedMode): mode, null for not loaded, undefined for unknown.
 */
export function collectStatus(layout: Layout, loadedMode: (profile: string) => string | null | undefined): GuestStatus[] {
  return listStates(layout.host(layout.stateDir)).map((s) => {
    const p = guestPaths(layout, s.uuid);
    const profile = readIfExists(p.profile);
    const files = readIfExists(p.files);
    let origin: GuestStatus["profileOrigin"];
    if (profile === undefined) origin = "missing";
    else if (s.profileSha256 === undefined) origin = "admin";
    else origin = sha256(profile) === s.profileSha256 ? "pristine" : "modified";
    const mode = loadedMode(p.profileName);
    return {
      name: s.name,
      uuid: s.uuid,
      profile: p.profileName,
      profilePath: p.hostProfile,
      profileExists: profile !== undefined,
      filesPath: p.hostFiles,
      filesExists: files !== undefined,
      profileOrigin: origin,
      filesModified: files !== undefined && s.filesSha256 !== undefined && sha256(files) !== s.filesSha256,
      loaded: mode === undefined ? "unknown" : mode === null ? "not loaded" : mode,
      ...(s.loadedAs ? { loadedAs: s.loadedAs } : {}),
      ...(s.modeFrom ? { modeFrom: s.modeFrom } : {}),
      updated: s.updated,
    };
  });
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
