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
