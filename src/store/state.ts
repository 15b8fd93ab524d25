import fs from "node:fs";
import path from "node:path";
import { GRANT_BY, type RuntimeGrant } from "../ir.js";
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
  /** Where loadedAs came from: the config's `mode`, or the domain's `<vah:mode>` (store/plan.ts effectiveMode). */
  modeFrom?: "config" | "metadata" | "ignored";
  /**
   * The literal paths this guest's profile grants (hook/exclusive.ts): what the guest holds while
   * it runs. Absent in records written before this field existed (such a guest holds nothing
   * until its next start or reconnect).
   */
  holds?: HeldPath[];
  /**
   * Paths given to the running guest after its start (ir.ts RuntimeGrant): by libvirt's helper
   * call, an admin's `grant` or the network hook. Rendered into the `.files` with the XML's rules
   * at every sync while the record lives; absent when there are none.
   */
  grants?: RuntimeGrant[];
  /** When the guest last claimed its paths at `prepare` (ISO time): the start of its grace window. */
  prepared?: string;
  updated: string;
}

/** One path a guest holds, as the exclusive-write check compares them. */
export interface HeldPath {
  /** Canonical host path. */
  path: string;
  /** The profile lets QEMU write it (`w` or `a`). */
  write: boolean;
  /** Every element asking for it is a disk marked `<shareable/>`. */
  shareable: boolean;
  /** The element(s) asking for it: "disk vda", "disk vdb backing 1". */
  source: string;
  /** The same file under another name: "file:<dev>:<ino>" or "block:<rdev>"; absent if missing. */
  id?: string;
  /**
   * A recursive grant (`{,/**}`, `/**`, `/*`): the directory `path` and everything below it. It
   * clashes with what another guest holds at or below `path` (and a path below another's tree).
   */
  tree?: true;
}

/** Room for a guest's held paths at the per-guest literal budget (hook/limits.ts) plus JSON overhead. */
const MAX_STATE_BYTES = 8 * 1024 * 1024;

/**
 * A JSON record of ours at `file` (real path), as an object whose fields the caller still has to
 * check; undefined when missing, unreadable, oversized or not a JSON object (we then own nothing).
 */
function readRecord<T>(file: string): Partial<T> | undefined {
  let buf: Buffer | undefined;
  try {
    buf = readIfExists(file);
  } catch {
    return undefined;
  }
  if (!buf || buf.length > MAX_STATE_BYTES) return undefined;
  try {
    const v: unknown = JSON.parse(buf.toString("utf8"));
    return typeof v === "object" && v !== null ? (v as Partial<T>) : undefined;
  } catch {
    return undefined;
  }
}

/** The state at `file` (real path), or undefined when missing or unreadable (we then own nothing). */
export function readState(file: string): GuestState | undefined {
  const v = readRecord<GuestState>(file);
  if (v === undefined) return undefined;
  if (v.version !== 1 || typeof v.uuid !== "string" || typeof v.name !== "string" || typeof v.profileName !== "string") return undefined;
  // Held paths we cannot read are dropped rather than the whole record: the record also says
  // which profile is ours, and losing that would make release keep a profile we created.
  if (v.holds !== undefined && !(Array.isArray(v.holds) && v.holds.every(isHeldPath))) delete v.holds;
  if (v.prepared !== undefined && typeof v.prepared !== "string") delete v.prepared;
  if (v.modeFrom !== undefined && v.modeFrom !== "config" && v.modeFrom !== "metadata" && v.modeFrom !== "ignored") delete v.modeFrom;
  // A grant we cannot read is dropped on its own: it is not rendered, so it grants nothing.
  if (v.grants !== undefined) {
    const grants = Array.isArray(v.grants) ? v.grants.filter(isRuntimeGrant) : [];
    if (grants.length > 0) v.grants = grants;
    else delete v.grants;
  }
  return v as GuestState;
}

function isHeldPath(h: unknown): h is HeldPath {
  if (typeof h !== "object" || h === null) return false;
  const o = h as Record<string, unknown>;
  return (
    typeof o.path === "string" &&
    typeof o.write === "boolean" &&
    typeof o.shareable === "boolean" &&
    typeof o.source === "string" &&
    (o.id === undefined || typeof o.id === "string") &&
    (o.tree === undefined || o.tree === true)
  );
}

export function isRuntimeGrant(g: unknown): g is RuntimeGrant {
  if (typeof g !== "object" || g === null) return false;
  const o = g as Record<string, unknown>;
  return (
    typeof o.path === "string" &&
    o.path.startsWith("/") &&
    typeof o.write === "boolean" &&
    typeof o.by === "string" &&
    (GRANT_BY as readonly string[]).includes(o.by) &&
    typeof o.source === "string" &&
    (o.port === undefined || typeof o.port === "string")
  );
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

/**
 * Written at `release` when the guest's per-guest profile is kept (the admin edited it, or wrote
 * it before we saw the guest), in `<stateDir>/kept/<uuid>.json`: whose profile it is. A different
 * domain that reuses the UUID is refused instead of silently inheriting the admin's rules.
 */
export interface KeptProfile {
  version: 1;
  uuid: string;
  /** Name of the guest the profile was kept for. */
  name: string;
  /** sha256 of the profile as it was kept. */
  profileSha256: string;
  /**
   * sha256 recorded when virt-aa-hook wrote the profile (the state record's profileSha256 at
   * release), so the profile stays "edited" (store/edited.ts) after the record is gone; absent in
   * records of older versions and for profiles virt-aa-hook never wrote.
   */
  writtenSha256?: string;
  kept: string;
}

export function readKept(file: string): KeptProfile | undefined {
  const v = readRecord<KeptProfile>(file);
  if (v === undefined) return undefined;
  if (v.version !== 1 || typeof v.uuid !== "string" || typeof v.name !== "string" || typeof v.profileSha256 !== "string") return undefined;
  if (v.writtenSha256 !== undefined && typeof v.writtenSha256 !== "string") delete v.writtenSha256;
  return v as KeptProfile;
}

export function writeKept(file: string, kept: KeptProfile): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  writeFileAtomic(file, JSON.stringify(kept, null, 2) + "\n", { mode: 0o644 });
}
