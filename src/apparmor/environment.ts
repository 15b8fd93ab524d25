import fs from "node:fs";
import type { Layout } from "../layout.js";

/**
 * What this host offers for loading profiles, worked out from the config and the (root-mapped)
 * filesystem. No program is run: detection costs a few stat() calls.
 */
export interface ApparmorEnvironment {
  /** /sys/module/apparmor/parameters/enabled says Y and securityfs is mounted. */
  kernelEnabled: boolean;
  /** Where profiles are loaded, or undefined when there is nowhere to load them. */
  target?: LoadTarget;
  /** Real path passed as `-M`, or undefined to let the parser ask the kernel. */
  featuresFile?: string;
  parserPresent: boolean;
  /** Real path of the parser cache directory. */
  cacheDir: string;
  /** Real path of the include base (`--base`). */
  baseDir: string;
}

export interface LoadTarget {
  kind: "kernel" | "subdomainfs";
  /** Real path of the apparmor filesystem; passed as `--subdomainfs` unless it is the kernel's own. */
  dir: string;
  /** Whether `--subdomainfs dir` must be passed (not when it is the real /sys/kernel/security/apparmor). */
  passDir: boolean;
}

/** Every location comes from `layout`, built from the config (Layout.from). */
export function detectEnvironment(layout: Layout): ApparmorEnvironment {
  const kernelEnabled = readsYes(layout.host(layout.apparmorEnabledFile)) && isDir(layout.host(layout.securityfsDir));
  let target: LoadTarget | undefined;
  if (layout.subdomainfs !== "") {
    target = { kind: "subdomainfs", dir: layout.host(layout.subdomainfs), passDir: true };
  } else if (kernelEnabled) {
    target = { kind: "kernel", dir: layout.host(layout.securityfsDir), passDir: !layout.isRealRoot };
  }
  let featuresFile: string | undefined;
  if (layout.featuresFile !== "") featuresFile = layout.host(layout.featuresFile);
  else if (target?.kind !== "kernel" && fs.existsSync(layout.host(layout.fallbackFeaturesFile))) {
    featuresFile = layout.host(layout.fallbackFeaturesFile);
  }
  return {
    kernelEnabled,
    ...(target ? { target } : {}),
    ...(featuresFile ? { featuresFile } : {}),
    parserPresent: isExecutable(layout.parser),
    cacheDir: layout.host(layout.cacheDir),
    baseDir: layout.host(layout.apparmorDir),
  };
}

function readsYes(file: string): boolean {
  try {
    return fs.readFileSync(file, "utf8").trim().toUpperCase().startsWith("Y");
  } catch {
    return false;
  }
}

function isDir(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
