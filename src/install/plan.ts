/**
 * The installer's decisions, made before anything is touched: which directories to create, which
 * files to write, link, back up or move aside, and what the manifest records for uninstall. Pure
 * over a view of the host (`HostView`): it reads, never writes, and a refusal (something in the
 * way that is not ours) is found here, so a refused install changes nothing.
 *
 * The manifest (`<state>/install-manifest`) has one entry a line, in the order things happened:
 *   created-dir D   a directory made by the installer (removed when empty)
 *   created P       a file or link that was not there (removed, unless edited since: pristine/)
 *   modified P      a file that was there, backed up to backup/P first (restored from it)
 *   moved A B       a foreign hook moved aside (moved back)
 *   diverted P D    P diverted to D with `dpkg-divert --package virt-aa-hook --rename` (attach =
 *                   "helper"; removed with `dpkg-divert --rename --remove`, which moves D back to P)
 */
import path from "node:path";
import { diversionOf } from "./divert.js";

/** The marks around our block in libvirtd's local override. */
export const BEGIN_MARK = "# BEGIN virt-aa-hook";
export const END_MARK = "# END virt-aa-hook";

/** What is at a host path, as lstat sees it; undefined when nothing is there. */
export interface HostNode {
  kind: "file" | "link" | "dir" | "other";
  /** Permission bits (files). */
  mode: number;
}

export interface HostView {
  stat(hostPath: string): HostNode | undefined;
  read(hostPath: string): Buffer;
  readlink(hostPath: string): string;
  /** Names in a directory. */
  list(hostPath: string): string[];
}

/** One thing the installer does; each is said ("would ..." in a dry run) and may be recorded. */
export type Step =
  | { do: "mkdir"; path: string }
  /** Create the manifest (if absent) and record what was done before it existed. */
  | { do: "manifest" }
  | { do: "backup"; path: string; to: string }
  | { do: "record"; entry: string }
  | { do: "write"; path: string; content: Buffer; mode: number }
  /** A copy of what was written where the admin may edit, so uninstall can tell edited from not. */
  | { do: "pristine"; path: string; copy: string; content: Buffer }
  | { do: "link"; path: string; target: string }
  | { do: "move"; from: string; to: string; said: string }
  /** Only said: nothing changes. */
  | { do: "note"; text: string }
  | { do: "remove"; path: string }
  | { do: "rmdir"; path: string }
  /** rm -rf of each path (said once). */
  | { do: "remove-tree"; paths: string[]; said: string }
  | { do: "restore"; path: string; from: string }
  | { do: "unblock"; path: string; content: Buffer; mode: number }
  /** dpkg-divert --package PKG --rename --divert TO --add PATH (recorded after it succeeded, unless the manifest has it already). */
  | { do: "divert"; path: string; to: string; package: string; record: boolean }
  /** dpkg-divert --package PKG --rename --divert TO --remove PATH. */
  | { do: "undivert"; path: string; to: string; package: string }
  /** Unload a guest's profile (by name) from the load target. */
  | { do: "unload"; profile: string };

/** The line a step prints (without the program prefix), or undefined for silent steps. */
export function describeStep(step: Step, dryRun: boolean): string | undefined {
  const act = (what: string) => (dryRun ? `would ${what}` : what);
  switch (step.do) {
    case "mkdir":
      return act(`create directory ${step.path}`);
    case "backup":
      return act(`back up ${step.path} to ${step.to}`);
    case "write":
      return act(`install ${step.path} (mode 0${step.mode.toString(8)})`);
    case "link":
      return act(`link ${step.path} -> ${step.target}`);
    case "move":
      return act(step.said);
    case "remove":
      return act(`remove ${step.path}`);
    case "rmdir":
      return act(`remove directory ${step.path}`);
    case "remove-tree":
      return act(step.said);
    case "restore":
      return act(`restore ${step.path} from ${step.from}`);
    case "unblock":
      return act(`remove the virt-aa-hook block from ${step.path} (keeping lines added since install)`);
    case "divert":
      return act(`divert ${step.path} to ${step.to} (dpkg-divert --package ${step.package} --rename --add)`);
    case "undivert":
      return act(`remove the diversion of ${step.path}: ${step.to} back to ${step.path} (dpkg-divert --package ${step.package} --rename --remove)`);
    case "unload":
      return act(`unload ${step.profile}`);
    case "note":
      return step.text;
    case "manifest":
    case "record":
    case "pristine":
      return undefined;
  }
}

/** A refusal found while planning: nothing has been changed. */
export class Refusal extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Refusal";
  }
}

/** A file to install and how. */
export interface Put {
  path: string;
  content: Buffer;
  mode: number;
}

/** Everything install puts on the host, computed from the source tree and the host (contents.ts). */
export interface Wanted {
  stateDir: string;
  manifest: string;
  backupDir: string;
  pristineDir: string;
  /** Always ours, rewritten when they differ: bundle, code caches, launcher, wrapper. */
  lib: Put[];
  wrapperBin: string;
  /** Emulator names in the emulator directory, each gets a link to the wrapper. */
  emulators: string[];
  emulatorDir: string;
  /** Installed only where there is none (the admin's then). */
  config: Put;
  /** libvirt's template and abstraction, installed only where the host has none. */
  libvirtFallbacks: Put[];
  /** Ours, derived from the host at every run: abstraction, template; and the command on PATH. */
  derived: Put[];
  /** The systemd drop-in, when the host has /etc/systemd/system. */
  dropin?: Put;
  /** The hook's own profile and libvirtd's local override with our block. */
  apparmor: Put[];
  hook: {
    /** libvirt >= 6.5: qemu.d/ exists. */
    dirs: boolean;
    libvirtVersion: string;
    launcher: string;
    dLink: string;
    main: string;
    chained: string;
    chain: Buffer;
  };
  /** Where a command of ours must be, and the line that marks it ours. */
  command: { path: string; mark: RegExp };
  /**
   * attach = "helper" (`active`): libvirt's virt-aa-helper `path` diverted to `to` and replaced
   * by a link to our `launcher`. `diversions` is dpkg's record (host path). Present in every mode
   * so a diversion made earlier is noticed when the config no longer says helper.
   */
  helper?: { active: boolean; path: string; to: string; package: string; launcher: string; diversions: string; configPath: string; attach: string };
  /** The network hook, when the source tree has its launcher: linked from network.d/ (libvirt >= 6.5) or as `main`. */
  network?: { dirs: boolean; libvirtVersion: string; launcher: string; dLink: string; main: string };
}

export interface InstallPlan {
  steps: Step[];
  changed: boolean;
  dropinChanged: boolean;
  configWritten: boolean;
}

/** What the manifest holds now (empty when there is none). */
export function readManifest(view: HostView, manifest: string): string[] {
  return view.stat(manifest)?.kind === "file" ? view.read(manifest).toString("utf8").split("\n").filter((l) => l !== "") : [];
}

/**
 * A view with the plan's own effects laid over the host, so later decisions see earlier ones
 * (a directory planned is not planned again; a hook moved aside is gone from its place).
 */
class Simulated {
  private over = new Map<string, { node?: HostNode; content?: Buffer; target?: string }>();
  constructor(private readonly view: HostView) {}
  stat(p: string): HostNode | undefined {
    const o = this.over.get(p);
    return o ? o.node : this.view.stat(p);
  }
  exists(p: string): boolean {
    return this.stat(p) !== undefined;
  }
  read(p: string): Buffer {
    const o = this.over.get(p);
    return o?.content ?? this.view.read(p);
  }
  readlink(p: string): string {
    const o = this.over.get(p);
    return o?.target ?? this.view.readlink(p);
  }
  set(p: string, node: HostNode | undefined, content?: Buffer, target?: string): void {
    this.over.set(p, { ...(node ? { node } : {}), ...(content ? { content } : {}), ...(target !== undefined ? { target } : {}) });
  }
}

export function planInstall(view: HostView, wanted: Wanted): InstallPlan {
  const sim = new Simulated(view);
  const steps: Step[] = [];
  const entries = new Set(readManifest(view, wanted.manifest));
  let changed = false;
  const act = (step: Step) => {
    changed = true;
    steps.push(step);
  };
  const record = (entry: string) => {
    entries.add(entry);
    steps.push({ do: "record", entry });
  };
  const ours = (p: string) => entries.has(`created ${p}`) || entries.has(`modified ${p}`);

  // Refusals first: a command of someone else's on PATH is never overwritten.
  const cmd = wanted.command.path;
  if (sim.exists(cmd) && !(sim.stat(cmd)?.kind === "file" && wanted.command.mark.test(sim.read(cmd).toString("utf8")))) {
    throw new Refusal(`${cmd} exists and is not virt-aa-hook's: move it away and run again`);
  }

  const ensureDir = (p: string): void => {
    if (sim.stat(p)?.kind === "dir" || p === "/") return;
    ensureDir(path.dirname(p));
    act({ do: "mkdir", path: p });
    entries.add(`created-dir ${p}`);
    sim.set(p, { kind: "dir", mode: 0o755 });
  };
  // Back up a file about to change for the first time; record what uninstall must undo.
  const takeOver = (p: string): void => {
    if (ours(p)) return;
    if (sim.exists(p)) {
      const to = `${wanted.backupDir}${p}`;
      ensureDir(path.dirname(to));
      act({ do: "backup", path: p, to });
      entries.add(`modified ${p}`);
    } else {
      record(`created ${p}`);
    }
  };
  const putFile = (put: Put): boolean => {
    const now = sim.stat(put.path);
    if (now?.kind === "file" && now.mode === put.mode && sim.read(put.path).equals(put.content)) return false;
    ensureDir(path.dirname(put.path));
    takeOver(put.path);
    act({ do: "write", path: put.path, content: put.content, mode: put.mode });
    sim.set(put.path, { kind: "file", mode: put.mode }, put.content);
    return true;
  };
  const putLink = (target: string, p: string): void => {
    if (sim.stat(p)?.kind === "link" && sim.readlink(p) === target) return;
    ensureDir(path.dirname(p));
    takeOver(p);
    act({ do: "link", path: p, target });
    sim.set(p, { kind: "link", mode: 0o777 }, undefined, target);
  };
  const putIfAbsent = (put: Put): void => {
    if (sim.exists(put.path)) {
      if (!ours(put.path)) steps.push({ do: "note", text: `kept existing ${put.path}` });
      return;
    }
    putFile(put);
    steps.push({ do: "pristine", path: put.path, copy: `${wanted.pristineDir}${put.path}`, content: put.content });
  };

  // The manifest first, so that everything after it is recorded as it happens.
  ensureDir(wanted.stateDir);
  steps.push({ do: "manifest" });

  for (const put of wanted.lib) putFile(put);
  ensureDir(wanted.wrapperBin);
  for (const emu of wanted.emulators) putLink("../qemu-wrapper", `${wanted.wrapperBin}/${emu}`);
  if (wanted.emulators.length === 0) {
    steps.push({ do: "note", text: `warning: no QEMU emulator in ${wanted.emulatorDir}: no wrapper links made (run again after installing QEMU)` });
  }
  const configWritten = !sim.exists(wanted.config.path);
  for (const put of [wanted.config, ...wanted.libvirtFallbacks]) putIfAbsent(put);
  for (const put of wanted.derived) putFile(put);
  const dropinChanged = wanted.dropin !== undefined && putFile(wanted.dropin);
  for (const put of wanted.apparmor) putFile(put);

  // The hook itself: a link to the launcher, so libvirtd's "/etc/libvirt/hooks/** rmix" never
  // matches it and the local override can send it to its own profile.
  const h = wanted.hook;
  const isOurHook = (p: string) => {
    const n = sim.stat(p);
    if (n?.kind === "link") return sim.readlink(p) === h.launcher;
    return n?.kind === "file" && /^# virt-aa-hook chain/m.test(sim.read(p).toString("utf8"));
  };
  const foreign = (p: string) => sim.exists(p) && !isOurHook(p);
  const chain: Put = { path: h.main, content: h.chain, mode: 0o755 };
  if (h.dirs) {
    if (foreign(h.dLink)) throw new Refusal(`${h.dLink} exists and is not virt-aa-hook's: move it away and run again`);
    putLink(h.launcher, h.dLink);
    if (foreign(h.main)) steps.push({ do: "note", text: `kept ${h.main} (not ours): libvirt ${h.libvirtVersion} runs it, then ${h.dLink}` });
  } else if (foreign(h.main)) {
    // libvirt < 6.5 runs this one hook only: move the foreign hook aside and chain it.
    if (sim.exists(h.chained)) throw new Refusal(`${h.chained} already exists: cannot move ${h.main} there`);
    act({ do: "move", from: h.main, to: h.chained, said: `move ${h.main} (not ours) to ${h.chained}; ${h.main} now runs it, then virt-aa-hook` });
    record(`moved ${h.main} ${h.chained}`);
    sim.set(h.chained, sim.stat(h.main));
    sim.set(h.main, undefined);
    putFile(chain);
  } else if (sim.exists(h.chained)) {
    putFile(chain);
  } else {
    putLink(h.launcher, h.main);
  }

  // libvirt's network hook: ours in network.d/ (libvirt >= 6.5 runs every program there after
  // `network`), else `network` itself when nothing is there. An admin's hook is never replaced.
  const n = wanted.network;
  if (n) {
    const isOurs = (p: string) => sim.stat(p)?.kind === "link" && sim.readlink(p) === n.launcher;
    const at = n.dirs ? n.dLink : n.main;
    if (sim.exists(at) && !isOurs(at)) {
      throw new Refusal(
        n.dirs
          ? `${at} exists and is not virt-aa-hook's: move it away and run again`
          : `${at} exists and is not virt-aa-hook's: libvirt ${n.libvirtVersion} runs only this one network hook, and virt-aa-hook does not replace an admin's (move it away, or upgrade to libvirt >= 6.5, which also runs ${n.dLink})`,
      );
    }
    putLink(n.launcher, at);
  }

  // attach = "helper": divert libvirt's virt-aa-helper to <path>.real and link ours in its place.
  const v = wanted.helper;
  if (v) {
    const dpkgText = sim.stat(v.diversions)?.kind === "file" ? sim.read(v.diversions).toString("utf8") : undefined;
    const diversion = dpkgText === undefined ? undefined : diversionOf(dpkgText, v.path);
    const ourDiversion = diversion !== undefined && diversion.to === v.to && diversion.package === v.package;
    const recorded = entries.has(`diverted ${v.path} ${v.to}`);
    if (!v.active) {
      if (recorded || ourDiversion) {
        throw new Refusal(
          `${v.configPath} says attach = "${v.attach}", but virt-aa-hook diverted ${v.path} for attach = "helper": run uninstall.sh (it puts libvirt's helper back), then install.sh`,
        );
      }
    } else {
      if (diversion !== undefined && !ourDiversion) {
        const by = diversion.package === ":" ? "a local diversion" : diversion.package;
        throw new Refusal(`${v.path} is already diverted to ${diversion.to} by ${by}: attach = "helper" cannot divert it to ${v.to}`);
      }
      if (!ourDiversion) {
        if (dpkgText === undefined) throw new Refusal(`${v.diversions} missing: attach = "helper" diverts ${v.path} with dpkg-divert, and this root has no dpkg database`);
        const now = sim.stat(v.path);
        if (now?.kind !== "file") {
          throw new Refusal(`${v.path} is ${now === undefined ? "missing" : "not a file"}: attach = "helper" needs libvirt's virt-aa-helper to divert (install libvirt-daemon-system, or set attach = "seclabel")`);
        }
        if (sim.exists(v.to)) throw new Refusal(`${v.to} already exists: cannot divert ${v.path} there`);
        act({ do: "divert", path: v.path, to: v.to, package: v.package, record: !recorded });
        entries.add(`diverted ${v.path} ${v.to}`);
        sim.set(v.to, now);
        sim.set(v.path, undefined);
      } else if (!recorded) {
        // Diverted by us but not in this manifest (a state directory removed by hand): record it,
        // so uninstall still puts libvirt's helper back.
        record(`diverted ${v.path} ${v.to}`);
      }
      // In its place, a link to our launcher (AppArmor sees the launcher's path: libvirtd's local
      // override sends it to the virt-aa-hook profile).
      if (!(sim.stat(v.path)?.kind === "link" && sim.readlink(v.path) === v.launcher)) {
        if (sim.exists(v.path) && !ours(v.path)) {
          throw new Refusal(`${v.path} is there although diverted to ${v.to} (not virt-aa-hook's): move it away and run again`);
        }
        putLink(v.launcher, v.path);
      }
    }
  }
  return { steps, changed, dropinChanged, configWritten };
}

/** What uninstall needs to know besides the manifest. */
export interface UninstallPaths {
  stateDir: string;
  manifest: string;
  backupDir: string;
  pristineDir: string;
  libvirtdLocal: string;
  dropin: string;
  /** The hook's run-time directories (parser cache, locks): never in the manifest. */
  runtimeDirs: readonly string[];
  /** dpkg's diversions file (host path) and the package our diversion is recorded under. */
  diversions: string;
  divertPackage: string;
  /**
   * Links install makes in places others may take over (libvirt's hook paths, libvirt's
   * virt-aa-helper), each with the launcher it points at: removed only while they still do.
   */
  ourLinks?: Readonly<Record<string, string>>;
  /** Files install created that stay (the Debian package's prerm keeps the config until purge). */
  keep?: readonly string[];
}

export interface UninstallPlan {
  steps: Step[];
  dropinRemoved: boolean;
}

/** libvirtd's local override without our block, as awk prints it (every line newline-terminated). */
export function withoutOurBlock(text: string): string {
  const out: string[] = [];
  let skip = false;
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  for (const line of lines) {
    if (line.startsWith(BEGIN_MARK)) skip = true;
    else if (skip && line.startsWith(END_MARK)) skip = false;
    else if (!skip) out.push(line);
  }
  return out.map((l) => `${l}\n`).join("");
}

/**
 * The manifest, last entry first: created files and links removed (a pristine-tracked one only
 * when unedited), modified files restored from their backups (libvirtd's local override: only our
 * block taken out when the admin edited it since), moved hooks moved back, created directories
 * removed when empty; then the state directory and the hook's run-time directories.
 */
export function planUninstall(view: HostView, p: UninstallPaths): UninstallPlan {
  const entries = readManifest(view, p.manifest).reverse();
  const steps: Step[] = [];
  const exists = (x: string) => view.stat(x) !== undefined;
  const isEmptyDir = (x: string, removed: Set<string>) => view.stat(x)?.kind === "dir" && dirEntries(view, x).every((e) => removed.has(e));
  const removed = new Set<string>();
  let dropinRemoved = false;
  let stateCreated = false;
  for (const entry of entries) {
    const space = entry.indexOf(" ");
    const kind = entry.slice(0, space);
    const rest = entry.slice(space + 1);
    switch (kind) {
      case "created": {
        const pristine = `${p.pristineDir}${rest}`;
        const linkTarget = p.ourLinks?.[rest];
        if (p.keep?.includes(rest) && exists(rest)) {
          steps.push({ do: "note", text: `kept ${rest}: asked to keep the config` });
        } else if (view.stat(pristine)?.kind === "file" && view.stat(rest)?.kind === "file" && !view.read(pristine).equals(view.read(rest))) {
          steps.push({ do: "note", text: `kept ${rest}: edited since install` });
        } else if (linkTarget !== undefined && exists(rest) && !(view.stat(rest)?.kind === "link" && view.readlink(rest) === linkTarget)) {
          steps.push({ do: "note", text: `kept ${rest}: no longer virt-aa-hook's link to ${linkTarget}` });
        } else if (exists(rest)) {
          steps.push({ do: "remove", path: rest });
          removed.add(rest);
          if (rest === p.dropin) dropinRemoved = true;
        }
        break;
      }
      case "modified": {
        const backup = `${p.backupDir}${rest}`;
        if (!exists(backup)) throw new Refusal(`${backup}: backup of ${rest} is missing; nothing restored from here on`);
        const now = view.stat(rest);
        if (rest === p.libvirtdLocal && now?.kind === "file") {
          const kept = withoutOurBlock(view.read(rest).toString("utf8"));
          if (view.stat(backup)?.kind !== "file" || !Buffer.from(kept).equals(view.read(backup))) {
            // Edited since install: take out only our block, keep the admin's lines.
            steps.push({ do: "unblock", path: rest, content: Buffer.from(kept), mode: now.mode });
            break;
          }
        }
        steps.push({ do: "restore", path: rest, from: backup });
        break;
      }
      case "moved": {
        const [from, to] = rest.split(" ") as [string, string];
        if (!exists(to)) throw new Refusal(`${to}: missing, cannot move it back to ${from}`);
        if (exists(from) && !removed.has(from)) throw new Refusal(`${from}: exists, cannot move ${to} back there`);
        steps.push({ do: "move", from: to, to: from, said: `move ${to} back to ${from}` });
        break;
      }
      case "diverted": {
        const [from, to] = rest.split(" ") as [string, string];
        const dpkg = view.stat(p.diversions)?.kind === "file" ? view.read(p.diversions).toString("utf8") : "";
        const d = diversionOf(dpkg, from);
        if (d === undefined || d.to !== to || d.package !== p.divertPackage) {
          steps.push({ do: "note", text: `kept ${from} as it is: dpkg no longer records virt-aa-hook's diversion of it to ${to}` });
          break;
        }
        if (exists(from) && !removed.has(from)) throw new Refusal(`${from}: exists, cannot move ${to} back there (remove it, then run uninstall again)`);
        steps.push({ do: "undivert", path: from, to, package: p.divertPackage });
        break;
      }
      case "created-dir": {
        if (rest === p.stateDir) stateCreated = true;
        else if (stateCreated && p.stateDir.startsWith(`${rest}/`)) {
          // a parent of the state directory: removed with it, below
        } else if (view.stat(rest)?.kind === "dir") {
          if (isEmptyDir(rest, removed)) {
            steps.push({ do: "rmdir", path: rest });
            removed.add(rest);
          } else if (!rest.startsWith(`${p.stateDir}/`)) {
            steps.push({ do: "note", text: `kept ${rest}: not empty` });
          }
        }
        break;
      }
      default:
        throw new Refusal(`${p.manifest}: unknown entry: ${entry}`);
    }
  }

  // The state directory holds the manifest, the backups and the hook's own state.
  if (stateCreated) {
    steps.push({ do: "remove-tree", paths: [p.stateDir], said: `remove ${p.stateDir}` });
    removed.add(p.stateDir);
    // Its parents, when install made them too (deepest first: the entries are reversed).
    for (const entry of entries) {
      if (!entry.startsWith("created-dir ")) continue;
      const d = entry.slice("created-dir ".length);
      if (d === p.stateDir || !p.stateDir.startsWith(`${d}/`)) continue;
      if (isEmptyDir(d, removed)) {
        steps.push({ do: "rmdir", path: d });
        removed.add(d);
      }
    }
  } else {
    steps.push({ do: "remove-tree", paths: [p.manifest, p.backupDir, p.pristineDir], said: `remove ${p.manifest}, ${p.backupDir} and ${p.pristineDir}` });
  }

  // What the hook made at run time: its parser cache at the default place and its lock directory.
  for (const d of p.runtimeDirs) {
    if (view.stat(d)?.kind === "dir") steps.push({ do: "remove-tree", paths: [d], said: `remove ${d} (the hook's parser cache and locks)` });
  }
  return { steps, dropinRemoved };
}

/** Names under a directory, as host paths. */
function dirEntries(view: HostView, dir: string): string[] {
  return view.list(dir).map((n) => `${dir}/${n}`);
}
