import fs from "node:fs";
import { compiledStoreUse, detectEnvironment, loadProfile, Parser, removeCacheEntries, type ApparmorEnvironment, type StoreUse } from "../apparmor/index.js";
import { PathError } from "../errors.js";
import { parseDomain } from "../domain/index.js";
import type { RuntimeGrant } from "../ir.js";
import { buildProfile } from "../pipeline.js";
import { renderProfile } from "../render/index.js";
import { applySync, readOnDisk, recoverInterrupted, type ProfileCompiler } from "../store/apply.js";
import { readIfExists } from "../store/atomic.js";
import { filesInclude, guestPaths, hostLockPath, type GuestPaths } from "../store/guest-files.js";
import { withGuestLock } from "../store/lock.js";
import { ignoredModeWarning, planSync, planTarget, type LoadPolicy } from "../store/plan.js";
import { readState } from "../store/state.js";
import { checkAttach } from "./attach-check.js";
import { qemuConfOf, type HookContext, type Outcome } from "./context.js";
import { conflictError, findConflict, heldPaths } from "./exclusive.js";
import { checkKeptOwner } from "./kept.js";

export interface SyncOutcome extends Outcome {
  uuid: string;
  profileName: string;
}

/**
 * A change to a guest's runtime grants (ir.ts RuntimeGrant), applied to its record's grants under
 * its lock: first every grant `drop` matches is removed, then `add` is added. An added grant
 * replaces one with the same path from the same giver (`by`, and `port` for the network hook), so
 * granting a path again (say read-write after read-only) leaves one grant.
 */
export interface GrantChange {
  add?: readonly RuntimeGrant[];
  drop?: (g: RuntimeGrant) => boolean;
}

/** `current` with `change` applied (see GrantChange). */
export function applyGrantChange(current: readonly RuntimeGrant[] | undefined, change?: GrantChange): RuntimeGrant[] {
  const kept = (current ?? []).filter((g) => !change?.drop?.(g));
  const key = (g: RuntimeGrant) => `${g.by}\u0000${g.port ?? ""}\u0000${g.path}`;
  const out = new Map(kept.map((g) => [key(g), g]));
  for (const g of change?.add ?? []) {
    out.delete(key(g));
    out.set(key(g), { ...g });
  }
  return [...out.values()];
}

function sameGrants(a: readonly RuntimeGrant[], b: readonly RuntimeGrant[]): boolean {
  return a.length === b.length && a.every((g, i) => JSON.stringify(g) === JSON.stringify(b[i]));
}

/**
 * `prepare`, `start`, `reconnect` (and keeping an adopted guest loaded), and every change of a
 * running guest's runtime grants (`change`: libvirt's helper, `virt-aa-hook grant`/`revoke`/`sync`,
 * the network hook): derive the rules for a domain XML and the guest's runtime grants and bring
 * the guest's files and loaded profile in line with them, as one transaction under the guest's
 * lock. This function reads what the decision needs, asks the planner (store/plan.ts) and hands
 * the plan to the applier (store/apply.ts):
 *
 * 1. derive the `.files` text (buildProfile) from the XML and the record's grants with `change`
 *    applied; a rejected guest or refused grant throws GuestError before anything is touched, as
 *    does `require_attach` (prepare, start);
 * 2. where the profile goes (planTarget): refused, skipped, loaded or only compiled;
 * 3. under the guest's lock: clean up after an interrupted hook, read the guest's files, refuse a
 *    profile kept for another guest, apply `change` to the grants the record has now (and build
 *    again if they are not those of step 1: another call changed them meanwhile), work out the
 *    paths the rules hold (granted paths too: exclusive access covers them), plan and apply. The
 *    next record carries the grants.
 */
export async function syncProfile(ctx: HookContext, xml: Buffer, policy: LoadPolicy, change?: GrantChange): Promise<SyncOutcome> {
  const { layout, config } = ctx;
  // start/reconnect: image chains may only narrow what prepare granted (rules/storage.ts), so the
  // header-derived part is judged against the .files on disk.
  const previousFiles = policy === "always" ? undefined : (uuid: string) => readIfExists(guestPaths(layout, uuid).files);
  const domain = parseDomain(xml);
  // Built before the lock (as it always was, so a bad guest fails before anything waits), with the
  // grants as the record has them now; checked again under the lock.
  const early = applyGrantChange(readState(guestPaths(layout, domain.uuid).state)?.grants, change);
  const qemu = qemuConfOf(ctx);
  const build = (grants: readonly RuntimeGrant[]) => buildProfile(domain, { layout, grants, qemu, ...(previousFiles ? { previousFiles } : {}) });
  let built = build(early);
  const { uuid, name } = built.domain;
  // require_attach: a guest that would run outside its profile is refused before anything is written.
  if (policy !== "if-not-loaded") checkAttach(config, layout, built.domain);
  const paths = guestPaths(layout, uuid);
  const env = detectEnvironment(layout);

  const target = planTarget(config, { canLoad: env.target !== undefined }, built.domain.settings?.mode);
  if (target.kind === "profile" && target.modeFrom === "ignored") ctx.warnings.push(ignoredModeWarning(config, built.domain.settings?.mode));
  if (target.kind === "refuse") {
    throw new PathError(
      layout.apparmorEnabledFile,
      `cannot load ${paths.profileName}: AppArmor is not enabled in this kernel (set no_apparmor in ${layout.configPath} to start guests without it)`,
    );
  }
  const done = (summary: string): SyncOutcome => ({ uuid, profileName: paths.profileName, summary, warnings: ctx.warnings });
  if (target.kind === "skip") return done("skipped: AppArmor is not enabled");

  const parser = new Parser(layout.parser, env, config.parserTimeout * 1000);
  const compiler = profileCompiler(parser, env, paths.profileName, compiledStoreUse(layout, config, ctx.warnings));

  fs.mkdirSync(paths.profilesDir, { recursive: true, mode: 0o755 });
  return withGuestLock({ lockPath: paths.lock, guest: ctx.guest, timeoutMs: config.lockTimeout * 1000 }, async (lock) => {
    recoverInterrupted(paths, compiler, ctx.warnings);
    const onDisk = readOnDisk(paths);
    checkKeptOwner(ctx, paths, name, onDisk.state, onDisk.profile);
    const grants = applyGrantChange(onDisk.state?.grants, change);
    if (!sameGrants(grants, early)) built = build(grants);
    const now = Date.now();
    const holds = heldPaths(layout, built.domain, built.rules, qemu);
    const plan = planSync(
      {
        uuid,
        name,
        profileName: paths.profileName,
        filesText: built.filesText,
        holds,
        grants,
        ...(onDisk.profile === undefined ? { newProfile: createProfileText(ctx, paths) } : {}),
      },
      onDisk,
      { policy, as: target.as, modeFrom: target.modeFrom },
      { now, loadedMode: policy === "if-not-loaded" ? parser.loadedMode(paths.profileName) : undefined },
    );
    const checkClaim = () => {
      const conflict = findConflict(layout, uuid, holds, now, (other, held) => {
        ctx.warnings.push({
          path: held,
          reason: `also held by guest ${other.name} (${other.uuid}), not counted: no running QEMU and prepared ${other.prepared ?? "at an unknown time"}`,
        });
      });
      if (conflict) throw conflictError(name, conflict);
    };
    await applySync(
      plan,
      { paths, hostProfilesDir: layout.profilesDir, lock, compiler, checkClaim, hostLock: { path: hostLockPath(layout), timeoutMs: config.lockTimeout * 1000 } },
      ctx.warnings,
    );
    return done(plan.summary);
  });
}

function createProfileText(ctx: HookContext, paths: GuestPaths): string {
  const template = ctx.layout.template;
  let text: string;
  try {
    text = fs.readFileSync(ctx.layout.host(template), "utf8");
  } catch (err) {
    throw new PathError(template, `cannot read the AppArmor template: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return renderProfile(text, paths.profileName, filesInclude(paths.uuid));
  } catch (err) {
    throw new PathError(template, `cannot create ${paths.hostProfile} from the template: ${(err as Error).message}`);
  }
}

/**
 * The parser as the store's applier uses it for one guest's profile (store/apply.ts); loads go
 * through the compiled-policy store when `store` is given (apparmor/store-load.ts).
 */
export function profileCompiler(parser: Parser, env: ApparmorEnvironment, profileName: string, store?: StoreUse): ProfileCompiler {
  return {
    validate: (profile, opts) => parser.validate(profile, profileName, opts),
    load: (profile, opts) => loadProfile(parser, profile, profileName, opts, store),
    removeCacheEntries: () => void removeCacheEntries(env.cacheDir, profileName),
  };
}
