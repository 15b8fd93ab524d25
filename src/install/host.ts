/**
 * What the installer (and doctor) learn about the host: which security driver libvirt's QEMU
 * driver uses, whether the kernel has AppArmor, and from that the attach mode that confines
 * guests on this host. Every path is read through the layout (`--root DIR`); nothing is run.
 */
import fs from "node:fs";
import type { AttachMode } from "../attach/index.js";
import type { Layout } from "../layout.js";

/** `security_driver` from qemu.conf: the listed drivers, or undefined when not set (last assignment wins). */
export function securityDrivers(text: string): string[] | undefined {
  let found: string[] | undefined;
  for (const line of text.split("\n")) {
    const m = /^\s*security_driver\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) continue;
    found = [...m[1]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]!);
  }
  return found;
}

export interface SecurityDriverFacts {
  /** What qemu.conf says; undefined when it sets nothing (or does not exist). */
  configured: string[] | undefined;
  /** /sys/module/apparmor/parameters/enabled says Y. */
  kernelAppArmor: boolean;
  /**
   * The driver libvirt really uses for QEMU: the configured one; when unset, libvirt takes the
   * first driver the host supports, which on a Debian libvirt is AppArmor when the kernel has it
   * and none otherwise. "other": a driver virt-aa-hook does not pair with (selinux, ...).
   */
  effective: "apparmor" | "none" | "other";
  /** `security_driver = "apparmor"` / `security_driver unset, kernel AppArmor on → apparmor` */
  describe: string;
}

export function readSecurityDriver(layout: Layout): SecurityDriverFacts {
  let conf = "";
  try {
    conf = fs.readFileSync(layout.host(layout.qemuConf), "utf8");
  } catch {
    // No qemu.conf: libvirt's defaults, i.e. unset.
  }
  const configured = securityDrivers(conf);
  const kernelAppArmor = kernelHasAppArmor(layout);
  let effective: SecurityDriverFacts["effective"];
  let describe: string;
  if (configured === undefined) {
    effective = kernelAppArmor ? "apparmor" : "none";
    describe = `${layout.qemuConf}: security_driver unset, kernel AppArmor ${kernelAppArmor ? "on" : "off"} → ${effective}`;
  } else {
    if (configured.includes("apparmor")) effective = "apparmor";
    else if (configured.every((d) => d === "none")) effective = "none";
    else effective = "other";
    describe = `${layout.qemuConf}: security_driver = ${JSON.stringify(configured.length === 1 ? configured[0] : configured)}`;
  }
  return { configured, kernelAppArmor, effective, describe };
}

export function kernelHasAppArmor(layout: Layout): boolean {
  try {
    return fs.readFileSync(layout.host(layout.apparmorEnabledFile), "utf8").trim().toUpperCase().startsWith("Y");
  } catch {
    return false;
  }
}

export interface AttachChoice {
  attach: AttachMode;
  startedCheck: "enforce" | "warn";
  /** One line: why this mode. */
  reason: string;
}

/**
 * The attach mode that matches libvirt's security driver:
 * - apparmor → helper: libvirt's own driver keeps labelling every domain dynamically, and the
 *   generator it runs for each start, hotplug, media change, snapshot, block job and restore
 *   (/usr/lib/libvirt/virt-aa-helper) is diverted to ours; no domain needs adopting. Where that
 *   helper cannot be diverted (`helper.ok` false: no such program, no dpkg) → seclabel: libvirt's
 *   driver makes the transition to the static label we give adopted domains;
 * - none → wrapper: nothing in libvirt touches AppArmor; the emulator wrapper asks for the
 *   transition when it execs QEMU;
 * - anything else (selinux, ...) → none: virt-aa-hook cannot confine QEMU next to that driver;
 *   the installer says so and doctor fails until the admin decides.
 * started_check is enforce whenever a mode is configured: a QEMU outside its profile then never runs.
 */
export function chooseAttach(driver: SecurityDriverFacts, helper: { ok: true } | { ok: false; why: string }): AttachChoice {
  switch (driver.effective) {
    case "apparmor":
      return helper.ok
        ? { attach: "helper", startedCheck: "enforce", reason: `${driver.describe} → attach = "helper"` }
        : { attach: "seclabel", startedCheck: "enforce", reason: `${driver.describe}, but ${helper.why} (no virt-aa-helper to divert) → attach = "seclabel"` };
    case "none":
      return { attach: "wrapper", startedCheck: "enforce", reason: `${driver.describe} → attach = "wrapper"` };
    case "other":
      return {
        attach: "none",
        startedCheck: "warn",
        reason: `${driver.describe} is neither "apparmor" nor "none" → attach = "none" (virt-aa-hook cannot attach QEMU next to that driver)`,
      };
  }
}

/** libvirt runs every hook in /etc/libvirt/hooks/qemu.d/ since 6.5; older ones run only hooks/qemu. */
export function hasHookDirs(libvirtVersion: string): boolean {
  const [major = 0, minor = 0] = libvirtVersion.split(".").map(Number);
  return major > 6 || (major === 6 && minor >= 5);
}
