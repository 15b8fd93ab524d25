import { profileOwner } from "../attach/ownership.js";
import { guestPaths } from "../store/guest-files.js";
import { readState } from "../store/state.js";
import type { HookContext, Outcome } from "./context.js";
import { identifyGuest } from "./identify.js";
import { releaseIdentified } from "./release.js";

/**
 * For prepare/start/reconnect: when the guest is left to libvirt's AppArmor driver
 * (attach/ownership.ts), the outcome instead of syncing; undefined when the hook owns it. At
 * `prepare`, what we made for it earlier (it was adopted once) is released first, so libvirt's
 * helper finds no profile of ours in its way; later operations touch nothing (the files are
 * libvirt's by then).
 */
export async function leaveToLibvirt(ctx: HookContext, xml: Buffer): Promise<Outcome | undefined> {
  const owner = profileOwner(ctx.layout, ctx.config, xml);
  if (owner.owner === "hook") return undefined;
  if (ctx.op !== "prepare") return { summary: owner.reason, warnings: ctx.warnings };
  const id = identifyGuest(ctx, xml);
  if (!id || readState(guestPaths(ctx.layout, id.uuid).state) === undefined) return { summary: owner.reason, warnings: ctx.warnings };
  const released: HookContext = { ...ctx, warnings: [] };
  const r = await releaseIdentified(released, { ...id, name: ctx.guest }, { keepIfDefined: false });
  // Only in the log: the guest starts all the same, confined by libvirt.
  for (const w of released.warnings) ctx.warnings.push({ ...w, stderr: false });
  return { summary: `${owner.reason}; released what virt-aa-hook had made for it: ${r.summary}`, warnings: ctx.warnings };
}
