import { definedDomain, definedWithOurLabel } from "../adopted/defined.js";
import { detectEnvironment, Parser, removeCacheEntries } from "../apparmor/index.js";
import { profileOwner } from "../attach/ownership.js";
import { errorReason } from "../errors.js";
import { removeStaleStages } from "../store/apply.js";
import { readIfExists, removeDurably } from "../store/atomic.js";
import { profileOrigin, ourToRemove, writtenProfileSha256 } from "../store/edited.js";
import { guestPaths } from "../store/guest-files.js";
import { withGuestLock } from "../store/lock.js";
import { readKept, readState } from "../store/state.js";
import type { HookContext, Outcome } from "./context.js";
import { identifyGuest } from "./identify.js";
import { recordKept } from "./kept.js";

/**
 * `release`: the guest is gone. Unload its profile (only now: unloading while QEMU runs would
 * leave QEMU unconfined), remove the `.files`, its cache entries and our record, and remove the
 * per-guest profile only if it is not edited (store/edited.ts: byte-identical to what we created). Every step is attempted
 * even if an earlier one fails; the problems become warnings (release never fails).
 *
 * Two exceptions:
 * - the domain is still defined (`/etc/libvirt/qemu/<name>.xml`, same UUID) with our static label
 *   `libvirt-<uuid>`: libvirt's AppArmor driver checks that this profile is loaded whenever it
 *   parses the domain (libvirtd restart, define, edit), and drops or refuses the domain when it is
 *   not. Profile, `.files`, record and loaded profile stay; `virt-aa-hook load-adopted` loads them
 *   at boot and removes them once the domain is no longer defined (docs/attach-modes.md).
 * - we have no record of the guest and it is left to libvirt's own AppArmor driver
 *   (attach/ownership.ts): the files are libvirt's, nothing is touched.
 */
export async function releaseGuest(ctx: HookContext, xml: Buffer): Promise<Outcome> {
  const id = identifyGuest(ctx, xml);
  if (!id) return { summary: "nothing to release: no valid guest in the XML and no record by that name", warnings: ctx.warnings };
  const paths = guestPaths(ctx.layout, id.uuid);
  if (readState(paths.state) === undefined) {
    const owner = profileOwner(ctx.layout, ctx.config, xml);
    if (owner.owner === "libvirt") return { summary: `nothing to release: ${owner.reason}`, warnings: ctx.warnings };
  }
  return releaseIdentified(ctx, { ...id, name: ctx.guest }, { keepIfDefined: true, xml });
}

/**
 * Release the guest with this UUID when only the UUID is known (virt-aa-helper `-D -u
 * libvirt-<uuid>`): named after our record of it (else `ctx.guest`), then as releaseIdentified,
 * a guest still defined with our static label kept loaded. Every runtime grant goes with the record.
 */
export async function releaseByUuid(ctx: HookContext, uuid: string): Promise<Outcome> {
  const name = readState(guestPaths(ctx.layout, uuid).state)?.name ?? ctx.guest;
  return releaseIdentified(ctx, { uuid, name }, { keepIfDefined: true });
}

/**
 * Release the guest `id` (name as libvirt knows it). With keepIfDefined, a guest defined with our
 * static label keeps its loaded profile and files (see releaseGuest); `xml` is the XML libvirt
 * gave the hook, used to make sure of them.
 */
export async function releaseIdentified(
  ctx: HookContext,
  id: { uuid: string; name: string },
  opts: { keepIfDefined: boolean; xml?: Buffer },
): Promise<Outcome> {
  if (opts.keepIfDefined && definedWithOurLabel(ctx.layout, id.name, id.uuid)) return keepLoaded(ctx, id, opts.xml);
  const { layout, config } = ctx;
  const paths = guestPaths(layout, id.uuid);
  const env = detectEnvironment(layout);
  const done: string[] = [];
  // Said on stderr too: libvirtd logs it with the guest, whose files may need the admin.
  const problem = (reason: string) => ctx.warnings.push({ path: "-", reason, stderr: true });
  const attempt = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      problem(`cannot ${what}: ${(err as Error).message}`);
    }
  };

  await withGuestLock({ lockPath: paths.lock, guest: ctx.guest, timeoutMs: config.lockTimeout * 1000 }, async () => {
    if (env.target) {
      try {
        const r = await new Parser(layout.parser, env, config.parserTimeout * 1000).unload(paths.profileName);
        done.push(r === "removed" ? "unloaded" : "was not loaded");
      } catch (err) {
        problem((err as Error).message);
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
      // "Edited" as status, doctor and prune say it (store/edited.ts): the hash recorded at writing
      // comes from the record, or from the kept record of an earlier release of this guest.
      const written = writtenProfileSha256(state, readKept(paths.kept));
      const origin = profileOrigin(current, written);
      if (ourToRemove(origin)) {
        removeDurably(paths.profile);
        removeDurably(paths.kept);
        done.push("removed profile");
      } else {
        // Whose it is, so that a different domain reusing the UUID cannot inherit it (kept.ts).
        recordKept(paths, id.name, current, written);
        done.push(origin === "edited" ? "kept edited profile" : "kept admin's profile");
      }
    });
    attempt("remove staging leftovers", () => removeStaleStages(paths));
    attempt(`remove ${paths.hostState}`, () => {
      removeDurably(paths.state);
    });
  });
  return { summary: done.join(", ") || "nothing to remove", warnings: ctx.warnings };
}

/**
 * Keep a defined adopted guest's profile loaded: make sure of it as `reconnect` does (rewrite and
 * reload only if the rules changed or the kernel lacks it). Usually nothing happens; but a guest
 * adopted while it ran under a dynamic label had its files removed by libvirt's own driver when it
 * stopped (just before this hook), and they are made again here.
 */
async function keepLoaded(ctx: HookContext, id: { uuid: string; name: string }, xml: Buffer | undefined): Promise<Outcome> {
  const kept = `kept ${ctx.layout.profileName(id.uuid)} loaded: /etc/libvirt/qemu/${id.name}.xml defines the domain with that static label`;
  if (ctx.config.mode === "off") return { summary: kept, warnings: ctx.warnings };
  const defined = definedDomain(ctx.layout, id.name);
  const source = xml !== undefined && xml.length > 0 ? xml : Buffer.from(defined?.xml ?? "", "utf8");
  try {
    // The sync operation itself (what reconnect does), loaded only for this rare case.
    const { syncProfile } = await import("./sync.js");
    const r = await syncProfile(ctx, source, "if-not-loaded");
    return { summary: `${kept} (${r.summary})`, warnings: ctx.warnings };
  } catch (err) {
    ctx.warnings.push({ path: "-", reason: `cannot make sure ${ctx.layout.profileName(id.uuid)} stays loaded: ${errorReason(err)}`, stderr: true });
    return { summary: kept, warnings: ctx.warnings };
  }
}
