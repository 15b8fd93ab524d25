import fs from "node:fs";
import type { Config } from "../config.js";
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

export const KERNEL_ENABLED_FILE = "/sys/module/apparmor/parameters/enabled";
/** Shipped by Debian's apparmor package: a feature set to compile against without a kernel. */
export const FALLBACK_FEATURES_FILE = "/usr/share/apparmor-features/features";

export function detectEnvironment(layout: Layout, config: Config): ApparmorEnvironment {
  const kernelEnabled = readsYes(layout.host(KERNEL_ENABLED_FILE)) && isDir(layout.host(layout.securityfsDir));
  let target: LoadTarget | undefined;
  if (config.subdomainfs !== "") {
    target = { kind: "subdomainfs", dir: layout.host(config.subdomainfs), passDir: true };
  } else if (kernelEnabled) {
    target = { kind: "kernel", dir: layout.host(layout.securityfsDir), passDir: !layout.isRealRoot };
  }
  let featuresFile: string | undefined;
  if (config.featuresFile !== "") featuresFile = layout.host(config.featuresFile);
  else if (target?.kind !== "kernel" && fs.existsSync(layout.host(FALLBACK_FEATURES_FILE))) {
    featuresFile = layout.host(FALLBACK_FEATURES_FILE);
  }
  return {
    kernelEnabled,
    ...(target ? { target } : {}),
    ...(featuresFile ? { featuresFile } : {}),
    parserPresent: isExecutable(config.parser),
    cacheDir: layout.host(config.cacheDir),
    baseDir: layout.host(config.apparmorDir),
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
