import fs from "node:fs";
import type { Layout } from "../layout.js";
import { isFileNameComponent } from "../names.js";

/**
 * A guest's QEMU process as the host shows it: the pid libvirt writes to
 * `/run/libvirt/qemu/<name>.pid` and the AppArmor label the kernel gives that process. Read by
 * the started check, the exclusive-access check and status/doctor, all through the layout.
 */

/** The pid in a pid file's text: a decimal number, no sign, no leading zero (libvirt writes "N\n"). */
export function parsePid(text: string): number | undefined {
  const t = text.trim();
  return /^[1-9][0-9]{0,9}$/.test(t) ? Number(t) : undefined;
}

/** The pid in libvirt's pid file for `name`, when it names a live process. */
export function runningPid(layout: Layout, name: string): number | undefined {
  if (!isFileNameComponent(name)) return undefined;
  let pid: number | undefined;
  try {
    pid = parsePid(fs.readFileSync(layout.host(layout.libvirtPidFile(name)), "utf8"));
  } catch {
    return undefined;
  }
  return pid !== undefined && fs.existsSync(layout.host(layout.procPidDir(pid))) ? pid : undefined;
}

/**
 * The label of a process ("libvirt-<uuid> (enforce)", "unconfined", ...) and the attr file it was
 * read from: the LSM-specific file first, then the shared one. Undefined when neither can be read.
 */
export function readProcessLabel(layout: Layout, pid: number): { file: string; label: string } | undefined {
  for (const file of layout.apparmorLabelFiles(pid)) {
    try {
      return { file, label: fs.readFileSync(layout.host(file), "utf8").replace(/\0/g, "").trim() };
    } catch {
      // try the next
    }
  }
  return undefined;
}
