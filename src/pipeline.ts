import path from "node:path";
import type { Domain } from "./domain/model.js";
import { parseDomain } from "./domain/index.js";
import { literalBudgetProblem, pathLimitProblem } from "./domain/limits.js";
import { GuestError, PathError } from "./errors.js";
import { HostFs } from "./hostfs.js";
import type { Layout } from "./layout.js";
import { loadQemuConf, type QemuConf } from "./host/qemu-conf.js";
import { applyPolicy, canonicalise, checkRule } from "./policy/index.js";
import type { ImageChecks } from "./rules/context.js";
import { deriveRules } from "./rules/index.js";
import { runtimeOwnership } from "./rules/ownership.js";
import { isWritablePerms, type OriginRule, type Rule, type RuntimeGrant, type RuntimeOwnership } from "./ir.js";
import { renderFiles } from "./render/index.js";
import { otherGuestsGrants, parseGranted, permsFor } from "./render/granted.js";

const DEFAULT_MAX_BACKING_DEPTH = 64;

/** Everything derived from one domain XML: the model, the final rules and the `.files` text. */
export interface ProfileBuild {
  domain: Domain;
  /** Canonicalised, policy-checked, deduplicated rules in render order. */
  rules: Rule[];
  /** Exact text of `/etc/apparmor.d/libvirt/libvirt-<uuid>.files`. */
  filesText: string;
  /** `libvirt-<uuid>` */
  profileName: string;
}

export interface BuildOptions {
  layout: Layout;
  /** Backing-chain depth limit (default 64). */
  maxBackingDepth?: number;
  /**
   * start/reconnect: the guest's current `.files` (what prepare granted), by uuid; image-chain
   * rules must stay within it. Absent for prepare and explain.
   */
  previousFiles?: (uuid: string) => Buffer | undefined;
  /**
   * The guest's runtime grants (its state record's, hook/sync.ts): rendered after the XML's rules
   * as rules of origin kind "granted", judged by the same policy, merged into the same `.files`.
   */
  grants?: readonly RuntimeGrant[];
  /** libvirt's qemu.conf as read for this call (hook/context.ts qemuConfOf); read from the layout's root when absent. */
  qemu?: QemuConf;
}

/**
 * XML → model → rules → policy → text. Pure apart from host reads through the layout.
 * Throws GuestError (errors.ts) for any rejected input; never returns a partial profile.
 */
export function buildProfile(xml: string | Buffer | Domain, opts: BuildOptions): ProfileBuild {
  const domain = typeof xml === "string" || Buffer.isBuffer(xml) ? parseDomain(xml) : xml;
  try {
    const fs = new HostFs(opts.layout);
    const qemu = opts.qemu ?? loadQemuConf(fs);
    const images = imageChecks(fs, opts.layout, domain.uuid, opts.previousFiles?.(domain.uuid));
    const raw = deriveRules({ domain, fs, layout: opts.layout, qemu, maxBackingDepth: opts.maxBackingDepth ?? DEFAULT_MAX_BACKING_DEPTH, images });
    if (opts.grants !== undefined) raw.push(...grantRules(opts.grants));
    const rules = applyPolicy(fs, raw, canonicalOwnership(fs, runtimeOwnership(domain, opts.layout, qemu)), qemu);
    checkLimits(rules);
    const filesText = renderFiles(domain, rules);
    return { domain, rules, filesText, profileName: opts.layout.profileName(domain.uuid) };
  } catch (err) {
    if (err instanceof PathError) throw new GuestError(domain.name, err.path, err.reason);
    throw err;
  }
}

/**
 * Runtime grants as rules. Write: `rwk`; read-only: `rk`. The `k` in both, as for the XML's disks
 * (rules/storage.ts): QEMU takes OFD locks on the images it opens, shared ones even read-only,
 * and AppArmor checks `k` for every lock (a write lock also needs `w`). libvirt's helper always
 * writes `rwk` for `-F`; a read-only grant stays read-only here (a cdrom medium, a backing layer).
 */
export function grantRules(grants: readonly RuntimeGrant[]): OriginRule[] {
  return grants.map((g) => ({ path: g.path, suffix: "", perms: g.write ? "rwk" : "rk", source: g.source, origin: { kind: "granted" } }));
}

/**
 * The policy and the earlier hook calls, as the disk rules see them (rules/context.ts).
 * `previous`: the guest's `.files` at start/reconnect (see BuildOptions.previousFiles).
 */
export function imageChecks(fs: HostFs, layout: Layout, uuid: string, previous?: Buffer): ImageChecks {
  const others = otherGuestsGrants(fs, layout.profilesDir, uuid);
  const canonical = new Map<string, string>();
  const before = previous === undefined ? undefined : parseGranted(previous.toString("utf8"));
  return {
    vet: (r) => checkRule(fs, r),
    canonical: (p) => {
      // One build asks for the same directories over and over (every layer of a 10,000-deep chain).
      let c = canonical.get(p);
      if (c === undefined) canonical.set(p, (c = canonicalise(fs, p)));
      return c;
    },
    writableByOtherGuest: (p) => others().find((g) => isWritablePerms(permsFor(g, p) ?? ""))?.guest,
    ...(before === undefined ? {} : { grantedBefore: (p: string) => permsFor(before, p) }),
  };
}

/**
 * Byte limits on the final (canonical) rules: what symlinks and image headers add is counted too,
 * not only what the XML wrote. Bounds what one guest's profile can cost apparmor_parser.
 */
function checkLimits(rules: readonly Rule[]): void {
  for (const r of rules) {
    const problem = pathLimitProblem(r.path);
    if (problem) throw new PathError(r.path, `${r.source}: ${problem}`);
  }
  const over = literalBudgetProblem(rules.map((r) => r.path));
  if (over) throw new PathError(over.path, over.reason);
}

/**
 * The guest's own files as the policy sees paths: canonical. A rule is judged by where its path
 * leads, so an own file the XML names through a symlink (an `<nvram>` path) is its own there. An
 * `<nvram>`/`<pstore>` path is own only where it leads directly into libvirt's NVRAM directory.
 */
function canonicalOwnership(fs: HostFs, own: RuntimeOwnership): RuntimeOwnership {
  const extra: string[] = [];
  const add = (file: string, accept: (resolved: string) => boolean) => {
    let resolved: string;
    try {
      resolved = canonicalise(fs, file);
    } catch {
      return; // its rule is refused by the policy with the reason
    }
    if (accept(resolved) && !own.ownFiles.includes(resolved) && !extra.includes(resolved)) extra.push(resolved);
  };
  const nvramNamed = new Set(own.nvramNamed ?? []);
  const inNvramDir = (p: string) => own.nvramDir !== undefined && path.posix.dirname(p) === own.nvramDir;
  for (const file of own.ownFiles) add(file, (resolved) => !nvramNamed.has(file) || inNvramDir(resolved));
  for (const file of nvramNamed) add(file, inNvramDir);
  return extra.length === 0 ? own : { ...own, ownFiles: [...own.ownFiles, ...extra] };
}
