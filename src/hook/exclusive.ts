import fs from "node:fs";
import type { Domain } from "../domain/model.js";
import { GuestError } from "../errors.js";
import type { Layout } from "../layout.js";
import { isWritablePerms, type Rule } from "../ir.js";
import { listStates, type GuestState, type HeldPath } from "../store/state.js";
import { runningPid } from "../host/qemu-process.js";
import { isUnder, RECURSIVE_SUFFIXES } from "../policy/restricted.js";
import { runtimeOwnership } from "../rules/ownership.js";
import type { QemuConf } from "../host/qemu-conf.js";

/**
 * Exclusive write access across guests: the nearest AppArmor gets to sVirt's per-guest categories.
 *
 * Every guest's state record lists the literal paths its profile grants (`holds`). A path that one
 * running guest may write is not granted to a second guest at all (not even to read: reading a disk
 * another guest writes hands its data over), and a path one running guest reads is not granted
 * writable to another, unless both disks carry `<shareable/>`. Paths both guests only read are
 * fine (an ISO, a shared backing file).
 *
 * What is compared: rules on one literal path (no glob suffix) that do not name a character
 * device, socket, FIFO or directory: the shared multiplexers (/dev/kvm, /dev/net/tun,
 * /dev/vfio/vfio, a render node) are meant for every guest; recursive directory grants are
 * compared as trees (heldPaths). A file that exists is also compared by identity (device and
 * inode; a block device by its device number), so a hard link or a second device node for the
 * same disk is the same path.
 */

/**
 * A record counts as running while its QEMU runs (`/run/libvirt/qemu/<name>.pid` names a live
 * process) or, before QEMU has written that pid, for this long after its `prepare`. A record
 * older than that without a live QEMU is stale (host reboot, libvirtd killed before `release`)
 * and holds nothing.
 */
export const PREPARE_GRACE_MS = 5 * 60 * 1000;

/**
 * The paths these final rules grant that another running guest must not also hold.
 *
 * Recursive grants (a `<vah:allow tree="yes">`, a 9p share, a `dir` disk; not the guest's own
 * per-guest runtime directories (rules/ownership.ts ownTrees), which no other guest may name) are held as
 * trees: a tree clashes with every path another guest holds at or below it, and a path with every
 * tree of another guest above it, by the same rule as two paths (one of them written, not both
 * shareable). Compared by path only: a hard link into a tree from outside it is not recognised.
 */
export function heldPaths(layout: Layout, domain: Domain, rules: readonly Rule[], qemu: QemuConf): HeldPath[] {
  const shareable = domain.devices.disks.flatMap((d, i) => (d.shareable ? [`disk ${d.target ?? i}`] : []));
  const fromShareableDisk = (source: string) => shareable.some((d) => source === d || source.startsWith(`${d} `));
  const out: HeldPath[] = [];
  // Only the guest's own per-guest directories are exempt (the policy keeps every other guest out
  // of them, policy/provenance.ts class 4), never a tree merely below a managed root: should the
  // policy ever let one through (libvirt's shared NVRAM directory did), it is still exclusive.
  const ownTrees = runtimeOwnership(domain, layout, qemu).ownTrees;
  for (const r of rules) {
    if (RECURSIVE_SUFFIXES.has(r.suffix)) {
      if (ownTrees.some((own) => isUnder(r.path, own))) continue;
      out.push({ path: r.path, write: isWritablePerms(r.perms), shareable: r.source.split(", ").every(fromShareableDisk), source: r.source, tree: true });
      continue;
    }
    if (r.suffix !== "") continue;
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(layout.host(r.path), { throwIfNoEntry: false });
    } catch {
      st = undefined; // EACCES, ENOTDIR...: compared by path only
    }
    if (st && (st.isCharacterDevice() || st.isSocket() || st.isFIFO() || st.isDirectory())) continue;
    const id = st === undefined ? undefined : st.isBlockDevice() ? `block:${st.rdev}` : st.isFile() ? `file:${st.dev}:${st.ino}` : undefined;
    out.push({
      path: r.path,
      write: isWritablePerms(r.perms),
      shareable: r.source.split(", ").every(fromShareableDisk),
      source: r.source,
      ...(id !== undefined ? { id } : {}),
    });
  }
  return out;
}

export type HolderStatus = "running" | "starting" | "stale";

/** Whether another guest's record still holds its paths (see PREPARE_GRACE_MS). */
export function holderStatus(layout: Layout, s: GuestState, now: number): HolderStatus {
  // No live pid: QEMU has not started yet, or is gone.
  if (runningPid(layout, s.name) !== undefined) return "running";
  const prepared = s.prepared === undefined ? NaN : Date.parse(s.prepared);
  // A time in the future (clock set back) counts as just prepared, still bounded by the grace.
  if (Number.isFinite(prepared) && now - prepared < PREPARE_GRACE_MS && prepared - now < PREPARE_GRACE_MS) return "starting";
  return "stale";
}

export interface Conflict {
  mine: HeldPath;
  other: GuestState;
  theirs: HeldPath;
}

function clash(a: HeldPath, b: HeldPath): boolean {
  if (!a.write && !b.write) return false;
  if (a.shareable && b.shareable) return false;
  if (a.tree || b.tree) return (a.tree === true && isUnder(b.path, a.path)) || (b.tree === true && isUnder(a.path, b.path));
  return a.path === b.path || (a.id !== undefined && a.id === b.id);
}

/**
 * The first of `mine` that a running (or starting) other guest holds in a way that excludes it.
 * Stale records that would have clashed are reported through `ignored`, so the log says why a
 * path was granted anyway.
 */
export function findConflict(
  layout: Layout,
  uuid: string,
  mine: readonly HeldPath[],
  now: number,
  ignored: (other: GuestState, path: string) => void,
): Conflict | undefined {
  if (mine.length === 0) return undefined;
  const byPath = new Map<string, HeldPath>();
  const byId = new Map<string, HeldPath>();
  const myTrees = mine.filter((h) => h.tree);
  for (const h of mine) {
    if (h.tree) continue;
    byPath.set(h.path, h);
    if (h.id !== undefined) byId.set(h.id, h);
  }
  for (const other of listStates(layout.host(layout.stateDir))) {
    if (other.uuid === uuid || !other.holds || other.holds.length === 0) continue;
    let status: HolderStatus | undefined;
    for (const theirs of other.holds) {
      const samePath = theirs.tree ? undefined : byPath.get(theirs.path);
      const sameFile = theirs.id !== undefined && !theirs.tree ? byId.get(theirs.id) : undefined;
      // A tree of theirs against every path of mine; a path of theirs against my trees.
      const candidates = theirs.tree ? mine : sameFile === samePath ? [samePath, ...myTrees] : [samePath, sameFile, ...myTrees];
      for (const m of candidates) {
        if (m === undefined || !clash(m, theirs)) continue;
        status ??= holderStatus(layout, other, now);
        if (status === "stale") {
          ignored(other, theirs.path);
          continue;
        }
        return { mine: m, other, theirs };
      }
    }
  }
  return undefined;
}

/** The one-line refusal for a conflict. */
export function conflictError(guest: string, c: Conflict): GuestError {
  const how = c.theirs.write ? "written" : "read";
  const other = `running guest ${c.other.name} (${c.other.uuid})`;
  let reason: string;
  if (c.theirs.tree) {
    reason = `inside ${c.theirs.path}, a directory tree ${c.theirs.write ? "written" : "read"} by ${other} (${c.theirs.source}); a tree is exclusive like a disk: name paths outside it`;
  } else if (c.mine.tree) {
    reason = `the tree holds ${c.theirs.path}, ${how} by ${other} (${c.theirs.source}); a tree is exclusive like a disk: name a directory of this guest's own`;
  } else {
    const alias = c.theirs.path === c.mine.path ? "" : ` as ${c.theirs.path}`;
    reason = `${how} by ${other}${alias}; mark both disks <shareable/> to share it`;
  }
  return new GuestError(guest, c.mine.path, `${c.mine.source}: ${reason}`);
}
