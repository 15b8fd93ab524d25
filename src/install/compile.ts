/**
 * The compile check install and doctor share: each named profile compiled (`-QK`, nothing loaded
 * or cached) against an AppArmor directory, through the hook's own parser runner (clean
 * environment, timeout, "parser error" on a zero exit counts as a failure).
 */
import fs from "node:fs";
import path from "node:path";
import { parserFailed, parserMessage, runParser } from "../apparmor/runner.js";
import type { Layout } from "../layout.js";

/**
 * The feature set to compile against (`-M`): the configured one; none on this host when its kernel
 * offers AppArmor (the parser asks it); else the feature set Debian's apparmor package ships.
 */
export function compileFeatures(layout: Layout): string | undefined {
  if (layout.featuresFile !== "") return layout.host(layout.featuresFile);
  if (layout.isRealRoot && fs.statSync(`${layout.securityfsDir}/features`, { throwIfNoEntry: false })?.isDirectory()) return undefined;
  return fs.existsSync(layout.fallbackFeaturesFile) ? layout.fallbackFeaturesFile : undefined;
}

export interface CompileFailure {
  /** The profile as named (relative to the AppArmor directory). */
  profile: string;
  /** The parser's explanation, one line. */
  message: string;
}

/**
 * Compile `profiles` (names relative to `aaDir`, a real path) with includes from `aaDir` only.
 * Returns the ones that failed, in order.
 */
export async function compileProfiles(parser: string, aaDir: string, profiles: readonly string[], features: string | undefined): Promise<CompileFailure[]> {
  const failed: CompileFailure[] = [];
  for (const profile of profiles) {
    const args = ["-QK", ...(features ? ["-M", features] : []), "-I", aaDir, "--base", aaDir, path.join(aaDir, profile)];
    const r = await runParser(parser, args, { cwd: aaDir });
    if (parserFailed(r)) failed.push({ profile, message: parserMessage(r) });
  }
  return failed;
}
