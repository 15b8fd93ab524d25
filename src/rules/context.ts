import type { Domain } from "../domain/model.js";
import type { HostFs } from "../hostfs.js";
import type { Layout } from "../layout.js";
import type { Rule } from "./ir.js";

/** What a rule family may look at: the domain model and read-only host state (through the root). */
export interface RuleContext {
  domain: Domain;
  fs: HostFs;
  layout: Layout;
  /** Backing-chain depth limit for image header walks (DESIGN §2). */
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
 * One device family: domain model → rules. Pure apart from host reads through ctx.fs.
 * Throws PathError (errors.ts) for input it must reject; never returns a partial list.
 */
export type RuleFamily = (ctx: RuleContext) => Rule[];

/** Convenience constructor that keeps call sites short and the IR shape in one place. */
export function rule(path: string, perms: string, source: string, suffix: Rule["suffix"] = ""): Rule {
  return { path, suffix, perms, source };
}
