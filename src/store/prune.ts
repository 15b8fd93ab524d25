/**
 * `virt-aa-hook prune`, step one: what to remove (pure). What belongs to no defined domain goes:
 * the profile `libvirt-<uuid>`, its `.files`, our state and kept records, its parser-cache entries,
 * and the loaded profile. Never anything of a domain libvirt defines (its kept profile waits for
 * the next start), never anything a running QEMU uses, never an edited profile (store/edited.ts)
 * or one virt-aa-hook never wrote unless `force`, and never (even with `force`) a guest being started
 * or one whose UUID any file of libvirt's definitions names.
 */
import type { GuestFiles } from "./leftovers.js";
import { recordedName } from "./leftovers.js";

export interface PruneFacts {
  /** Our files of every guest on disk (store/leftovers.ts). */
  guests: readonly GuestFiles[];
  /** UUIDs of the domains libvirt defines. */
  defined: ReadonlySet<string>;
  /**
   * A file under libvirt's definitions directory that names this UUID as text (a definition our
   * scanner cannot read still counts as defined), or undefined.
   */
  namedIn: (uuid: string) => string | undefined;
  /** Files under the definitions directory that cannot be read: they may define any UUID. */
  unreadable: readonly string[];
  /**
   * UUIDs that run or are being started, with why: a live QEMU, a task under the profile, libvirt's
   * status XML, a record inside the hook's prepare window, a held guest lock (doctor/in-use.ts).
   */
  inUse: ReadonlyMap<string, string>;
  force: boolean;
}

/** What goes of one guest's files. */
export interface PruneRemoval {
  profile: boolean;
  files: boolean;
  state: boolean;
  kept: boolean;
}

export type PruneItem =
  | { uuid: string; profileName: string; name: string; action: "remove"; remove: PruneRemoval; edited: boolean }
  | { uuid: string; profileName: string; name: string; action: "keep"; reason: string };

/** One item per UUID that belongs to no defined domain, in UUID order. */
export function planPrune(facts: PruneFacts): PruneItem[] {
  const items: PruneItem[] = [];
  for (const g of facts.guests) {
    // A defined domain's files are never pruned: its profile waits for its next start.
    if (facts.defined.has(g.uuid)) continue;
    const id = { uuid: g.uuid, profileName: g.paths.profileName, name: recordedName(g) };
    // Never anything a guest uses or is being started with, not even with --force (review19 F6).
    const use = facts.inUse.get(g.uuid);
    if (use !== undefined) {
      items.push({ ...id, action: "keep", reason: use });
      continue;
    }
    // What libvirt may define is defined, also with --force (review19 F11).
    const named = facts.namedIn(g.uuid);
    if (named !== undefined) {
      items.push({ ...id, action: "keep", reason: `its UUID appears in ${named}, which libvirt may read as its definition` });
      continue;
    }
    if (facts.unreadable.length > 0) {
      items.push({ ...id, action: "keep", reason: `cannot tell whether libvirt defines it: cannot read ${facts.unreadable.join(", ")}` });
      continue;
    }
    if (!facts.force && g.origin === "edited") {
      items.push({ ...id, action: "keep", reason: `${g.paths.hostProfile} is edited (its sha256 is not what virt-aa-hook wrote): --force removes it` });
      continue;
    }
    if (!facts.force && g.origin === "admin") {
      items.push({ ...id, action: "keep", reason: `${g.paths.hostProfile} was not written by virt-aa-hook: --force removes it` });
      continue;
    }
    items.push({
      ...id,
      action: "remove",
      edited: g.origin === "edited" || g.origin === "admin",
      remove: { profile: g.profile !== undefined, files: g.files !== undefined, state: g.state !== undefined, kept: g.kept !== undefined },
    });
  }
  return items;
}
