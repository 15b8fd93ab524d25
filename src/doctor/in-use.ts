/**
 * What `prune` must not touch, read from the host (the edge; store/prune.ts decides on these
 * facts): guests that run or are being started, tasks that run under a per-guest profile, and
 * every file under libvirt's definitions directory that names a UUID (review19 F6, F11).
 */
import fs from "node:fs";
import { listDefined, statusUuid } from "../adopted/defined.js";
import { PREPARE_GRACE_MS, holderStatus } from "../hook/exclusive.js";
import type { Layout } from "../layout.js";
import { isFileNameComponent } from "../names.js";
import { guestLockHeld } from "../store/lock.js";
import type { GuestFiles } from "../store/leftovers.js";
import { runningGuests } from "./confinement.js";

const RUNS = "a guest with this UUID runs (it is never touched while its QEMU runs)";
/** A file bigger than this under the definitions directory is not read: it counts as unreadable. */
const MAX_BYTES = 16 * 1024 * 1024;
const LABEL_UUID = /libvirt-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![0-9a-f])/g;

/**
 * Every task's AppArmor label: /proc/<pid>/attr/… and /proc/<pid>/task/<tid>/attr/… (a thread
 * can carry another label than its process: change_hat, or an exec racing the scan). Each label
 * with the pid/tid it was read from.
 */
export function taskLabels(layout: Layout): { task: string; label: string }[] {
  const out: { task: string; label: string }[] = [];
  const proc = layout.host(layout.procDir);
  let pids: string[];
  try {
    pids = fs.readdirSync(proc);
  } catch {
    return out;
  }
  const read = (dir: string, task: string) => {
    for (const f of ["attr/apparmor/current", "attr/current"]) {
      try {
        out.push({ task, label: fs.readFileSync(`${dir}/${f}`, "utf8").replace(/\0/g, "").trim() });
        return;
      } catch {
        // next
      }
    }
  };
  for (const pid of pids) {
    if (!/^[1-9][0-9]*$/.test(pid)) continue;
    read(`${proc}/${pid}`, pid);
    let tids: string[] = [];
    try {
      tids = fs.readdirSync(`${proc}/${pid}/task`);
    } catch {
      // the process ended, or no task dir (a stand-in /proc)
    }
    for (const tid of tids) if (/^[1-9][0-9]*$/.test(tid) && tid !== pid) read(`${proc}/${pid}/task/${tid}`, tid);
  }
  return out;
}

/** The tasks whose label names this profile (or a child `profile//hat`, in any mode). */
export function tasksUnder(layout: Layout, profileName: string): string[] {
  return taskLabels(layout)
    .filter(({ label }) => [...label.matchAll(LABEL_UUID)].some((m) => `libvirt-${m[1]}` === profileName))
    .map((t) => t.task);
}

/**
 * UUIDs that must be kept, with why: a live QEMU (libvirt's pid file), a task labelled with the
 * profile, libvirt's status XML of an active domain, a record inside the hook's prepare window
 * (hook/exclusive.ts PREPARE_GRACE_MS, the same rule the exclusive-write check uses), or a guest
 * lock some hook holds. `ownLock`: the UUID whose lock the caller holds itself.
 */
export function uuidsInUse(layout: Layout, guests: readonly GuestFiles[], now: number, ownLock?: string): Map<string, string> {
  const inUse = new Map<string, string>();
  const add = (uuid: string, why: string) => {
    if (!inUse.has(uuid)) inUse.set(uuid, why);
  };
  for (const r of runningGuests(layout)) if (r.uuid !== undefined) add(r.uuid, RUNS);
  for (const { label } of taskLabels(layout)) for (const m of label.matchAll(LABEL_UUID)) add(m[1]!, RUNS);
  // libvirt keeps /run/libvirt/qemu/<name>.xml from before the hook's prepare until after release
  // (src/qemu/qemu_process.c qemuProcessStart/qemuProcessStop); one that names no UUID we can read
  // is compared as text.
  const run = filesNaming(layout, layout.libvirtRunDir, (f) => f.endsWith(".xml"), false);
  for (const g of guests) {
    const names = [g.state?.name, g.kept?.name].filter((n): n is string => n !== undefined && isFileNameComponent(n));
    for (const name of names) {
      const status = layout.libvirtStatusXml(name);
      if (!fs.existsSync(layout.host(status))) continue;
      const su = statusUuid(layout, name);
      if (su === undefined || su === g.uuid) add(g.uuid, `starting or running: libvirt's status XML ${status} exists`);
    }
    const named = run.naming(g.uuid);
    if (named !== undefined) add(g.uuid, `starting or running: libvirt's status XML ${named} names this UUID`);
    if (g.state !== undefined && holderStatus(layout, g.state, now) === "starting") {
      add(
        g.uuid,
        `starting: its record is from a prepare less than ${PREPARE_GRACE_MS / 60000} minutes ago (${g.state.prepared}); the hook holds its claims that long before QEMU runs`,
      );
    }
    if (g.uuid !== ownLock && guestLockHeld(g.paths.lock)) add(g.uuid, `starting: a hook holds its lock ${layout.lockDir}/${g.uuid}.lock`);
  }
  for (const r of run.unreadable) for (const g of guests) add(g.uuid, `cannot tell whether it runs: cannot read ${r}`);
  return inUse;
}

/**
 * UUIDs whose guest runs or is being started (the same facts as uuidsInUse): what `status --all`
 * and `doctor` show as running rather than orphaned. A transient guest (an incoming migration,
 * `virsh create`) is defined nowhere while libvirt starts it, yet it is no left-over.
 */
export function activeUuids(layout: Layout, guests: readonly GuestFiles[], now: number): Set<string> {
  return new Set(uuidsInUse(layout, guests, now).keys());
}

/** Lower-case hex digits of a text after its numeric character references, the only digits libvirt's UUID parser reads. */
function hexDigits(text: string): string {
  return text
    .replace(/&#x([0-9a-fA-F]{1,6});/g, (_, h: string) => String.fromCodePoint(Math.min(parseInt(h, 16), 0x10ffff)))
    .replace(/&#([0-9]{1,7});/g, (_, d: string) => String.fromCodePoint(Math.min(parseInt(d, 10), 0x10ffff)))
    .toLowerCase()
    .replace(/[^0-9a-f]/g, "");
}

export interface FilesNaming {
  /** The first file whose text names this UUID (in any spelling: dashes, case, character references, split by markup). */
  naming(uuid: string): string | undefined;
  /** Files that could not be read ("<file> (<cause>)"): they may name any UUID. */
  unreadable: string[];
}

/** Every regular file under `dir` (host path shown), read as text, for UUIDs it may name. */
export function filesNaming(layout: Layout, dir: string, want: (name: string) => boolean, recursive: boolean): FilesNaming {
  const texts: { file: string; hex: string }[] = [];
  const unreadable: string[] = [];
  const walk = (d: string, depth: number) => {
    let names: string[];
    try {
      names = fs.readdirSync(layout.host(d)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") unreadable.push(`${d} (${(err as Error).message})`);
      return;
    }
    for (const n of names) {
      const file = `${d}/${n}`;
      let st: fs.Stats;
      try {
        st = fs.statSync(layout.host(file));
      } catch {
        continue; // a dangling link (autostart of a removed domain) names nothing
      }
      if (st.isDirectory()) {
        if (recursive && depth < 4) walk(file, depth + 1);
        continue;
      }
      if (!st.isFile() || !want(n)) continue;
      if (st.size > MAX_BYTES) {
        unreadable.push(`${file} (larger than ${MAX_BYTES} bytes)`);
        continue;
      }
      try {
        texts.push({ file, hex: hexDigits(fs.readFileSync(layout.host(file), "latin1")) });
      } catch (err) {
        unreadable.push(`${file} (${(err as Error).message})`);
      }
    }
  };
  walk(dir, 0);
  return { naming: (uuid) => texts.find((t) => t.hex.includes(uuid.replace(/-/g, "")))?.file, unreadable };
}

/**
 * What libvirt may define: the UUIDs our scanner reads from /etc/libvirt/qemu/*.xml, and every
 * file under that directory that names a UUID as text (a definition our scanner refuses, a file
 * libvirt is rewriting) — such a UUID counts as defined (review19 F11).
 */
export function definitions(layout: Layout): { defined: Set<string>; named: FilesNaming } {
  return {
    defined: new Set(listDefined(layout).map((d) => d.uuid)),
    named: filesNaming(layout, layout.libvirtDomainsDir, () => true, true),
  };
}
