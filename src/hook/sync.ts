import fs from "node:fs";
import { detectEnvironment, Parser, removeCacheEntries } from "../apparmor/index.js";
import { PathError } from "../errors.js";
import { buildProfile } from "../pipeline.js";
import { renderProfile } from "../render/index.js";
import { applySync, readOnDisk, recoverInterrupted, type ProfileCompiler } from "../store/apply.js";
import { readIfExists } from "../store/atomic.js";
import { filesInclude, guestPaths, hostLockPath, type GuestPaths } from "../store/guest-files.js";
import { withGuestLock } from "../store/lock.js";
import { ignoredModeWarning, planSync, planTarget, type LoadPolicy } from "../store/plan.js";
import { checkAttach } from "./attach-check.js";
import type { HookContext, Outcome } from "./context.js";
import { conflictError, findConflict, heldPaths } from "./exclusive.js";
import { checkKeptOwner } from "./kept.js";

export interface SyncOutcome extends Outcome {
  uuid: string;
  profileName: string;
}

/**
 * `prepare`, `start`, `reconnect` (and keeping an adopted guest loaded): derive the rules for a
 * domain XML and bring the guest's files and loaded profile in line with them, as one transaction
 * under the guest's lock. This function reads what the decision needs, asks the planner
 * (store/plan.ts) and hands the plan to the applier (store/apply.ts):
 *
 * 1. derive the `.files` text (buildProfile); a rejected guest throws GuestError before anything
 *    is touched, as does `require_attach` (prepare, start);
 * 2. where the profile goes (planTarget): refused, skipped, loaded or only compiled;
 * 3. under the guest's lock: clean up after an interrupted hook, read the guest's files, refuse a
 *    profile kept for another guest, work out the paths the rules hold, plan and apply.
 */
export async function syncProfile(ctx: HookContext, xml: Buffer, policy: LoadPolicy): Promise<SyncOutcome> {
  const { layout, config } = ctx;
  // start/reconnect: image chains may only narrow what prepare granted (rules/storage.ts), so the
  // header-derived part is judged against the .files on disk.
  const previousFiles = policy === "always" ? undefined : (uuid: string) => readIfExists(guestPaths(layout, uuid).files);
  const built = buildProfile(xml, { layout, ...(previousFiles ? { previousFiles } : {}) });
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
  const compiler: ProfileCompiler = {
    validate: (profile, opts) => parser.validate(profile, paths.profileName, opts),
    load: (profile, opts) => parser.load(profile, paths.profileName, opts),
    removeCacheEntries: () => void removeCacheEntries(env.cacheDir, paths.profileName),
  };

  fs.mkdirSync(paths.profilesDir, { recursive: true, mode: 0o755 });
  return withGuestLock({ lockPath: paths.lock, guest: ctx.guest, timeoutMs: config.lockTimeout * 1000 }, async (lock) => {
    recoverInterrupted(paths, compiler, ctx.warnings);
    const onDisk = readOnDisk(paths);
    checkKeptOwner(ctx, paths, name, onDisk.state, onDisk.profile);
    const now = Date.now();
    const holds = heldPaths(layout, built.domain, built.rules);
    const plan = planSync(
      {
        uuid,
        name,
        profileName: paths.profileName,
        filesText: built.filesText,
        holds,
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
