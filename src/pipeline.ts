import type { Domain } from "./domain/model.js";
import type { Rule } from "./rules/ir.js";
import type { Layout } from "./layout.js";

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
}

/**
 * XML → model → rules → policy → text. Pure apart from host reads through the layout.
 * Throws GuestError (errors.ts) for any rejected input; never returns a partial profile.
 */
export function buildProfile(_xml: string | Buffer, _opts: BuildOptions): ProfileBuild {
  throw new Error("buildProfile: not implemented yet");
}
