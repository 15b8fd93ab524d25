import fs from "node:fs";

/**
 * Profiles the kernel has loaded, from `<securityfs>/profiles` ("name (mode)" per line).
 * Returns undefined when the list cannot be read (no kernel, or a --subdomainfs directory that
 * has no such file): "unknown", which callers treat as "load it to be sure".
 */
export function loadedProfiles(apparmorFsDir: string): Map<string, string> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`${apparmorFsDir}/profiles`, "utf8");
  } catch {
    return undefined;
  }
  const result = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^(.*) \(([a-z_-]+)\)$/.exec(line);
    if (m) result.set(m[1]!, m[2]!);
  }
  return result;
}

/** "enforce" / "complain" / ... when loaded, null when not loaded, undefined when unknown. */
export function profileMode(apparmorFsDir: string, profileName: string): string | null | undefined {
  const all = loadedProfiles(apparmorFsDir);
  if (!all) return undefined;
  return all.get(profileName) ?? null;
}
