import type { Domain } from "../domain/model.js";
import type { HostFs } from "../hostfs.js";
import type { Layout } from "../layout.js";
import type { QemuConf } from "../host/qemu-conf.js";
import type { Origin, OriginKind, OriginRule, Rule } from "../ir.js";

/** What a rule family may look at: the domain model and read-only host state (through the root). */
export interface RuleContext {
  domain: Domain;
  fs: HostFs;
  layout: Layout;
  /**
   * libvirt's qemu.conf (read once per build at the edge, host/qemu-conf.ts): the per-guest
   * directories it moves and the files QEMU opens because of it. Families read such directories
   * here, never from layout defaults.
   */
  qemu: QemuConf;
  /** Backing-chain depth limit for image header walks: a deeper chain is refused, never cut short. */
  maxBackingDepth: number;
  /** What the disk rules ask of later stages and earlier hook calls (supplied by the pipeline). */
  images: ImageChecks;
}

/**
 * Passed in rather than imported, so rules/ never imports policy/ or render/ (data flows one way):
 * an image chain must be judged before the walk touches each file, not only afterwards.
 */
export interface ImageChecks {
  /** The policy's verdict on one rule: its canonical form, or PathError. */
  vet(rule: Rule): Rule;
  /** The canonical form of a host path (symlinks resolved inside the root), not judged. */
  canonical(path: string): string;
  /** The name of another guest whose profile grants this canonical path writable, if any. */
  writableByOtherGuest(path: string): string | undefined;
  /**
   * start/reconnect: the permissions the guest's `.files` (written by prepare) grants this
   * canonical path, undefined when it grants nothing. Absent at prepare and when there is no `.files`.
   */
  grantedBefore?: (path: string) => string | undefined;
}

/**
 * One device family: domain model → rules, each carrying the origin the policy judges it by.
 * Pure apart from host reads through ctx.fs. Throws PathError (errors.ts) for input it must
 * reject; never returns a partial list.
 */
export type RuleFamily = (ctx: RuleContext) => OriginRule[];

/** The rule constructor of one origin: `const rule = ruleOf("input")` at the top of a family. */
export type RuleConstructor = (path: string, perms: string, source: string, suffix?: Rule["suffix"]) => OriginRule;

/**
 * Constructor for rules of one origin kind (and, for a resolved host device, that device). Keeps
 * call sites short, the IR shape in one place, and the origin out of reach of XML text.
 */
export function ruleOf(kind: OriginKind, device?: string): RuleConstructor {
  const origin: Origin = device === undefined ? { kind } : { kind, device };
  return (path, perms, source, suffix = "") => ({ path, suffix, perms, source, origin });
}
