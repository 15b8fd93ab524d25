import fs from "node:fs";
import path from "node:path";
import { readIfExists, writeFileAtomic } from "./atomic.js";

/**
 * What we know about a guest we manage, kept in /var/lib/virt-aa-hook/<uuid>.json.
 *
 * Above all it records whether we created the per-guest profile and the hash of what we wrote:
 * `release` removes that profile only while it is still byte-identical, so an admin's edits (or a
 * profile the admin wrote before we ever saw the guest) are never deleted.
 */
export interface GuestState {
  version: 1;
  uuid: string;
  /** Domain name at the last hook call (names can change with `virsh domrename`). */
  name: string;
  profileName: string;
  /** sha256 of the per-guest profile as we created it; absent when the profile was not ours. */
  profileSha256?: string;
  /** sha256 of the `.files` we last wrote. */
  filesSha256?: string;
  /** How the profile was last loaded: "enforce"/"complain", or "compile-only" when no load happened. */
  loadedAs?: "enforce" | "complain" | "compile-only";
  updated: string;
}

const MAX_STATE_BYTES = 64 * 1024;

/** The state at `file` (real path), or undefined when missing or unreadable (we then own nothing). */
export function readState(file: string): GuestState | undefined {
  let buf: Buffer | undefined;
  try {
    buf = readIfExists(file);
  } catch {
    return undefined;
  }
  if (!buf || buf.length > MAX_STATE_BYTES) return undefined;
  try {
    const v = JSON.parse(buf.toString("utf8")) as Partial<GuestState>;
    if (v.version !== 1 || typeof v.uuid !== "string" || typeof v.name !== "string" || typeof v.profileName !== "string") return undefined;
    return v as GuestState;
  } catch {
    return undefined;
  }
}

export function writeState(file: string, state: GuestState): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  writeFileAtomic(file, JSON.stringify(state, null, 2) + "\n", { mode: 0o644 });
}

/** All state records in the state directory (real path), sorted by name. */
export function listStates(stateDir: string): GuestState[] {
  let names: string[];
  try {
    names = fs.readdirSync(stateDir);
  } catch {
    return [];
  }
  const states: GuestState[] = [];
  for (const n of names) {
    if (!n.endsWith(".json") || n.startsWith(".")) continue;
    const s = readState(path.join(stateDir, n));
    if (s) states.push(s);
  }
  return states.sort((a, b) => a.name.localeCompare(b.name) || a.uuid.localeCompare(b.uuid));
}
