/**
 * `virt-aa-hook install` and `virt-aa-hook uninstall` (what install/install.sh and uninstall.sh
 * run): gather what is wanted from the source tree and the host, plan (plan.ts), check that every
 * AppArmor file compiles, apply, then load, reload and report. Every message is one line prefixed
 * with the program's name; a refusal ends the command with ExitError before anything changed.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { detectEnvironment } from "../apparmor/environment.js";
import { runParser, parserFailed, parserMessage } from "../apparmor/runner.js";
import { ConfigError, DEFAULT_CONFIG, loadConfig, type Config } from "../config.js";
import { ExitError } from "../errors.js";
import { Layout } from "../layout.js";
import { applySteps, hostView } from "./apply.js";
import { compileFeatures, compileProfiles } from "./compile.js";
import { openSource, wantedFiles, type Source } from "./contents.js";
import { hasHookDirs } from "./host.js";
import * as P from "./paths.js";
import { planInstall, planUninstall, Refusal, type Wanted } from "./plan.js";
import { libvirtVersion, runProgram } from "./probes.js";

export interface InstallOptions {
  root: string;
  dryRun: boolean;
  reload: boolean;
  adoptAll: boolean;
  /** The node the hook runs (install.sh checked its version). */
  node: string;
  libvirtVersion?: string;
  source: string;
}

export interface UninstallOptions {
  root: string;
  dryRun: boolean;
  reload: boolean;
  force: boolean;
}

type Out = (line: string) => void;

/** say/die for one program name. */
function voice(prog: string, write: (text: string) => void) {
  return {
    say: (line: string) => write(`${prog}: ${line}\n`),
    die: (why: string): never => {
      throw new ExitError(1, `${prog}: error: ${why}`);
    },
  };
}

/** The root as a real directory path (a layout over it). */
function rootLayout(root: string, die: (why: string) => never): Layout {
  if (!root.startsWith("/")) die(`--root ${root}: must be an absolute path`);
  if (!fs.statSync(root, { throwIfNoEntry: false })?.isDirectory()) die(`--root ${root}: not a directory`);
  return new Layout(fs.realpathSync(root));
}

/** What `decide` returns, or the command ends with the refusal it found (nothing changed yet). */
function refusing<T>(die: (why: string) => never, decide: () => T): T {
  try {
    return decide();
  } catch (err) {
    if (err instanceof Refusal) die(err.message);
    throw err;
  }
}

function configOf(layout: Layout, die: (why: string) => never): Config {
  try {
    return loadConfig(layout);
  } catch (err) {
    if (err instanceof ConfigError) die(err.message);
    throw err;
  }
}

/** This host's kernel has AppArmor and the parser is there: profiles can be (un)loaded. */
function canLoad(layout: Layout, config: Config): boolean {
  const env = detectEnvironment(layout);
  return layout.isRealRoot && env.kernelEnabled && env.parserPresent;
}

/** libvirtd's pid from its pid file under the root, for --reload; refused before anything changes. */
function libvirtdPid(layout: Layout, die: (why: string) => never): number {
  for (const pf of P.LIBVIRTD_PIDFILES) {
    const real = layout.host(pf);
    if (!fs.statSync(real, { throwIfNoEntry: false })?.isFile()) continue;
    const first = fs.readFileSync(real, "utf8").split("\n")[0] ?? "";
    if (/^[0-9]+$/.test(first)) return Number(first);
    break;
  }
  return die("cannot reload libvirtd: no usable pidfile (/run/libvirtd.pid, /run/virtqemud.pid)");
}

async function daemonReload(say: Out, warning: string): Promise<void> {
  if (!fs.existsSync("/run/systemd/system")) return;
  for (const systemctl of ["/usr/bin/systemctl", "/bin/systemctl"]) {
    const r = await runProgram(systemctl, ["daemon-reload"]);
    if (r.exitCode === 0) return;
    if (r.failure === undefined) break; // it ran and failed
  }
  say(warning);
}

/**
 * Compile, in a copy of the root's AppArmor directory with the new files in it, every AppArmor
 * file install would put in place: the hook's profile, libvirtd's (with our local override), a
 * guest profile from libvirt's template and one from ours. Nothing on the host is touched.
 */
async function compileStaged(layout: Layout, config: Config, wanted: Wanted, src: Source): Promise<string | undefined> {
  const aa = layout.host(layout.apparmorDir);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "virt-aa-hook-install."));
  try {
    const stage = path.join(work, "apparmor.d");
    if (fs.existsSync(aa)) fs.cpSync(aa, stage, { recursive: true, verbatimSymlinks: true });
    else fs.mkdirSync(stage);
    // A root without the base policy (a bare packaging root) borrows this host's to compile.
    for (const d of ["tunables", "abstractions", "abi"]) {
      const hostDir = path.join(layout.apparmorDir, d);
      if (!fs.existsSync(path.join(stage, d)) && fs.statSync(hostDir, { throwIfNoEntry: false })?.isDirectory()) {
        fs.cpSync(hostDir, path.join(stage, d), { recursive: true, verbatimSymlinks: true });
      }
    }
    const at = (hostPath: string) => path.join(stage, path.relative(layout.apparmorDir, hostPath));
    for (const d of ["libvirt", "abstractions", "local"]) fs.mkdirSync(path.join(stage, d), { recursive: true });
    const put = (hostPath: string, content: string | Buffer, onlyIfAbsent = false) => {
      if (!(onlyIfAbsent && fs.existsSync(at(hostPath)))) fs.writeFileSync(at(hostPath), content);
    };
    put(P.LIBVIRT_TEMPLATE, src.read("template"), true);
    put(P.LIBVIRT_ABSTRACTION, src.read("abstraction"), true);
    for (const f of [...wanted.derived, ...wanted.apparmor]) if (f.path.startsWith(`${layout.apparmorDir}/`)) put(f.path, f.content);
    const guest = (template: string, uuid: string) => fs.readFileSync(at(template), "utf8").replace("LIBVIRT_TEMPLATE", `libvirt-${uuid}`);
    put(`${layout.profilesDir}/virt-aa-hook-install-check`, guest(P.LIBVIRT_TEMPLATE, "00000000-0000-4000-8000-000000000000"));
    put(`${layout.profilesDir}/virt-aa-hook-install-check-ours`, guest(P.OUR_TEMPLATE, "00000000-0000-4000-8000-000000000001"));
    const rel = (hostPath: string) => path.relative(layout.apparmorDir, hostPath);
    const profiles = [rel(P.HOOK_PROFILE), "libvirt/virt-aa-hook-install-check", "libvirt/virt-aa-hook-install-check-ours"];
    if (fs.existsSync(at(P.LIBVIRTD_PROFILE))) profiles.push(rel(P.LIBVIRTD_PROFILE));
    const failed = await compileProfiles(config.parser, stage, profiles, compileFeatures(layout));
    const first = failed[0];
    // Name the files the admin knows, not the staging directory.
    return first && `AppArmor policy would not compile (${first.profile}): ${first.message.split(stage).join(layout.apparmorDir)}`;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export async function runInstall(opts: InstallOptions, write: (text: string) => void): Promise<void> {
  const { say, die } = voice("virt-aa-hook install", write);
  const layout = rootLayout(opts.root, die);
  // adopt talks to the running libvirtd (virsh): it has no meaning for a root other than this host's.
  if (opts.adoptAll && !layout.isRealRoot) die("--adopt-all adopts this host's domains through virsh: not with --root");
  const src = refusing(die, () => openSource(opts.source));
  // Node: an absolute path without characters that need quoting in sh or AppArmor.
  if (!opts.node.startsWith("/")) die(`--node ${opts.node}: must be an absolute path`);
  if (/[^A-Za-z0-9/._+-]/.test(opts.node)) die(`--node ${opts.node}: path has characters the hook launcher cannot carry`);
  const nodeReal = fs.realpathSync(opts.node);
  if (/[^A-Za-z0-9/._+-]/.test(nodeReal)) die(`${nodeReal} (real path of ${opts.node}): has characters AppArmor rules cannot carry`);

  const version = opts.libvirtVersion ?? (await libvirtVersion()) ?? die("cannot detect the libvirt version (no /usr/sbin/libvirtd or virtqemud): pass --libvirt-version");
  if (!/^[0-9]+\.[0-9]+/.test(version)) die(`--libvirt-version ${version}: expected X.Y or X.Y.Z`);
  const config = configOf(layout, die);

  const wanted = refusing(die, () => wantedFiles(src, { layout, config, node: opts.node, nodeReal, libvirtVersion: version, hookDirs: hasHookDirs(version) }));
  const plan = refusing(die, () => planInstall(hostView(layout), wanted));
  const pid = opts.reload ? libvirtdPid(layout, die) : undefined;

  // Compile before touching anything.
  if (detectEnvironment(layout).parserPresent) {
    const failure = await compileStaged(layout, config, wanted, src);
    if (failure) die(failure);
  } else {
    say(`warning: ${config.parser} not found: AppArmor files installed without a compile check`);
  }

  applySteps(layout, plan.steps, { dryRun: opts.dryRun, manifest: wanted.manifest, out: say });

  const real = layout.isRealRoot && !opts.dryRun;
  if (real && plan.changed) {
    if (canLoad(layout, config)) {
      for (const profile of [P.HOOK_PROFILE, ...(fs.existsSync(P.LIBVIRTD_PROFILE) ? [P.LIBVIRTD_PROFILE] : [])]) {
        const r = await runParser(config.parser, ["-r", profile]);
        if (parserFailed(r)) die(`cannot load ${profile}: ${parserMessage(r)}`);
      }
      say("loaded the virt-aa-hook profile and reloaded libvirtd's");
    } else {
      say("AppArmor is not enabled in this kernel: profiles installed, not loaded");
    }
  }
  if (real && plan.dropinChanged) {
    await daemonReload(say, `warning: systemctl daemon-reload failed: libvirtd.service reads ${P.LIBVIRTD_DROPIN} at its next reload`);
  }
  if (pid !== undefined) {
    if (opts.dryRun) say(`would send SIGHUP to libvirtd (pid ${pid})`);
    else {
      signalHup(pid, die);
      say(`sent SIGHUP to libvirtd (pid ${pid}): it now runs the hook`);
    }
  } else if (plan.changed) {
    say("reload libvirtd so it finds the hook: systemctl reload libvirtd, or kill -HUP $(cat /run/libvirtd.pid)");
  }
  if (opts.adoptAll) {
    if (opts.dryRun) say(`would run: ${P.COMMAND} adopt --all`);
    else {
      say(`running: ${P.COMMAND} adopt --all`);
      const r = await runProgram(P.COMMAND, ["adopt", "--all"], { inherit: true });
      if (r.exitCode !== 0) die("virt-aa-hook adopt --all failed for the domains named above (the others are adopted)");
    }
  }
  if (opts.dryRun) {
    if (!plan.changed) say("already installed, nothing to do");
    say("dry run: nothing was changed");
    return;
  }
  try {
    const { summaryLines } = await import("./summary.js");
    for (const line of summaryLines(layout, loadConfig(layout), { configWritten: plan.configWritten })) say(line);
  } catch {
    say("warning: cannot tell what is confined: run virt-aa-hook doctor");
  }
  say(plan.changed ? "done; check with: virt-aa-hook status; virt-aa-hook doctor" : "already installed, nothing to do");
}

function signalHup(pid: number, die: (why: string) => never): void {
  try {
    process.kill(pid, "SIGHUP");
  } catch {
    die(`cannot send SIGHUP to libvirtd (pid ${pid})`);
  }
}

/** Domain definitions whose text contains `needle`, by name (file name without .xml). */
function domainsWith(layout: Layout, needle: string): string[] {
  const dir = layout.host(P.DOMAINS_DIR);
  let files: string[];
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith(".xml")).sort();
  } catch {
    return [];
  }
  return files.filter((f) => fs.readFileSync(path.join(dir, f), "utf8").includes(needle)).map((f) => f.slice(0, -4));
}

export async function runUninstall(opts: UninstallOptions, write: (text: string) => void): Promise<void> {
  const { say, die } = voice("virt-aa-hook uninstall", write);
  const layout = rootLayout(opts.root, die);
  const manifest = `${layout.stateDir}/${P.MANIFEST}`;
  if (!fs.existsSync(layout.host(manifest))) die(`${manifest}: not found: virt-aa-hook was not installed by install.sh here`);

  if (!opts.force) {
    // A guest whose <emulator> is the wrapper would no longer start.
    const wrapped = domainsWith(layout, `<emulator>${P.WRAPPER_BIN}/`);
    if (wrapped.length > 0) {
      die(`guests still use the emulator wrapper (${wrapped.map((n) => `${n} `).join("")}): run 'virt-aa-hook adopt --all --undo' first, or pass --force`);
    }
    // A guest with our static label: libvirt refuses it once nothing loads its profile at boot.
    const labelled = domainsWith(layout, "<seclabel type='static' model='apparmor' relabel='no'>");
    if (labelled.length > 0) {
      die(`guests still carry virt-aa-hook's static AppArmor label (${labelled.map((n) => `${n} `).join("")}): run 'virt-aa-hook adopt --all --undo' first, or pass --force`);
    }
  }
  const plan = refusing(die, () =>
    planUninstall(hostView(layout), {
      stateDir: layout.stateDir,
      manifest,
      backupDir: `${layout.stateDir}/${P.BACKUP}`,
      pristineDir: `${layout.stateDir}/${P.PRISTINE}`,
      libvirtdLocal: P.LIBVIRTD_LOCAL,
      dropin: P.LIBVIRTD_DROPIN,
      runtimeDirs: [layout.cacheDir, path.dirname(layout.lockDir)],
    }),
  );
  const pid = opts.reload ? libvirtdPid(layout, die) : undefined;

  let config: Config | undefined;
  try {
    config = loadConfig(layout);
  } catch {
    // load-adopted says so below; (un)loading uses the default parser
  }
  if (!opts.dryRun && fs.existsSync(layout.host(P.BUNDLE))) {
    // Profiles release kept loaded for adopted domains: released now that no domain is adopted
    // (as load-adopted does for domains no longer defined with our label). Running guests keep theirs.
    try {
      if (config === undefined) throw new Error("no config");
      const { loadAdopted } = await import("../adopted/load.js");
      const r = await loadAdopted(layout, config, say, { releaseOnly: true });
      if (r.failed.length > 0) throw new Error("failed");
    } catch {
      say("warning: virt-aa-hook load-adopted failed: kept profiles may be left in /etc/apparmor.d/libvirt");
    }
  }
  // Unload our profile while its file is still there (only on this host, only with AppArmor).
  const real = layout.isRealRoot && !opts.dryRun;
  const parser = (config ?? DEFAULT_CONFIG).parser;
  const loading = real && canLoad(layout, config ?? DEFAULT_CONFIG);
  if (loading && fs.existsSync(P.HOOK_PROFILE)) {
    if (parserFailed(await runParser(parser, ["-R", P.HOOK_PROFILE]))) say(`warning: cannot unload ${P.HOOK_PROFILE}`);
  }

  applySteps(layout, plan.steps, { dryRun: opts.dryRun, manifest, out: say });

  if (loading && fs.existsSync(P.LIBVIRTD_PROFILE)) {
    if (parserFailed(await runParser(parser, ["-r", P.LIBVIRTD_PROFILE]))) say("warning: cannot reload libvirtd's profile");
  }
  if (real && plan.dropinRemoved) await daemonReload(say, "warning: systemctl daemon-reload failed");
  if (pid !== undefined) {
    if (opts.dryRun) say(`would send SIGHUP to libvirtd (pid ${pid})`);
    else {
      signalHup(pid, die);
      say(`sent SIGHUP to libvirtd (pid ${pid})`);
    }
  } else {
    say("reload libvirtd so it forgets the hook: systemctl reload libvirtd, or kill -HUP $(cat /run/libvirtd.pid)");
  }
  say("per-guest profiles in /etc/apparmor.d/libvirt/ were left in place");
  say(opts.dryRun ? "dry run: nothing was changed" : "done");
}
