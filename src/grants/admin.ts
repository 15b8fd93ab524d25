/**
 * `virt-aa-hook grant`, `revoke` and `sync`: runtime grants an admin gives a running guest where
 * libvirt calls nothing before QEMU opens a new file (seclabel and wrapper attach modes: a
 * hot-plugged disk, a new cdrom medium, a snapshot overlay, a blockcopy target, a commit base that
 * must become writable), and taking them back.
 *
 * Each reads the guest's live XML with virsh (admin side only: the hook never calls libvirt),
 * changes the guest's admin grants and syncs its profile through the hook's own sync
 * (hook/sync.ts: the same policy, exclusive access, staged compile, atomic commit, guest lock).
 * Only a guest we have a record of (it went through our `prepare` and was not released) is served.
 */
import type { Config } from "../config.js";
import { parseDomain } from "../domain/index.js";
import { errorReason, GuestError, HostError, PathError, type Warning } from "../errors.js";
import type { HookContext } from "../hook/context.js";
import { holderStatus } from "../hook/exclusive.js";
import { syncProfile, type GrantChange } from "../hook/sync.js";
import { HostFs } from "../hostfs.js";
import type { RuntimeGrant } from "../ir.js";
import type { Layout } from "../layout.js";
import { buildProfile } from "../pipeline.js";
import { canonicalise } from "../policy/index.js";
import { listStates, type GuestState } from "../store/state.js";

/** The comment (and `explain` source) of an admin grant's rule. */
export const ADMIN_SOURCE = "admin grant";

/** Where the live domain XML comes from: `virsh dumpxml --security-info NAME` (grants/virsh.ts). */
export type LiveXml = (name: string) => Promise<Buffer>;

export interface AdminContext {
  layout: Layout;
  config: Config;
  liveXml: LiveXml;
}

/** What a command did: its one summary line, and what the sync tolerated. */
export interface AdminOutcome {
  summary: string;
  warnings: Warning[];
}

/** A refusal or failure of one command, as its one line's fields: `cannot grant P to G`, reason. */
export class AdminFailure extends Error {
  constructor(
    public readonly what: string,
    public readonly reason: string,
    /** 1: refused or failed; 2: usage. */
    public readonly code: 1 | 2 = 1,
  ) {
    super(`${what}: ${reason}`);
    this.name = "AdminFailure";
  }
}

/** `virt-aa-hook grant NAME PATH [--read-only]` */
export async function grantPath(ctx: AdminContext, name: string, path: string, opts: { write: boolean }): Promise<AdminOutcome> {
  const what = `cannot grant ${path} to ${name}`;
  // Resolved as QEMU's open will be: symlinks first, then `..` (canonicalise), never `..` by text.
  const p = canonicalOrSelf(new HostFs(ctx.layout), absolutePath(what, path));
  const grant: RuntimeGrant = { path: p, write: opts.write, by: "admin", source: ADMIN_SOURCE };
  const r = await syncRunning(ctx, what, name, p, () => ({ add: [grant] }));
  return { summary: `granted ${p} ${opts.write ? "read-write" : "read-only"} to ${name}: ${r.summary}`, warnings: r.warnings };
}

/** `virt-aa-hook revoke NAME PATH` */
export async function revokePath(ctx: AdminContext, name: string, path: string): Promise<AdminOutcome> {
  const what = `cannot revoke ${path} from ${name}`;
  const p = absolutePath(what, path);
  const fs = new HostFs(ctx.layout);
  const canonical = canonicalOrSelf(fs, p);
  const matches = (g: RuntimeGrant) => g.by === "admin" && (g.path === p || canonicalOrSelf(fs, g.path) === canonical);
  const r = await syncRunning(ctx, what, name, p, (state) => {
    if (!(state.grants ?? []).some(matches)) {
      const admin = (state.grants ?? []).filter((g) => g.by === "admin").map((g) => g.path);
      throw new AdminFailure(what, `no admin grant of it (${admin.length === 0 ? "the guest has none" : `admin grants: ${admin.join(", ")}`})`);
    }
    return { drop: matches };
  });
  return { summary: `revoked ${p} from ${name}: ${r.summary}`, warnings: r.warnings };
}

/**
 * `virt-aa-hook sync NAME [--revoke-all]`: rebuild the profile from the live XML. Admin grants the
 * live XML now covers itself (same path, at least the same access) are dropped: the XML keeps
 * them from now on. Others stay (a blockcopy target, a commit base made writable: the XML does not
 * name them while the job runs) until revoked, or all of them with `revokeAll`.
 *
 * libvirt's own grants (helper mode, `-F`) that the XML covers are dropped the same way: libvirt
 * 9.0 sends no regeneration after a disk-only snapshot and regenerates a copy's pivot from an XML
 * that still names the old image (docs/helper.md), so `sync` is how an admin shrinks those at once.
 * Uncovered libvirt grants stay: a job may still use them, and libvirt's next regeneration decides.
 */
export async function syncGuest(ctx: AdminContext, name: string, opts: { revokeAll: boolean }): Promise<AdminOutcome> {
  const what = `cannot sync ${name}`;
  let dropped: string[] = [];
  let kept: string[] = [];
  let libvirtDropped: string[] = [];
  const r = await syncRunning(ctx, what, name, "-", (state, xml) => {
    const admin = (state.grants ?? []).filter((g) => g.by === "admin");
    const covered = opts.revokeAll ? () => true : xmlCovers(ctx.layout, xml);
    const xmlOnly = xmlCovers(ctx.layout, xml);
    dropped = admin.filter(covered).map((g) => g.path);
    kept = admin.filter((g) => !covered(g)).map((g) => g.path);
    libvirtDropped = (state.grants ?? []).filter((g) => g.by === "libvirt" && xmlOnly(g)).map((g) => g.path);
    return { drop: (g) => (g.by === "admin" && covered(g)) || (g.by === "libvirt" && xmlOnly(g)) };
  });
  const parts = [
    dropped.length > 0 ? `dropped ${dropped.length} admin grant${dropped.length === 1 ? "" : "s"} (${dropped.join(", ")})` : "",
    libvirtDropped.length > 0 ? `dropped ${libvirtDropped.length} libvirt grant${libvirtDropped.length === 1 ? "" : "s"} the live XML covers (${libvirtDropped.join(", ")})` : "",
    kept.length > 0 ? `kept ${kept.length} admin grant${kept.length === 1 ? "" : "s"} the live XML does not name (${kept.join(", ")}; revoke when done)` : "",
  ].filter(Boolean);
  return { summary: `synced ${name} from its live XML${parts.length > 0 ? `, ${parts.join(", ")}` : ""}: ${r.summary}`, warnings: r.warnings };
}

/**
 * Whether the live XML's own rules cover a grant: the same canonical path without a glob suffix,
 * with every permission the grant gives. Judged with the XML's rules alone (the policy refusing
 * the XML itself is reported by the sync that follows).
 */
function xmlCovers(layout: Layout, xml: Buffer): (g: RuntimeGrant) => boolean {
  let rules: { path: string; suffix: string; perms: string }[];
  try {
    rules = buildProfile(xml, { layout }).rules;
  } catch {
    rules = [];
  }
  const fs = new HostFs(layout);
  return (g) => {
    const p = canonicalOrSelf(fs, g.path);
    const need = g.write ? "rw" : "r";
    return rules.some((r) => r.suffix === "" && r.path === p && [...need].every((c) => r.perms.includes(c)));
  };
}

/**
 * The common part: the guest must have a record of ours (it runs, or at least was prepared and
 * not released) and the config must not be off; then its live XML is read, its UUID matched to
 * the record, and its profile synced with `change(record, xml)` under its lock.
 */
async function syncRunning(
  ctx: AdminContext,
  what: string,
  name: string,
  path: string,
  change: (state: GuestState, xml: Buffer) => GrantChange,
): Promise<AdminOutcome> {
  const { layout, config } = ctx;
  if (config.mode === "off") throw new AdminFailure(what, `${layout.configPath} has mode = "off": virt-aa-hook manages no profiles`);
  const records = listStates(layout.host(layout.stateDir)).filter((s) => s.name === name);
  if (records.length === 0) {
    throw new AdminFailure(
      what,
      `no running guest of that name has a profile of ours (no record in ${layout.stateDir}): start it first, or check the name (a guest left to libvirt's own AppArmor driver is not managed here)`,
    );
  }
  let xml: Buffer;
  try {
    xml = await ctx.liveXml(name);
  } catch (err) {
    throw new AdminFailure(what, `cannot read its live XML: ${(err as Error).message}`);
  }
  let uuid: string;
  try {
    uuid = parseDomain(xml).uuid;
  } catch (err) {
    throw new AdminFailure(what, `its live XML cannot be used: ${errorReason(err)}`);
  }
  const state = records.find((s) => s.uuid === uuid);
  if (state === undefined) {
    throw new AdminFailure(what, `its live XML has UUID ${uuid}, but our record of ${name} is of ${records.map((s) => s.uuid).join(", ")}: a different domain of that name runs; restart it`);
  }
  if (holderStatus(layout, state, Date.now()) === "stale") {
    throw new AdminFailure(
      what,
      `not running: ${layout.libvirtPidFile(name)} names no live QEMU and our record is older than a start (a record left by a host that went down; the next start replaces it)`,
    );
  }
  const hook: HookContext = { layout, config, guest: name, op: "grant", warnings: [] };
  const grantChange = change(state, xml);
  try {
    const r = await syncProfile(hook, xml, "if-not-loaded", grantChange);
    return { summary: `${r.profileName}: ${r.summary}`, warnings: hook.warnings };
  } catch (err) {
    if (err instanceof GuestError || err instanceof PathError) {
      throw new AdminFailure(what, err.path === path ? err.reason : `${err.path}: ${err.reason}`);
    }
    if (err instanceof HostError) throw new AdminFailure(what, err.message);
    throw err;
  }
}

function absolutePath(what: string, p: string): string {
  if (!p.startsWith("/")) throw new AdminFailure(what, "not an absolute path", 2);
  if (p.includes("\0")) throw new AdminFailure(what, "the path contains a NUL character", 2);
  // As given: `/srv/link/../x` is where the symlink leads, then up; only canonicalise knows that.
  return p;
}

function canonicalOrSelf(fs: HostFs, p: string): string {
  try {
    return canonicalise(fs, p);
  } catch {
    return p;
  }
}
