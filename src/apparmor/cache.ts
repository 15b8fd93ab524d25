import fs from "node:fs";
import path from "node:path";

/** The compiled-policy store's removal, for `prune` (the store is not the parser's cache: compiled-store.ts). */
export { removeStoreEntries } from "./compiled-store.js";

/**
 * Remove a profile's compiled entries from the parser cache. The parser keeps one subdirectory
 * per feature set (`<cache>/<hash>.0/`), names the entry after the profile, and may leave
 * `<profile>-XXXXXX` temporaries when it is interrupted. Returns the real paths removed.
 */
export function removeCacheEntries(cacheDir: string, profileName: string): string[] {
  const removed: string[] = [];
  let subdirs: string[];
  try {
    subdirs = fs.readdirSync(cacheDir);
  } catch {
    return removed;
  }
  const temp = new RegExp(`^${escapeRegExp(profileName)}-[A-Za-z0-9]{6}$`);
  for (const sub of subdirs) {
    const dir = path.join(cacheDir, sub);
    if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) continue;
    for (const entry of fs.readdirSync(dir)) {
      if (entry === profileName || temp.test(entry)) {
        fs.rmSync(path.join(dir, entry), { force: true });
        removed.push(path.join(dir, entry));
      }
    }
  }
  return removed;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
