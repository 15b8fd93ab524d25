/**
 * What each running guest's QEMU really runs as, read from the kernel: the pid from libvirt's
 * `/run/libvirt/qemu/<name>.pid`, the label from `/proc/<pid>/attr/apparmor/current` (or
 * `attr/current` on older kernels), everything under the layout. This, not our records, is what
 * status shows and doctor judges.
 */
import fs from "node:fs";
import { statusUuid } from "../adopted/defined.js";
import { readProcessLabel, runningPid } from "../host/qemu-process.js";
import type { Layout } from "../layout.js";
import { listStates } from "../store/state.js";
import { isProfileName } from "../names.js";

/**
 * confined: QEMU in its own profile libvirt-<uuid>, enforcing, a profile virt-aa-hook manages;
 * by libvirt: in libvirt-<uuid>, enforcing, a profile libvirt's own driver made (no record of ours);
 * complain: in libvirt-<uuid> but only complaining; unconfined: no profile at all;
 * other profile: some other label (another guest's profile, libvirtd's, ...);
 * unknown: the label cannot be read.
 */
export type Confinement = "confined" | "by libvirt" | "complain" | "unconfined" | "other profile" | "unknown";

export interface RunningGuest {
  name: string;
  pid: number;
  /** From libvirt's status XML, else from our record by name. */
  uuid?: string;
  /** The label as the kernel gives it, e.g. "libvirt-<uuid> (enforce)". */
  label?: string;
  confinement: Confinement;
}

export function judge(label: string | undefined, uuid: string | undefined, managed: boolean): Confinement {
  if (label === undefined) return "unknown";
  if (label === "unconfined") return "unconfined";
  const m = /^(.*) \(([a-z_-]+)\)$/.exec(label);
  const profile = m ? m[1]! : label;
  const mode = m ? m[2]! : "enforce";
  const own = uuid !== undefined ? profile === `libvirt-${uuid}` : isProfileName(profile);
  if (!own) return "other profile";
  if (mode === "complain") return "complain";
  if (mode !== "enforce") return "other profile";
  return managed ? "confined" : "by libvirt";
}

/** Every guest libvirt runs (a pid file naming a live process), sorted by name. */
export function runningGuests(layout: Layout): RunningGuest[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(layout.host(layout.libvirtRunDir));
  } catch {
    return [];
  }
  const states = listStates(layout.host(layout.stateDir));
  const out: RunningGuest[] = [];
  for (const e of entries.sort()) {
    if (!e.endsWith(".pid") || e.startsWith(".")) continue;
    const name = e.slice(0, -4);
    // libvirt's QEMU driver locks its state directory with driver.pid, libvirtd's own pid
    // (src/qemu/qemu_driver.c: qemuStateInitialize, virPidFileAcquire(cfg->stateDir, "driver", ...)).
    // A running domain has its status XML beside its pid file; the lock has none.
    if (name === "driver" && !fs.existsSync(layout.host(`${layout.libvirtRunDir}/driver.xml`))) continue;
    const pid = runningPid(layout, name);
    if (pid === undefined) continue;
    const byName = states.filter((s) => s.name === name);
    const uuid = statusUuid(layout, name) ?? (byName.length === 1 ? byName[0]!.uuid : undefined);
    const managed = uuid !== undefined && states.some((s) => s.uuid === uuid);
    const label = readProcessLabel(layout, pid)?.label;
    out.push({ name, pid, ...(uuid ? { uuid } : {}), ...(label !== undefined ? { label } : {}), confinement: judge(label, uuid, managed) });
  }
  return out;
}
