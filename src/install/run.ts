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
import { Parser } from "../apparmor/parser.js";
import { runParser, parserFailed, parserMessage } from "../apparmor/runner.js";
import { ConfigError, loadConfig } from "../config.js";
import { ExitError } from "../errors.js";
import { Layout } from "../layout.js";
import { applySteps, hostView } from "./apply.js";
import { compileFeatures, compileProfiles } from "./compile.js";
import { openSource, wantedFiles, type Source } from "./contents.js";
import { hasHookDirs } from "./host.js";
import { gatherLeftovers } from "./hook-files.js";
import { planLeftovers, runningGuests } from "./leftovers.js";
import { planInstall, planUninstall, readManifest, Refusal, type Wanted } from "./plan.js";
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
  /** Keep the config file (the Debian package's prerm: it goes at purge). */
  keepConfig?: boolean;
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

/** The root as a real directory path (its layout before the config is read: every location at its default). */
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

/** Carry out `steps`; a refusal found on the way ends the command (what was done is in the manifest). */
async function applying(die: (why: string) => never, apply: () => Promise<void>): Promise<void> {
  try {
    await apply();
  } catch (err) {
    if (err instanceof Refusal) die(err.message);
    throw err;
  }
}

/** The layout the root's config makes (Layout.from): every location where the config puts it. */
function configuredLayout(base: Layout, die: (why: string) => never): Layout {
  try {
    return Layout.from(base.root, loadConfig(base));
  } catch (err) {
    if (err instanceof ConfigError) die(err.message);
    throw err;
  }
}

/** This host's kernel has AppArmor and the parser is there: profiles can be (un)loaded. */
function canLoad(layout: Layout): boolean {
  const env = detectEnvironment(layout);
  return layout.isRealRoot && env.kernelEnabled && env.parserPresent;
}

/** libvirtd's pid from its pid file under the root, for --reload; refused before anything changes. */
function libvirtdPid(layout: Layout, die: (why: string) => never): number {
  for (const pf of layout.libvirtdPidFiles) {
    const real = layout.host(pf);
    if (!fs.statSync(real, { throwIfNoEntry: false })?.isFile()) continue;
    const first = fs.readFileSync(real, "utf8").split("\n")[0] ?? "";
    if (/^[0-9]+$/.test(first)) return Number(first);
    break;
  }
  return die(`cannot reload libvirtd: no usable pidfile (${layout.libvirtdPidFile}, ${layout.virtqemudPidFile})`);
}

/** systemd on this machine (only ever called for the real root). */
async function daemonReload(layout: Layout, say: Out, warning: string): Promise<void> {
  if (!fs.existsSync(layout.systemdRunDir)) return;
  for (const systemctl of layout.systemctls) {
    const r = await runProgram(systemctl, ["daemon-reload"]);
    if (r.exitCode === 0) return;
    if (r.failure === undefined) break; // it ran and failed
  }
  say(warning);
}

/**
 * Compile, in a copy of the root's system AppArmor directory (where install puts its files, and
 * libvirt has its own) with the new files in it, every AppArmor file install would put in place:
 * the hook's profile, libvirtd's (with our local override), a guest profile from libvirt's
 * template and one from ours. Nothing on the host is touched. The parser and the feature set are
 * the configured ones.
 */
async function compileStaged(layout: Layout, wanted: Wanted, src: Source): Promise<string | undefined> {
  const dir = layout.systemApparmorDir;
  const aa = layout.host(dir);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "virt-aa-hook-install."));
  try {
    const stage = path.join(work, "apparmor.d");
    if (fs.existsSync(aa)) fs.cpSync(aa, stage, { recursive: true, verbatimSymlinks: true });
    else fs.mkdirSync(stage);
    // A root without the base policy (a bare packaging root) borrows this host's to compile.
    for (const d of ["tunables", "abstractions", "abi"]) {
      const hostDir = path.join(dir, d);
      if (!fs.existsSync(path.join(stage, d)) && fs.statSync(hostDir, { throwIfNoEntry: false })?.isDirectory()) {
        fs.cpSync(hostDir, path.join(stage, d), { recursive: true, verbatimSymlinks: true });
      }
    }
    const rel = (hostPath: string) => path.relative(dir, hostPath);
    const at = (hostPath: string) => path.join(stage, rel(hostPath));
    for (const d of ["libvirt", "abstractions", "local"]) fs.mkdirSync(path.join(stage, d), { recursive: true });
    const put = (hostPath: string, content: string | Buffer, onlyIfAbsent = false) => {
      if (!(onlyIfAbsent && fs.existsSync(at(hostPath)))) fs.writeFileSync(at(hostPath), content);
    };
    put(layout.libvirtTemplate, src.read("template"), true);
    put(layout.libvirtAbstraction, src.read("abstraction"), true);
    for (const f of [...wanted.derived, ...wanted.apparmor]) if (f.path.startsWith(`${dir}/`)) put(f.path, f.content);
    const guest = (template: string, uuid: string) => fs.readFileSync(at(template), "utf8").replace("LIBVIRT_TEMPLATE", `libvirt-${uuid}`);
    const guestChecks = {
      "libvirt/virt-aa-hook-install-check": guest(layout.libvirtTemplate, "00000000-0000-4000-8000-000000000000"),
      "libvirt/virt-aa-hook-install-check-ours": guest(layout.derivedTemplate, "00000000-0000-4000-8000-000000000001"),
    };
    for (const [name, text] of Object.entries(guestChecks)) fs.writeFileSync(path.join(stage, name), text);
    const profiles = [rel(layout.hookProfile), ...Object.keys(guestChecks)];
    if (fs.existsSync(at(layout.libvirtdProfile))) profiles.push(rel(layout.libvirtdProfile));
    const failed = await compileProfiles(layout.parser, stage, profiles, compileFeatures(layout));
    const first = failed[0];
    // Name the files the admin knows, not the staging directory.
    return first && `AppArmor policy would not compile (${first.profile}): ${first.message.split(stage).join(dir)}`;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export async function runInstall(opts: InstallOptions, write: (text: string) => void): Promise<void> {
  const { say, die } = voice("virt-aa-hook install", write);
  const base = rootLayout(opts.root, die);
  // adopt talks to the running libvirtd (virsh): it has no meaning for a root other than this host's.
  if (opts.adoptAll && !base.isRealRoot) die("--adopt-all adopts this host's domains through virsh: not with --root");
  const src = refusing(die, () => openSource(opts.source));
  // Node: an absolute path without characters that need quoting in sh or AppArmor.
  if (!opts.node.startsWith("/")) die(`--node ${opts.node}: must be an absolute path`);
  if (/[^A-Za-z0-9/._+-]/.test(opts.node)) die(`--node ${opts.node}: path has characters the hook launcher cannot carry`);
  const nodeReal = fs.realpathSync(opts.node);
  if (/[^A-Za-z0-9/._+-]/.test(nodeReal)) die(`${nodeReal} (real path of ${opts.node}): has characters AppArmor rules cannot carry`);

  const [daemon, otherDaemon] = base.libvirtDaemons;
  const version =
    opts.libvirtVersion ??
    (await libvirtVersion(base.libvirtDaemons)) ??
    die(`cannot detect the libvirt version (no ${daemon} or ${path.basename(otherDaemon!)}): pass --libvirt-version`);
  if (!/^[0-9]+\.[0-9]+/.test(version)) die(`--libvirt-version ${version}: expected X.Y or X.Y.Z`);
  const layout = configuredLayout(base, die);
  // The mode of the config already there (never rewritten); undefined: install writes one.
  const existingAttach = fs.existsSync(base.host(base.configPath)) ? loadConfig(base).attach : undefined;

  const wanted = refusing(die, () =>
    wantedFiles(src, { layout, node: opts.node, nodeReal, libvirtVersion: version, hookDirs: hasHookDirs(version), ...(existingAttach !== undefined ? { existingAttach } : {}) }),
  );
  const plan = refusing(die, () => planInstall(hostView(layout), wanted));
  const pid = opts.reload ? libvirtdPid(layout, die) : undefined;

  // Compile before touching anything.
  if (detectEnvironment(layout).parserPresent) {
    const failure = await compileStaged(layout, wanted, src);
    if (failure) die(failure);
  } else {
    say(`warning: ${layout.parser} not found: AppArmor files installed without a compile check`);
  }

  await applying(die, () => applySteps(layout, plan.steps, { dryRun: opts.dryRun, manifest: wanted.manifest, out: say }));

  const real = layout.isRealRoot && !opts.dryRun;
  if (real && plan.changed) {
    if (canLoad(layout)) {
      for (const profile of [layout.hookProfile, ...(fs.existsSync(layout.libvirtdProfile) ? [layout.libvirtdProfile] : [])]) {
        const r = await runParser(layout.parser, ["-r", profile]);
        if (parserFailed(r)) die(`cannot load ${profile}: ${parserMessage(r)}`);
      }
      say("loaded the virt-aa-hook profile and reloaded libvirtd's");
    } else {
      say("AppArmor is not enabled in this kernel: profiles installed, not loaded");
    }
  }
  if (real && plan.dropinChanged) {
    await daemonReload(layout, say, `warning: systemctl daemon-reload failed: libvirtd.service reads ${layout.libvirtdDropIn} at its next reload`);
  }
  if (pid !== undefined) {
    if (opts.dryRun) say(`would send SIGHUP to libvirtd (pid ${pid})`);
    else {
      signalHup(pid, die);
      say(`sent SIGHUP to libvirtd (pid ${pid}): it now runs the hook`);
    }
  } else if (plan.changed) {
    say(`reload libvirtd so it finds the hook: systemctl reload libvirtd, or kill -HUP $(cat ${layout.libvirtdPidFile})`);
  }
  if (opts.adoptAll) {
    if (opts.dryRun) say(`would run: ${layout.command} adopt --all`);
    else {
      say(`running: ${layout.command} adopt --all`);
      const r = await runProgram(layout.command, ["adopt", "--all"], { inherit: true });
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
    // The config as installed (install may have just written it), and the layout it makes.
    const installed = loadConfig(base);
    for (const line of summaryLines(Layout.from(base.root, installed), installed, { configWritten: plan.configWritten })) say(line);
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
  const dir = layout.host(layout.libvirtDomainsDir);
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
  const base = rootLayout(opts.root, die);
  const manifest = base.installManifest;
  if (!fs.existsSync(base.host(manifest))) die(`${manifest}: not found: virt-aa-hook was not installed by install.sh here`);

  if (!opts.force) {
    // A guest whose <emulator> is the wrapper would no longer start.
    const wrapped = domainsWith(base, `<emulator>${base.wrapperDir}/`);
    if (wrapped.length > 0) {
      die(`guests still use the emulator wrapper (${wrapped.map((n) => `${n} `).join("")}): run 'virt-aa-hook adopt --all --undo' first, or pass --force`);
    }
    // A guest with our static label: libvirt refuses it once nothing loads its profile at boot.
    const labelled = domainsWith(base, "<seclabel type='static' model='apparmor' relabel='no'>");
    if (labelled.length > 0) {
      die(`guests still carry virt-aa-hook's static AppArmor label (${labelled.map((n) => `${n} `).join("")}): run 'virt-aa-hook adopt --all --undo' first, or pass --force`);
    }
  }
  const view = hostView(base);
  const plan = refusing(die, () =>
    planUninstall(view, {
      stateDir: base.stateDir,
      manifest,
      backupDir: base.installBackupDir,
      pristineDir: base.installPristineDir,
      libvirtdLocal: base.libvirtdLocalProfile,
      dropin: base.libvirtdDropIn,
      runtimeDirs: base.runtimeDirs,
      diversions: base.dpkgDiversions,
      divertPackage: base.divertPackage,
      ourLinks: {
        [base.libvirtHelper]: base.helperLauncher,
        [base.libvirtNetworkHookDropIn]: base.networkLauncher,
        [base.libvirtNetworkHookScript]: base.networkLauncher,
      },
      ...(opts.keepConfig ? { keep: [base.configPath] } : {}),
    }),
  );
  const pid = opts.reload ? libvirtdPid(base, die) : undefined;

  // The configured layout (where the hook put profiles, log, cache); without a readable config, the defaults.
  let layout = base;
  let parserTimeout = 60;
  try {
    const config = loadConfig(base);
    layout = Layout.from(base.root, config);
    parserTimeout = config.parserTimeout;
  } catch {
    say(`warning: cannot read ${base.configPath}: looking for what the hook made at the default locations`);
  }
  // What the hook made while guests ran: decided here, so the dry run lists what the real run does.
  const wrapperLinks = readManifest(view, manifest)
    .filter((e) => e.startsWith(`created ${base.wrapperDir}/`))
    .map((e) => e.slice("created ".length));
  const facts = gatherLeftovers(layout, wrapperLinks);
  const running = runningGuests(facts);
  if (running.length > 0) {
    const names = running.join(" ");
    if (!opts.force) {
      die(
        `managed guests are running (${names}): shut them down (virsh shutdown NAME) and run uninstall again, or pass --force (they keep their loaded profiles until they stop; their files are removed)`,
      );
    }
    say(`warning: managed guests are running (${names}): --force: their profiles stay loaded while they run, their files are removed`);
  }
  const steps = [...planLeftovers(facts), ...plan.steps];

  // Unload our profile while its file is still there (only on this host, only with AppArmor).
  const real = layout.isRealRoot && !opts.dryRun;
  const loading = real && canLoad(layout);
  if (loading && fs.existsSync(layout.hookProfile)) {
    if (parserFailed(await runParser(layout.parser, ["-R", layout.hookProfile]))) say(`warning: cannot unload ${layout.hookProfile}`);
  }

  const parser = new Parser(layout.parser, detectEnvironment(layout), parserTimeout * 1000);
  const unload = async (profileName: string) => void (await parser.unload(profileName));
  await applying(die, () => applySteps(layout, steps, { dryRun: opts.dryRun, manifest, out: say, unload }));

  if (loading && fs.existsSync(layout.libvirtdProfile)) {
    if (parserFailed(await runParser(layout.parser, ["-r", layout.libvirtdProfile]))) say("warning: cannot reload libvirtd's profile");
  }
  if (real && plan.dropinRemoved) await daemonReload(layout, say, "warning: systemctl daemon-reload failed");
  if (pid !== undefined) {
    if (opts.dryRun) say(`would send SIGHUP to libvirtd (pid ${pid})`);
    else {
      signalHup(pid, die);
      say(`sent SIGHUP to libvirtd (pid ${pid})`);
    }
  } else {
    say(`reload libvirtd so it forgets the hook: systemctl reload libvirtd, or kill -HUP $(cat ${layout.libvirtdPidFile})`);
  }
  say(opts.dryRun ? "dry run: nothing was changed" : "done");
}
