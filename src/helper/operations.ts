/**
 * What each virt-aa-helper call does with virt-aa-hook's generator and policy (docs/helper.md has
 * the table). Every write goes through hook/sync.ts syncProfile (or hook/release.ts), so the
 * guarantees are the hook's: one transaction under the guest's lock, the `.files` staged,
 * compiled and loaded before it replaces the old one, the per-guest profile created from our
 * template only when absent and never overwritten, the record's runtime grants changed only there.
 */
import { detectEnvironment, Parser } from "../apparmor/index.js";
import { parseDomain } from "../domain/index.js";
import type { Domain } from "../domain/model.js";
import { GuestError, PathError } from "../errors.js";
import { qemuConfOf, type HookContext, type Outcome } from "../hook/context.js";
import { HostFs } from "../hostfs.js";
import type { Rule, RuntimeGrant } from "../ir.js";
import { canonicalise } from "../policy/canonical.js";
import { readIfExists } from "../store/atomic.js";
import { guestPaths } from "../store/guest-files.js";
import { withGuestLock } from "../store/lock.js";
import { readState } from "../store/state.js";
import { accessFor } from "./access.js";
import { HEADER_LAYER_SOURCE } from "./hotplug.js";
import type { HelperArgs } from "./args.js";
import { mirrorPaths } from "./mirror.js";

/** What libvirt's `-F` grants are called in comments, `explain` and the record. */
export const LIBVIRT_GRANT_SOURCE = "libvirt virt-aa-helper -F";

/** SetPathLabel with allowSubtree sends `<dir>/{,**}`: the directory and everything under it. */
const TREE_SUFFIX = "/{,**}";

/** The model of the XML on stdin, after libvirt's helper's own check that it is the guest `-u` names. */
export function domainFor(args: HelperArgs, xml: Buffer): Domain {
  if (xml.length === 0) throw new PathError("XML", "no domain XML on stdin (-c and -r read the domain's definition)");
  const domain = parseDomain(xml);
  if (domain.uuid !== args.uuid) {
    throw new GuestError(domain.name, "<uuid>", `given uuid does not match XML uuid (-u ${args.profileName})`);
  }
  return domain;
}

/**
 * `-c`/`-r` without a file (and `-f`): regenerate from the live XML. Drops every grant libvirt gave
 * with `-F` (the XML now says what the guest needs), except those whose path the XML still names
 * as a block job's `<mirror>` (mirror.ts). Grants by an admin or the network hook stay.
 * `-f PATH` then adds PATH as `-F` would (libvirt never sends `-f`).
 */
export async function regenerate(ctx: HookContext, args: HelperArgs, xml: Buffer): Promise<Outcome> {
  const domain = domainFor(args, xml);
  ctx.guest = domain.name;
  const mirrors = mirrorSet(ctx, xml);
  const drop = (g: RuntimeGrant) => g.by === "libvirt" && !mirrors.has(canonicalOrSelf(ctx, g.path));
  let add: RuntimeGrant[] = [];
  let extra = "";
  if (args.file !== undefined) {
    const grant = await fileGrant(ctx, domain, args.file.path);
    if (grant.kind === "grant") {
      add = [grant.grant, ...grant.layers];
      extra = `; granted ${grant.grant.path} ${grant.grant.write ? "rwk" : "rk"} (${grant.why})`;
    } else {
      extra = `; ${grant.summary}`;
    }
  }
  const { syncProfile } = await import("../hook/sync.js");
  // -c: libvirt found no profile, so this is a creation: load whatever happens, and judge the
  // XML's image chains on their own (the hook's prepare does the same). -r: write and reload only
  // what changed; backing layers and data files must already be granted (libvirt sends -F for every
  // file of a chain before the chain enters the live XML).
  let r;
  try {
    r = await syncProfile(ctx, xml, args.mode === "c" ? "always" : "if-changed", { drop, add });
  } catch (err) {
    // A refused regeneration writes nothing, but libvirt ignores its failure after a detach: the
    // -F grants it meant to end would stay loaded. Drop them anyway from the record and the
    // current .files (their own lines, as the network hook drops a port's: src/network/apply.ts),
    // reload, and still fail with the refusal.
    if (err instanceof GuestError && args.mode === "r" && args.file === undefined) await dropAfterRefusal(ctx, domain.uuid, drop);
    throw err;
  }
  return { summary: `${r.profileName}: regenerated: ${r.summary}${extra}`, warnings: ctx.warnings };
}

async function dropAfterRefusal(ctx: HookContext, uuid: string, drop: (g: RuntimeGrant) => boolean): Promise<void> {
  try {
    const { changeGrantsWithoutXml } = await import("../network/apply.js");
    const r = await changeGrantsWithoutXml(ctx, uuid, { drop });
    if ("done" in r) ctx.warnings.push({ path: "-", reason: `regeneration refused; libvirt's -F grants dropped anyway: ${r.done}`, level: "info" });
  } catch (e) {
    ctx.warnings.push({ path: "-", reason: `regeneration refused, and libvirt's -F grants could not be dropped: ${e instanceof Error ? e.message : String(e)}` });
  }
}

/**
 * `-r -F PATH`: libvirt is about to hand PATH to QEMU. Add it as a runtime grant `by: "libvirt"`
 * (read or write: access.ts), judged by the policy with the rest of the profile, and reload.
 * The XML on stdin is parsed and checked as for a regeneration (a bad XML fails the call, as in
 * libvirt's helper), and the profile is brought in line with it, but no grant is dropped.
 */
export async function appendFile(ctx: HookContext, args: HelperArgs, xml: Buffer, file: string): Promise<Outcome> {
  const domain = domainFor(args, xml);
  ctx.guest = domain.name;
  const grant = await fileGrant(ctx, domain, file);
  if (grant.kind === "skip") return { summary: grant.summary, warnings: ctx.warnings };
  const { syncProfile } = await import("../hook/sync.js");
  const r = await syncProfile(ctx, xml, "if-changed", grant.kind === "grant" ? { add: [grant.grant, ...grant.layers] } : {});
  const layers = grant.kind === "grant" && grant.layers.length > 0 ? `, and rk ${grant.layers.map((g) => g.path).join(", ")} (named by its header)` : "";
  const what = grant.kind === "grant" ? `granted ${file} ${grant.grant.write ? "rwk" : "rk"} (${grant.why})${layers}` : grant.summary;
  return { summary: `${r.profileName}: ${what}: ${r.summary}`, warnings: ctx.warnings };
}

type FileGrant =
  /** `layers`: the read-only grants for the files its header chain names (hotplug.ts), added with it. */
  | { kind: "grant"; grant: RuntimeGrant; why: string; layers: RuntimeGrant[] }
  /** Nothing to add, but the profile is still synced with the XML. */
  | { kind: "covered"; summary: string }
  /** Nothing to do at all (exit 0). */
  | { kind: "skip"; summary: string };

async function fileGrant(ctx: HookContext, domain: Domain, file: string): Promise<FileGrant> {
  // A pipe's `pipe:[123]` from a descriptor, or any relative name: libvirt's helper skips it too.
  if (!file.startsWith("/")) {
    const summary = `skipped ${JSON.stringify(file)}: not an absolute path`;
    ctx.warnings.push({ path: "-", reason: summary, level: "info" });
    return { kind: "skip", summary };
  }
  const fs = new HostFs(ctx.layout);
  if (file.endsWith(TREE_SUFFIX)) {
    // libvirt's SetPathLabel with allowSubtree (the private and channel directories at every
    // start, hugepage and memory-backing directories). A runtime grant is one path, never a tree:
    // met when the XML's own rules grant that tree read-write, refused otherwise (a tree comes
    // only from the domain XML, e.g. a metadata allow with tree="yes").
    const dir = file.slice(0, -TREE_SUFFIX.length) || "/";
    if (coveredByXml(await xmlRules(ctx, domain), canonicalise(fs, dir), "rw", true)) {
      return { kind: "covered", summary: `${file} is already granted by the domain XML` };
    }
    throw new PathError(file, "libvirt asks for a whole directory tree, which virt-aa-hook grants only from the domain XML (for example a metadata allow with tree='yes')");
  }
  const access = accessFor(fs, domain, file);
  const perms = access.write ? "rwk" : "rk";
  // Already granted by the XML's own rules (the master key in the private directory at every
  // start, a disk's own image): no grant, so no recompile; a regeneration would not keep it anyway.
  if (coveredByXml(await xmlRules(ctx, domain), canonicalise(fs, file), perms, false)) {
    return { kind: "covered", summary: `${file} is already granted ${perms} by the domain XML` };
  }
  let layers: RuntimeGrant[] = [];
  if (!access.named) {
    // A layer an earlier -F (of its hot-plugged top) granted read-only because only that top's
    // header names it: libvirt now sends -F for it too, meaning rwk. It stays read-only.
    const target = canonicalise(fs, file);
    const held = readState(guestPaths(ctx.layout, domain.uuid).state)?.grants?.find(
      (g) => g.by === "libvirt" && g.source === HEADER_LAYER_SOURCE && canonicalOrSelf(ctx, g.path) === target,
    );
    if (held !== undefined) return { kind: "covered", summary: `${file} is already granted rk as a layer named by a hot-plugged image's header` };
    const { hotplugLayers } = await import("./hotplug.js");
    layers = (await hotplugLayers(ctx, domain, file)).filter((g) => g.path !== target);
  }
  return { kind: "grant", grant: { path: file, write: access.write, by: "libvirt", source: LIBVIRT_GRANT_SOURCE }, why: access.why, layers };
}

/** The rules the XML alone gives, policy applied: what the guest gets without any grant. */
async function xmlRules(ctx: HookContext, domain: Domain): Promise<readonly Rule[]> {
  const { buildProfile } = await import("../pipeline.js");
  return buildProfile(domain, { layout: ctx.layout, qemu: qemuConfOf(ctx) }).rules;
}

/**
 * Whether `rules` give the canonical `target` every permission in `perms`: a rule on exactly that
 * path, or a tree rule (`{,/**}` on it or an ancestor, `/**` on an ancestor). With `tree`, the
 * whole tree below `target` must be granted: only tree rules count.
 */
export function coveredByXml(rules: readonly Rule[], target: string, perms: string, tree: boolean): boolean {
  return rules.some((r) => {
    if (![...perms].every((p) => r.perms.includes(p))) return false;
    switch (r.suffix) {
      case "":
        return !tree && r.path === target;
      case "{,/**}":
        return isUnder(target, r.path);
      case "/**":
        return target !== r.path && isUnder(target, r.path);
      default:
        return false;
    }
  });
}

function mirrorSet(ctx: HookContext, xml: Buffer): Set<string> {
  return new Set(mirrorPaths(xml).map((p) => canonicalOrSelf(ctx, p)));
}

function canonicalOrSelf(ctx: HookContext, p: string): string {
  try {
    return canonicalise(new HostFs(ctx.layout), p);
  } catch {
    return p;
  }
}

function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir === "/" ? "/" : `${dir}/`);
}

/**
 * `-D`: the guest stopped. Unload, remove the `.files`, our record (and so every runtime grant),
 * the parser cache entries and the per-guest profile if it is still byte-identical to what we
 * created: the hook's `release` (hook/release.ts), which runs again after this and finds nothing.
 */
export async function deleteProfile(ctx: HookContext, args: HelperArgs): Promise<Outcome> {
  const state = readState(guestPaths(ctx.layout, args.uuid).state);
  if (state !== undefined) ctx.guest = state.name;
  const { releaseByUuid } = await import("../hook/release.js");
  return releaseByUuid(ctx, args.uuid);
}

/** `-R`: unload only (files and record stay). Not loaded is not an error. */
export async function removeProfile(ctx: HookContext, args: HelperArgs): Promise<Outcome> {
  const paths = guestPaths(ctx.layout, args.uuid);
  const state = readState(paths.state);
  if (state !== undefined) ctx.guest = state.name;
  const env = detectEnvironment(ctx.layout);
  if (!env.target) return { summary: "nothing to unload: AppArmor is not enabled", warnings: ctx.warnings };
  const parser = new Parser(ctx.layout.parser, env, ctx.config.parserTimeout * 1000);
  const r = await withGuestLock({ lockPath: paths.lock, guest: ctx.guest, timeoutMs: ctx.config.lockTimeout * 1000 }, () => parser.unload(paths.profileName));
  return { summary: r === "removed" ? `unloaded ${paths.profileName}` : `${paths.profileName} was not loaded`, warnings: ctx.warnings };
}

/** `-a`: load the guest's profile as it is on disk (libvirt 9.x never sends it). */
export async function loadProfile(ctx: HookContext, args: HelperArgs): Promise<Outcome> {
  const paths = guestPaths(ctx.layout, args.uuid);
  const state = readState(paths.state);
  if (state !== undefined) ctx.guest = state.name;
  if (readIfExists(paths.profile) === undefined) throw new PathError(paths.hostProfile, "profile does not exist");
  const env = detectEnvironment(ctx.layout);
  if (!env.target) throw new PathError(ctx.layout.apparmorEnabledFile, `cannot load ${paths.profileName}: AppArmor is not enabled in this kernel`);
  const parser = new Parser(ctx.layout.parser, env, ctx.config.parserTimeout * 1000);
  await withGuestLock({ lockPath: paths.lock, guest: ctx.guest, timeoutMs: ctx.config.lockTimeout * 1000 }, () =>
    parser.load(paths.profile, paths.profileName, { skipReadCache: false, complain: state?.loadedAs === "complain" }),
  );
  return { summary: `loaded ${paths.profileName}`, warnings: ctx.warnings };
}
