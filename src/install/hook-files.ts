/**
 * The facts leftovers.ts decides from: what the hook made on this host, read (never changed)
 * through the configured layout.
 */
import fs from "node:fs";
import path from "node:path";
import { isActive } from "../adopted/defined.js";
import { detectEnvironment, profileMode } from "../apparmor/index.js";
import { LOCATION_DEFAULTS, type Layout } from "../layout.js";
import { sha256 } from "../store/guest-files.js";
import { readKept } from "../store/state.js";
import { collectStatus } from "../store/status.js";
import type { LeftoverFacts } from "./leftovers.js";

/**
 * libvirt caches what each emulator binary can do in `<cache>/qemu/capabilities/<sha256 of the
 * binary's path>.xml` (src/util/virfilecache.c virFileCacheGetFileName, under the directory
 * qemu_capabilities.c virQEMUCapsCacheNew makes: cfg->cacheDir + "/capabilities"); the wrapper's
 * paths (attach = "wrapper", /usr/lib/virt-aa-hook/bin/<emulator>) get entries of their own.
 */
export const LIBVIRT_CAPS_CACHE_DIR = "/var/cache/libvirt/qemu/capabilities";

export function capsCacheEntry(emulatorPath: string): string {
  return `${LIBVIRT_CAPS_CACHE_DIR}/${sha256(emulatorPath)}.xml`;
}

/** `wrapperLinks`: the emulator paths install made in the wrapper directory (from the manifest). */
export function gatherLeftovers(layout: Layout, wrapperLinks: readonly string[]): LeftoverFacts {
  const exists = (hostPath: string) => fs.lstatSync(layout.host(hostPath), { throwIfNoEntry: false }) !== undefined;
  const env = detectEnvironment(layout);
  // Undefined: nowhere to unload from. A target that cannot list its profiles may hold it: unload
  // (the parser takes "not loaded" as done).
  const loaded = (profileName: string): boolean | undefined => {
    if (!env.target) return undefined;
    return profileMode(env.target.dir, profileName) !== null;
  };
  // What `status` says of each guest's files: the same definition of "edited".
  const states = collectStatus(layout, () => undefined);
  const guests = states.map((s) => {
    const isLoaded = loaded(s.profile);
    return { ...s, running: isActive(layout, s.name, s.uuid), ...(isLoaded !== undefined ? { mayBeLoaded: isLoaded } : {}) };
  });

  const keptDir = `${layout.stateDir}/kept`;
  const kept = names(layout.host(keptDir))
    .filter((f) => f.endsWith(".json"))
    .flatMap((f) => {
      const k = readKept(layout.host(`${keptDir}/${f}`));
      if (k === undefined) return [];
      const profilePath = layout.profilePath(k.uuid);
      return [{ name: k.name, profilePath, exists: exists(profilePath) }];
    });

  const stages = names(layout.host(layout.profilesDir))
    .filter((n) => n.startsWith(".virt-aa-hook-stage-"))
    .map((n) => `${layout.profilesDir}/${n}`);

  // The default cache directory goes whole (Layout.runtimeDirs); elsewhere only our guests' entries.
  const cacheEntries: string[] = [];
  if (layout.cacheDir !== LOCATION_DEFAULTS.cacheDir) {
    for (const sub of names(layout.host(layout.cacheDir))) {
      for (const s of states) {
        const entry = `${layout.cacheDir}/${sub}/${layout.profileName(s.uuid)}`;
        if (exists(entry)) cacheEntries.push(entry);
      }
    }
  }

  // The log and what logrotate made of it (<log>.1, <log>.2.gz, ...).
  const logs: string[] = [];
  if (layout.logFile !== "") {
    const dir = path.dirname(layout.logFile);
    const base = path.basename(layout.logFile);
    const rotated = (n: string) => n.startsWith(`${base}.`) && /^[0-9]+(?:\.gz)?$/.test(n.slice(base.length + 1));
    for (const n of names(layout.host(dir)).sort()) if (n === base || rotated(n)) logs.push(`${dir}/${n}`);
  }

  const capsEntries = wrapperLinks.map((emulator) => ({ path: capsCacheEntry(emulator), emulator })).filter((c) => exists(c.path));
  return { guests, kept, stages, cacheEntries, logs, capsEntries };
}

function names(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}
