import { detectEnvironment, Parser, removeCacheEntries } from "../apparmor/index.js";
import { readIfExists, removeDurably } from "../store/atomic.js";
import { guestPaths, sha256 } from "../store/guest-files.js";
import { withGuestLock } from "../store/lock.js";
import { readState } from "../store/state.js";
import type { HookContext } from "./context.js";
import { identifyGuest } from "./identify.js";
import { recordKept } from "./kept.js";
import { removeStaleStages } from "./sync.js";

/**
 * `release`: the guest is gone. Unload its profile (only now: unloading while QEMU runs would
 * leave QEMU unconfined), remove the `.files`, its cache entries and our record, and remove the
 * per-guest profile only if it is byte-identical to what we created. Every step is attempted
 * even if an earlier one fails; the problems are returned for the log (release never fails).
 */
export async function releaseGuest(ctx: HookContext, xml: Buffer): Promise<{ summary: string; problems: string[] }> {
  const { layout, config } = ctx;
  const id = identifyGuest(ctx, xml);
  if (!id) return { summary: "nothing to release: no valid guest in the XML and no record by that name", problems: [] };
  const paths = guestPaths(layout, id.uuid);
  const env = detectEnvironment(layout, config);
  const problems: string[] = [];
  const done: string[] = [];
  const attempt = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      problems.push(`cannot ${what}: ${(err as Error).message}`);
    }
  };

  await withGuestLock({ lockPath: paths.lock, guest: ctx.guest, timeoutMs: config.lockTimeout * 1000 }, async () => {
    if (env.target) {
      try {
        const r = await new Parser(config.parser, env, config.parserTimeout * 1000).unload(paths.profileName);
        done.push(r === "removed" ? "unloaded" : "was not loaded");
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    const state = readState(paths.state);
    attempt(`remove ${paths.hostFiles}`, () => {
      if (removeDurably(paths.files)) done.push("removed .files");
    });
    attempt(`remove the cache entries of ${paths.profileName}`, () => {
      if (removeCacheEntries(env.cacheDir, paths.profileName).length > 0) done.push("removed cache");
    });
    attempt(`remove ${paths.hostProfile}`, () => {
      const current = readIfExists(paths.profile);
      if (current === undefined) return;
      if (state?.profileSha256 !== undefined && sha256(current) === state.profileSha256) {
        removeDurably(paths.profile);
        done.push("removed profile");
      } else {
        // Whose it is, so that a different domain reusing the UUID cannot inherit it (kept.ts).
        recordKept(paths, id.name, current);
        done.push("kept admin's profile");
      }
    });
    attempt("remove staging leftovers", () => removeStaleStages(paths));
    attempt(`remove ${paths.hostState}`, () => {
      removeDurably(paths.state);
    });
  });
  return { summary: done.join(", ") || "nothing to remove", problems };
}
