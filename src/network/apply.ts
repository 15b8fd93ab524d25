/**
 * Applying a network port's grants to a running guest's profile without its domain XML: the
 * network hook gets only the network's and the port's XML, and must never ask libvirt (a hook
 * that calls libvirt deadlocks). So the guest's current `.files` (what its last sync built from
 * the XML and its grants) is the base:
 *
 * - port-created: the port's grant (`/dev/vhost-net`, see hook.ts) is judged by the policy,
 *   recorded as a `by: "network"` grant of that port, and its rule line appended to the `.files`;
 * - port-deleted: the port's grants leave the record, and the exact lines appended for them leave
 *   the `.files` (a line a later full sync merged with an XML rule stays until the next full sync,
 *   which renders from the XML and the record, where the grant is gone).
 *
 * The helper's refused regeneration (src/helper/operations.ts) uses the same edit with `drop` to take
 * libvirt's `-F` grants out when it has no XML it may build from.
 *
 * Then the same planner and applier as every sync (store/plan.ts, store/apply.ts): staged
 * compile, load, atomic commit and record, under the guest's lock. A network grant names a
 * character device, which no guest holds exclusively (hook/exclusive.ts), so the record's held
 * paths stay as they are and nothing new is claimed.
 */
import fs from "node:fs";
import { compiledStoreUse, detectEnvironment, Parser } from "../apparmor/index.js";
import { qemuConfOf, type HookContext } from "../hook/context.js";
import { applyGrantChange, profileCompiler, type GrantChange } from "../hook/sync.js";
import { HostFs } from "../hostfs.js";
import { noRuntimeOwnership, type RuntimeGrant } from "../ir.js";
import { qemuConfManagedRoots } from "../host/qemu-conf.js";
import { grantRules } from "../pipeline.js";
import { applyPolicy } from "../policy/index.js";
import { renderRule } from "../render/files.js";
import { parseGranted, permsFor } from "../render/granted.js";
import { applySync, readOnDisk, recoverInterrupted } from "../store/apply.js";
import { guestPaths, hostLockPath } from "../store/guest-files.js";
import { withGuestLock } from "../store/lock.js";
import { planSync, planTarget } from "../store/plan.js";

/** What a grant edit did (for the log), or why nothing was done. */
export type GrantEditOutcome = { done: string } | { nothing: string };

/** The rule line the network hook appends for `g` (policy-checked first). */
function grantLine(ctx: HookContext, g: RuntimeGrant): string {
  const [rule] = applyPolicy(new HostFs(ctx.layout), grantRules([g]), noRuntimeOwnership(ctx.layout, qemuConfManagedRoots(qemuConfOf(ctx), ctx.layout)), qemuConfOf(ctx));
  return renderRule(rule!);
}

/**
 * Change guest `uuid`'s grants without its XML: `add` (only those its `.files` does not grant
 * already), or drop the grants of `dropPort` (or those `drop` matches). Nothing happens for a
 * guest without a record of ours or a `.files`, or with mode off / AppArmor off and no_apparmor =
 * skip or fail.
 */
export async function changeGrantsWithoutXml(
  ctx: HookContext,
  uuid: string,
  change: { add?: RuntimeGrant[]; dropPort?: string; drop?: (g: RuntimeGrant) => boolean },
): Promise<GrantEditOutcome> {
  const { layout, config } = ctx;
  if (config.mode === "off") return { nothing: "mode off" };
  const paths = guestPaths(layout, uuid);
  if (!fs.existsSync(paths.state)) return { nothing: "not a guest of ours" };
  const env = detectEnvironment(layout);
  const target = planTarget(config, { canLoad: env.target !== undefined });
  if (target.kind !== "profile") return { nothing: "AppArmor is not enabled" };
  const parser = new Parser(layout.parser, env, config.parserTimeout * 1000);
  const compiler = profileCompiler(parser, env, paths.profileName, compiledStoreUse(layout, config, ctx.warnings));

  return withGuestLock({ lockPath: paths.lock, guest: ctx.guest, timeoutMs: config.lockTimeout * 1000 }, async (lock) => {
    recoverInterrupted(paths, compiler, ctx.warnings);
    const onDisk = readOnDisk(paths);
    const state = onDisk.state;
    if (state === undefined) return { nothing: "not a guest of ours" };
    if (onDisk.files === undefined || onDisk.profile === undefined) return { nothing: `${paths.hostFiles} or its profile is missing` };
    let text = onDisk.files.toString("utf8");
    const granted = parseGranted(text);
    let grantChange: GrantChange;
    const what: string[] = [];
    if (change.add !== undefined) {
      const add = change.add.filter((g) => !(permsFor(granted, g.path) ?? "").includes(g.write ? "w" : "r"));
      if (add.length === 0) return { nothing: `the profile grants ${change.add.map((g) => g.path).join(", ") || "nothing asked"} already` };
      for (const g of add) {
        text += `${grantLine(ctx, g)}\n`;
        what.push(`granted ${g.path}`);
      }
      grantChange = { add };
    } else {
      const port = change.dropPort;
      // `drop`: the helper's refused regeneration (src/helper/operations.ts) drops libvirt's grants this way.
      const mine = change.drop ?? ((g: RuntimeGrant) => g.by === "network" && g.port === port);
      const gone = (state.grants ?? []).filter(mine);
      if (gone.length === 0) return { nothing: change.drop ? "no such grants" : "the port has no grants" };
      for (const g of gone) {
        let line: string;
        try {
          line = `${grantLine(ctx, g)}\n`;
        } catch {
          continue; // refused now: it cannot be in the text as we render it
        }
        const at = text.indexOf(line);
        if (at >= 0 && (at === 0 || text[at - 1] === "\n")) text = text.slice(0, at) + text.slice(at + line.length);
        what.push(`dropped ${g.path}`);
      }
      grantChange = { drop: mine };
    }
    const grants = applyGrantChange(state.grants, grantChange);
    const plan = planSync(
      { uuid, name: state.name, profileName: paths.profileName, filesText: text, holds: state.holds ?? [], grants },
      onDisk,
      // The guest's recorded mode, not the config's: a port change is no reason to change it.
      { policy: "if-changed", as: target.as !== "compile-only" && (state.loadedAs === "enforce" || state.loadedAs === "complain") ? state.loadedAs : target.as },
      { now: Date.now(), loadedMode: undefined },
    );
    await applySync(
      plan,
      // Nothing new is claimed (see above): the held paths are the record's.
      { paths, hostProfilesDir: layout.profilesDir, lock, compiler, checkClaim: () => undefined, hostLock: { path: hostLockPath(layout), timeoutMs: config.lockTimeout * 1000 } },
      ctx.warnings,
    );
    return { done: `${paths.profileName}: ${what.join(", ")}: ${plan.summary}` };
  });
}
