/**
 * attach = "helper": libvirt's `/usr/lib/libvirt/virt-aa-helper` diverted with dpkg-divert to
 * `virt-aa-helper.real` and replaced by a link to our launcher. What dpkg records (its
 * `diversions` file under the root: three lines per diversion, the diverted path, where it was
 * diverted to, and the package, `:` for a local one) is read here; changing it is left to
 * dpkg-divert itself (apply.ts), by absolute path.
 */
import fs from "node:fs";
import type { Layout } from "../layout.js";

export interface Diversion {
  from: string;
  to: string;
  /** The package whose diversion it is; ":" for a local diversion. */
  package: string;
}

/** Every diversion in a dpkg `diversions` file (a truncated last triple is ignored). */
export function parseDiversions(text: string): Diversion[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const out: Diversion[] = [];
  for (let i = 0; i + 2 < lines.length; i += 3) out.push({ from: lines[i]!, to: lines[i + 1]!, package: lines[i + 2]! });
  return out;
}

/** The diversion of `path` in `text`, if any. */
export function diversionOf(text: string, path: string): Diversion | undefined {
  return parseDiversions(text).find((d) => d.from === path);
}

/** Whether the diversion is the one install makes. */
export function isOurDiversion(d: Diversion | undefined, layout: Pick<Layout, "libvirtHelperReal" | "divertPackage">): boolean {
  return d !== undefined && d.to === layout.libvirtHelperReal && d.package === layout.divertPackage;
}

/** What the host under the layout says about libvirt's virt-aa-helper (doctor, the installer's choice). */
export interface HelperState {
  /** dpkg's diversion of /usr/lib/libvirt/virt-aa-helper, if any. */
  diversion?: Diversion;
  /** The diversions file could be read (absent: no dpkg under this root). */
  dpkgKnown: boolean;
  /** What is at /usr/lib/libvirt/virt-aa-helper: a file, a link (with its target), nothing. */
  helper: { kind: "file" } | { kind: "link"; target: string } | { kind: "other" } | undefined;
  /** virt-aa-helper.real is a file. */
  realIsFile: boolean;
  /** Our launcher is an executable file. */
  launcherOk: boolean;
}

export function readHelperState(layout: Layout): HelperState {
  let text: string | undefined;
  try {
    text = fs.readFileSync(layout.host(layout.dpkgDiversions), "utf8");
  } catch {
    text = undefined;
  }
  const diversion = text === undefined ? undefined : diversionOf(text, layout.libvirtHelper);
  const st = fs.lstatSync(layout.host(layout.libvirtHelper), { throwIfNoEntry: false });
  const helper: HelperState["helper"] = !st
    ? undefined
    : st.isSymbolicLink()
      ? { kind: "link", target: fs.readlinkSync(layout.host(layout.libvirtHelper)) }
      : st.isFile()
        ? { kind: "file" }
        : { kind: "other" };
  let launcherOk = false;
  try {
    fs.accessSync(layout.host(layout.helperLauncher), fs.constants.X_OK);
    launcherOk = fs.statSync(layout.host(layout.helperLauncher)).isFile();
  } catch {
    launcherOk = false;
  }
  return {
    ...(diversion ? { diversion } : {}),
    dpkgKnown: text !== undefined,
    helper,
    realIsFile: fs.statSync(layout.host(layout.libvirtHelperReal), { throwIfNoEntry: false })?.isFile() ?? false,
    launcherOk,
  };
}

/**
 * The problems with helper mode's diversion as install leaves it: ours, to virt-aa-helper.real,
 * the original there, the link to our launcher in its place, the launcher there. Empty when all is well.
 */
export function helperProblems(layout: Layout, s: HelperState = readHelperState(layout)): string[] {
  const problems: string[] = [];
  if (!s.dpkgKnown) problems.push(`${layout.dpkgDiversions} missing: no dpkg database, so no diversion of ${layout.libvirtHelper}`);
  else if (!s.diversion) problems.push(`${layout.libvirtHelper} is not diverted (dpkg-divert --list shows no diversion of it)`);
  else if (!isOurDiversion(s.diversion, layout)) {
    problems.push(`${layout.libvirtHelper} is diverted to ${s.diversion.to} by ${s.diversion.package === ":" ? "a local diversion" : s.diversion.package}, not to ${layout.libvirtHelperReal} by ${layout.divertPackage}`);
  }
  if (s.helper?.kind !== "link" || s.helper.target !== layout.helperLauncher) {
    const what = s.helper === undefined ? "missing" : s.helper.kind === "link" ? `a link to ${s.helper.target}` : "not a link (libvirt's own program?)";
    problems.push(`${layout.libvirtHelper} is ${what}, not a link to ${layout.helperLauncher}`);
  }
  if (!s.launcherOk) problems.push(`${layout.helperLauncher} missing or not executable`);
  if (s.diversion && isOurDiversion(s.diversion, layout) && !s.realIsFile) problems.push(`${layout.libvirtHelperReal} (libvirt's own helper) missing`);
  return problems;
}

/**
 * Can install set up helper mode on this root? libvirt's helper is there (or already diverted by
 * us) and this machine has dpkg-divert and the root a dpkg database. `why` says what is missing.
 */
export function helperDivertable(layout: Layout): { ok: true } | { ok: false; why: string } {
  const s = readHelperState(layout);
  if (isOurDiversion(s.diversion, layout)) return { ok: true };
  if (s.helper?.kind !== "file") return { ok: false, why: `${layout.libvirtHelper} is ${s.helper === undefined ? "missing" : "not a file"}` };
  if (!s.dpkgKnown) return { ok: false, why: `${layout.dpkgDiversions} missing (no dpkg)` };
  try {
    fs.accessSync(layout.dpkgDivert, fs.constants.X_OK);
  } catch {
    return { ok: false, why: `${layout.dpkgDivert} missing` };
  }
  if (s.diversion) return { ok: false, why: `${layout.libvirtHelper} is already diverted to ${s.diversion.to} by ${s.diversion.package}` };
  return { ok: true };
}
