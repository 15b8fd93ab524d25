/**
 * What uninstall does with the files the hook (not install.sh) made while guests ran: per-guest
 * profiles and `.files`, loaded profiles, staging leftovers, the log and its rotations, libvirt's
 * capabilities-cache entries for the wrapper's emulator paths, parser cache entries. Pure: it
 * decides from facts gathered beforehand (hook-files.ts), so `uninstall --dry-run` prints exactly
 * the steps the real run takes.
 *
 * Removed: what the hook wrote and nobody edited since ("edited": its sha256 no longer matches
 * the one the hook recorded when writing it, store/state.ts). Kept, each with its reason: a profile
 * the admin edited or wrote, the `.files` such a profile includes, a `.files` someone edited.
 * Every guest record goes (with the state directory): a kept file is then simply the admin's,
 * and a reinstall treats it as such (the hook never removes a profile it has no record of).
 */
import type { GuestStatus } from "../store/status.js";
import type { Step } from "./plan.js";

/**
 * One guest the hook has a record of (`<stateDir>/<uuid>.json`), as `status` sees its files
 * (store/status.ts: the one definition of "edited"), and whether it runs and may be loaded.
 */
export type GuestFacts = Pick<GuestStatus, "name" | "uuid" | "profile" | "profilePath" | "filesPath" | "profileOrigin" | "filesExists" | "filesModified"> & {
  /** libvirt says the domain is active (its status XML or a live pid file). */
  running: boolean;
  /** The load target may hold the profile (undefined: there is no load target). */
  mayBeLoaded?: boolean;
};

/** A profile the hook kept at release because an admin edited it (`<stateDir>/kept/<uuid>.json`). */
export interface KeptFacts {
  name: string;
  profilePath: string;
  exists: boolean;
}

export interface LeftoverFacts {
  guests: GuestFacts[];
  kept: KeptFacts[];
  /** Host paths of staging directories the hook left in the profiles directory (interrupted writes). */
  stages: string[];
  /** Parser cache entries of recorded guests outside the default cache directory (which goes whole). */
  cacheEntries: string[];
  /** The hook's log and its rotations (host paths, existing). */
  logs: string[];
  /** libvirt's cached capabilities of the wrapper's emulator paths: host path of the entry, and the emulator path. */
  capsEntries: { path: string; emulator: string }[];
}

/** Guests that are running now, by name. */
export function runningGuests(facts: LeftoverFacts): string[] {
  return facts.guests.filter((g) => g.running).map((g) => g.name);
}

export function planLeftovers(facts: LeftoverFacts): Step[] {
  const steps: Step[] = [];
  const note = (text: string) => steps.push({ do: "note", text });
  for (const g of facts.guests) {
    if (g.running) {
      // Unloading a profile moves the processes in it to unconfined (the kernel replaces it by
      // the namespace's unconfined profile): QEMU keeps the one it runs in until it stops.
      note(`kept ${g.profile} loaded: ${g.name} is running (unloading it would leave its QEMU unconfined); the kernel forgets it at the next reboot`);
    } else if (g.mayBeLoaded) {
      steps.push({ do: "unload", profile: g.profile });
    }
    const profileKept = g.profileOrigin === "admin" || g.profileOrigin === "edited";
    if (g.profileOrigin === "admin") note(`kept ${g.profilePath}: the admin's (it was there before virt-aa-hook saw ${g.name})`);
    else if (g.profileOrigin === "edited") note(`kept ${g.profilePath}: edited since virt-aa-hook wrote it`);
    else if (g.profileOrigin === "pristine") steps.push({ do: "remove", path: g.profilePath });
    if (g.filesExists) {
      if (profileKept) note(`kept ${g.filesPath}: the kept ${g.profilePath} includes it`);
      else if (g.filesModified) note(`kept ${g.filesPath}: edited since virt-aa-hook wrote it`);
      else steps.push({ do: "remove", path: g.filesPath });
    }
  }
  for (const k of facts.kept) {
    if (k.exists) note(`kept ${k.profilePath}: edited by the admin (kept when ${k.name} stopped)`);
  }
  for (const s of facts.stages) steps.push({ do: "remove-tree", paths: [s], said: `remove ${s} (an interrupted profile write)` });
  for (const c of facts.cacheEntries) steps.push({ do: "remove", path: c });
  for (const l of facts.logs) steps.push({ do: "remove", path: l });
  for (const c of facts.capsEntries) {
    steps.push({ do: "remove-tree", paths: [c.path], said: `remove ${c.path} (libvirt's cached capabilities of ${c.emulator})` });
  }
  return steps;
}
