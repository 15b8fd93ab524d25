/**
 * `virt-aa-hook doctor`: is this host set up so that guests really get confined? Each check looks
 * at one thing, says what it found, and when it is wrong, what to do about it. Every host file is
 * read through the layout (so `--root DIR` checks an installation under DIR); programs (the parser,
 * libvirtd) are this machine's. Every path comes from the layout the config makes (Layout.from;
 * the default layout when the config cannot be read); the libvirt version rule and the compile
 * check are the installer's own (src/install/), so the two never disagree about what an
 * installation is.
 */
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { definedWithOurLabel, isActive, listDefined } from "../adopted/defined.js";
import { adoptionProblem, attachFacts } from "../attach/index.js";
import { loadConfig, type Config } from "../config.js";
import { compileFeatures, compileProfiles } from "../install/compile.js";
import { deriveAbstraction, deriveTemplate } from "../install/derive.js";
import { hasHookDirs, readSecurityDriver, securityDrivers } from "../install/host.js";
import { BEGIN_MARK } from "../install/plan.js";
import { helperProblems } from "../install/divert.js";
import { Layout } from "../layout.js";
import { listStates } from "../store/state.js";
import { filesInclude } from "../store/guest-files.js";
import { guestUuidsOnDisk, readGuestFiles, standing, type GuestFiles } from "../store/leftovers.js";
import { legacyFilesInclude } from "../render/profile.js";
import { templateProblem, templateProblemText } from "./template.js";
import { runningGuests } from "./confinement.js";
import { activeUuids } from "./in-use.js";
import { parsePid, readProcessLabel } from "../host/qemu-process.js";
import { displayName, shellQuote } from "./display.js";
import { isProfileName } from "../names.js";

export { securityDrivers };

/** ok; fail: something to fix (exit 1); warn: worth knowing, not a failure; skip: not applicable. */
export type Status = "ok" | "fail" | "warn" | "skip";

export interface Check {
  name: string;
  status: Status;
  detail: string;
  fix?: string;
}

export interface DoctorEnv {
  /** The root's layout: runDoctor reads the config through it and checks with the layout the config makes. */
  layout: Layout;
  /** `libvirtd --version` → "9.0.0"; undefined when there is no libvirt (install/probes.ts). */
  libvirtVersion: () => Promise<string | undefined> | string | undefined;
}

export async function runDoctor(rootEnv: DoctorEnv): Promise<Check[]> {
  const checks: Check[] = [];
  const add = (c: Check) => checks.push(c);

  const base = rootEnv.layout;
  let config: Config | undefined;
  try {
    config = loadConfig(base);
    add({ name: "config", status: "ok", detail: `${base.configPath}: attach = ${config.attach}, mode = ${config.mode}` });
  } catch (err) {
    add({ name: "config", status: "fail", detail: (err as Error).message, fix: `correct ${base.configPath}` });
  }
  // Every check from here on: with the locations the config sets, or the defaults without one.
  const layout = config ? Layout.from(base.root, config) : base;
  const env: DoctorEnv = { ...rootEnv, layout };
  const host = (p: string) => layout.host(p);
  const exists = (p: string) => fs.existsSync(host(p));

  const kernelAa = exists(`${layout.securityfsDir}/profiles`);
  add(
    kernelAa
      ? { name: "kernel AppArmor", status: "ok", detail: "enabled" }
      : {
          name: "kernel AppArmor",
          status: "fail",
          detail: `not enabled (${layout.securityfsDir}/profiles missing): no guest can be confined`,
          fix: "boot a kernel with AppArmor enabled (apparmor=1 security=apparmor)",
        },
  );

  const parser = layout.parser;
  let parserOk = false;
  try {
    fs.accessSync(parser, fs.constants.X_OK);
    parserOk = true;
    add({ name: "apparmor_parser", status: "ok", detail: parser });
  } catch {
    add({ name: "apparmor_parser", status: "fail", detail: `${parser}: not found or not executable`, fix: "apt install apparmor" });
  }

  const version = await env.libvirtVersion();
  const hookDirs = version !== undefined && hasHookDirs(version);
  add(
    version
      ? { name: "libvirt", status: "ok", detail: `libvirt ${version}${hookDirs ? " (runs hooks in qemu.d/)" : " (one qemu hook only)"}` }
      : { name: "libvirt", status: "fail", detail: `no ${layout.libvirtDaemons.join(" or ")} answers --version`, fix: "apt install libvirt-daemon-system" },
  );

  // security_driver must match the attach mode: libvirt's own AppArmor driver and the wrapper
  // would both claim libvirt-<uuid>; a static seclabel needs that driver.
  if (config) {
    const qemuConf = layout.qemuConf;
    const conf = exists(qemuConf) ? fs.readFileSync(host(qemuConf), "utf8") : "";
    const drivers = securityDrivers(conf);
    const effective = drivers ?? (kernelAa ? ["apparmor (auto-detected)"] : ["none (auto-detected)"]);
    const apparmor = effective.some((d) => d.startsWith("apparmor"));
    const detail = `${qemuConf}: security_driver = ${drivers ? JSON.stringify(drivers.length === 1 ? drivers[0] : drivers) : "unset"} → ${effective.join(", ")}`;
    if (config.attach === "seclabel" && !apparmor) {
      add({ name: "security driver", status: "fail", detail, fix: `set security_driver = "apparmor" in ${qemuConf}, or attach = "wrapper"` });
    } else if (config.attach === "helper" && !apparmor) {
      add({
        name: "security driver",
        status: "fail",
        detail: `${detail}: attach = "helper" needs libvirt's AppArmor driver (it is what runs virt-aa-helper)`,
        fix: `set security_driver = "apparmor" in ${qemuConf} (and boot with AppArmor), or attach = "wrapper" with security_driver = "none"`,
      });
    } else if (config.attach === "wrapper" && apparmor) {
      add({ name: "security driver", status: "fail", detail: `${detail}: libvirt's own AppArmor driver would confine QEMU before the wrapper runs`, fix: `set security_driver = "none" in ${qemuConf}, or attach = "seclabel"` });
    } else {
      add({ name: "security driver", status: "ok", detail });
    }
  }

  // The hook: where this libvirt looks, pointing at our launcher, launcher and bundle present.
  const hookPath = hookDirs ? layout.libvirtHookDropIn : layout.libvirtHookScript;
  const launcher = layout.launcher;
  const problems: string[] = [];
  const hookLink = fs.lstatSync(host(hookPath), { throwIfNoEntry: false });
  if (!hookLink) problems.push(`${hookPath} missing`);
  else if (hookLink.isSymbolicLink() && fs.readlinkSync(host(hookPath)) !== launcher) problems.push(`${hookPath} does not point at ${launcher}`);
  else if (!hookLink.isSymbolicLink() && !fs.readFileSync(host(hookPath), "utf8").includes(launcher)) problems.push(`${hookPath} is not virt-aa-hook's`);
  for (const [p, mode] of [[launcher, fs.constants.X_OK], [layout.bundle, fs.constants.R_OK], [layout.command, fs.constants.X_OK]] as const) {
    try {
      fs.accessSync(host(p), mode);
    } catch {
      problems.push(`${p} missing`);
    }
  }
  add(
    problems.length === 0
      ? { name: "hook", status: "ok", detail: `${hookPath} → ${launcher}` }
      : { name: "hook", status: "fail", detail: problems.join("; "), fix: "run install.sh, then reload libvirtd" },
  );

  const local = layout.libvirtdLocalProfile;
  const localText = exists(local) ? fs.readFileSync(host(local), "utf8") : "";
  const aaProblems: string[] = [];
  if (!exists(layout.hookProfile)) aaProblems.push(`${layout.hookProfile} missing`);
  if (!localText.includes(BEGIN_MARK)) aaProblems.push(`${local} lacks the virt-aa-hook block (the hook would run inside libvirtd's profile)`);
  else if (config?.attach === "helper" && !localText.includes(`${layout.helperLauncher} Px -> virt-aa-hook,`)) {
    aaProblems.push(`${local} lacks the rule for ${layout.helperLauncher} (libvirtd could not run virt-aa-hook's virt-aa-helper)`);
  }
  add(
    aaProblems.length === 0
      ? { name: "hook profile", status: "ok", detail: `${layout.hookProfile}, transition in ${local}` }
      : { name: "hook profile", status: "fail", detail: aaProblems.join("; "), fix: "run install.sh" },
  );

  const template = layout.template;
  const abstraction = layout.baseLibvirtAbstraction;
  const missing = [template, abstraction].filter((p) => !exists(p));
  add(
    missing.length === 0
      ? { name: "template and abstraction", status: "ok", detail: `${template}, ${abstraction}` }
      : { name: "template and abstraction", status: "fail", detail: `${missing.join(", ")} missing`, fix: "run install.sh (it provides them where the host has none)" },
  );

  if (config?.attach === "wrapper") {
    const { wrapper, wrapperDir } = layout;
    const bin = host(wrapperDir);
    const links = fs.existsSync(bin) ? fs.readdirSync(bin).sort() : [];
    const wrapperOk = exists(wrapper) && /^ALLOW_ENV_OVERRIDES=no$/m.test(fs.readFileSync(host(wrapper), "utf8"));
    add(
      wrapperOk && links.length > 0
        ? { name: "emulator wrapper", status: "ok", detail: `${wrapperDir}/{${links.join(",")}}` }
        : { name: "emulator wrapper", status: "fail", detail: wrapperOk ? `no links in ${wrapperDir}` : `${wrapper} missing or not the installed copy`, fix: "run install.sh (after installing QEMU)" },
    );
  }

  if (config?.attach === "helper") checks.push(helperCheck(env));

  if (parserOk) checks.push(await compileCheck(env));
  if (parserOk) checks.push(await templateCheck(env));

  if (config) {
    checks.push(attachCheck(env, config));
    checks.push(domainsCheck(env, config));
    checks.push(runningCheck(env, config));
    checks.push(nvramCheck(env, config));
    checks.push(keptCheck(env));
    checks.push(leftoversCheck(env));
    if (config.attach === "seclabel") checks.push(bootCheck(env));
  }
  return checks;
}

/** attach = "none" leaves guests to libvirt's AppArmor driver at best, and to nobody without it. */
function attachCheck(env: DoctorEnv, config: Config): Check {
  const driver = readSecurityDriver(env.layout);
  if (config.attach !== "none") return { name: "attach mode", status: "ok", detail: `attach = "${config.attach}", started_check = "${config.startedCheck}"` };
  if (driver.effective === "apparmor") {
    return { name: "attach mode", status: "warn", detail: `attach = "none": virt-aa-hook confines no guest; libvirt's own AppArmor driver labels them (${driver.describe})` };
  }
  return {
    name: "attach mode",
    status: "fail",
    detail: `attach = "none" and ${driver.describe}: nothing puts any guest's QEMU into a profile`,
    fix:
      driver.effective === "none"
        ? `set attach = "wrapper" and started_check = "enforce" in ${env.layout.configPath}, then virt-aa-hook adopt --all`
        : `pair libvirt's driver with an attach mode: security_driver = "none" with attach = "wrapper", or security_driver = "apparmor" with attach = "helper" (or "seclabel"); started_check = "enforce"; then run install.sh again (helper) or virt-aa-hook adopt --all`,
  };
}

/**
 * attach = "helper": libvirt's virt-aa-helper diverted by us, a link to our launcher in its place.
 * A libvirt package upgrade keeps the diversion (dpkg installs its helper as .real); an admin's
 * `dpkg-divert --remove`, or a copy put back by hand, undoes it: then libvirt's own generator
 * writes the profiles again.
 */
function helperCheck(env: DoctorEnv): Check {
  const { layout } = env;
  const problems = helperProblems(layout);
  // libvirt's AppArmor driver is on only while libvirtd itself is confined (security_apparmor.c,
  // use_apparmor): an unconfined libvirtd never runs virt-aa-helper.
  const daemon = runningDaemonLabel(layout);
  const daemonOff = daemon?.label === "unconfined";
  const diverted = problems.length === 0;
  if (daemonOff) problems.push(`${daemon.daemon} (pid ${daemon.pid}) runs unconfined, so libvirt's AppArmor driver is off and runs no virt-aa-helper`);
  if (problems.length === 0) {
    return {
      name: "virt-aa-helper",
      status: "ok",
      detail: `${layout.libvirtHelper} -> ${layout.helperLauncher}; libvirt's own diverted to ${layout.libvirtHelperReal} (dpkg-divert, package ${layout.divertPackage})`,
    };
  }
  return {
    name: "virt-aa-helper",
    status: "fail",
    detail: `${problems.join("; ")}: libvirt's driver does not run virt-aa-hook's generator`,
    fix: [
      ...(diverted ? [] : ["run install.sh again (it diverts libvirt's virt-aa-helper and links ours in its place)"]),
      ...(daemonOff ? [`load libvirtd's profile (apparmor_parser -r ${layout.libvirtdProfile}) and restart ${daemon!.daemon}`] : []),
    ].join("; ") + ", then restart the guests started since",
  };
}

/** The AppArmor label of the running libvirt daemon (its pid file under the root), if one runs. */
function runningDaemonLabel(layout: Layout): { daemon: string; pid: number; label: string } | undefined {
  for (const pf of layout.libvirtdPidFiles) {
    let pid: number | undefined;
    try {
      pid = parsePid(fs.readFileSync(layout.host(pf), "utf8").split("\n")[0] ?? "");
    } catch {
      continue;
    }
    if (pid === undefined) continue;
    const label = readProcessLabel(layout, pid)?.label;
    if (label !== undefined) return { daemon: path.posix.basename(pf, ".pid"), pid, label };
  }
  return undefined;
}

/** What each running guest's QEMU runs as, from the kernel. */
function runningCheck(env: DoctorEnv, config: Config): Check {
  const running = runningGuests(env.layout);
  if (running.length === 0) return { name: "running guests", status: "ok", detail: "no guest is running" };
  const okStates = new Set(config.mode === "complain" ? ["confined", "by libvirt", "complain"] : ["confined", "by libvirt"]);
  const show = (r: (typeof running)[number]) => `${displayName(r.name)} (${r.confinement}${r.label !== undefined && r.confinement !== "confined" ? `: ${displayName(r.label)}` : ""})`;
  const bad = running.filter((r) => !okStates.has(r.confinement));
  if (bad.length === 0) return { name: "running guests", status: "ok", detail: running.map(show).join(", ") };
  const one = bad.length === 1 ? shellQuote(bad[0]!.name) : "NAME";
  return {
    name: "running guests",
    status: "fail",
    detail: `not confined: ${bad.map(show).join(", ")}`,
    fix: `adopt ${bad.length === 1 ? "it" : "each"} (virt-aa-hook adopt ${one}) and restart it: virsh destroy ${one}; virsh start ${one}`,
  };
}

/** Our template and abstraction in place and in step with the host's libvirt files. */
function nvramCheck(env: DoctorEnv, config: Config): Check {
  const { layout } = env;
  const name = "NVRAM isolation";
  const read = (p: string) => {
    try {
      return fs.readFileSync(layout.host(p), "utf8");
    } catch {
      return undefined;
    }
  };
  const { derivedTemplate, libvirtAbstraction, libvirtTemplate, ourAbstraction } = layout;
  if (layout.template !== derivedTemplate) {
    return {
      name,
      status: "fail",
      detail: `template = ${layout.template}, not ${derivedTemplate}: guests created from it may open each other's NVRAM in ${layout.libvirtNvramDir}`,
      fix: `run install.sh (it derives ${derivedTemplate}), and remove template = from ${layout.configPath}`,
    };
  }
  const problems: string[] = [];
  const hostAbstraction = read(libvirtAbstraction);
  const hostTemplate = read(libvirtTemplate);
  if (hostAbstraction !== undefined && read(ourAbstraction) !== deriveAbstraction(hostAbstraction, libvirtAbstraction).text) {
    problems.push(`${ourAbstraction} is not what ${libvirtAbstraction} gives now (libvirt upgraded, or edited)`);
  }
  if (hostTemplate !== undefined) {
    let want: string | undefined;
    try {
      want = deriveTemplate(hostTemplate, libvirtTemplate);
    } catch (err) {
      problems.push((err as Error).message);
    }
    if (want !== undefined && read(derivedTemplate) !== want) problems.push(`${derivedTemplate} is not what ${libvirtTemplate} gives now`);
  }
  const shared = sharedNvramProfiles(layout);
  if (shared.length > 0) {
    problems.push(`per-guest profiles including <abstractions/libvirt-qemu> (made before, or by libvirt): ${shared.join(", ")}`);
  }
  if (problems.length === 0) return { name, status: "ok", detail: `${derivedTemplate} includes ${ourAbstraction}, in step with ${libvirtAbstraction}` };
  return {
    name,
    status: "fail",
    detail: problems.join("; "),
    fix: shared.length > 0 && problems.length === 1
      ? "in each named profile, include <abstractions/virt-aa-hook-qemu> instead (it is the admin's file), or remove it while its guest is stopped so the next start creates it from the new template"
      : "run install.sh again (it derives both from the host's files)",
  };
}

/** Per-guest profiles we manage that still include libvirt's abstraction (shared NVRAM rule). */
function sharedNvramProfiles(layout: Layout): string[] {
  const out: string[] = [];
  for (const s of listStates(layout.host(layout.stateDir))) {
    try {
      const text = fs.readFileSync(layout.host(layout.profilePath(s.uuid)), "utf8");
      if (/#include\s+<abstractions\/libvirt-qemu>/.test(text)) out.push(`${layout.profileName(s.uuid)} (${displayName(s.name)})`);
    } catch {
      // no profile: nothing to say
    }
  }
  return out;
}

/** Records whose domain is neither defined with our label nor running: load-adopted releases them. */
function keptCheck(env: DoctorEnv): Check {
  const stale = listStates(env.layout.host(env.layout.stateDir)).filter(
    (s) => !definedWithOurLabel(env.layout, s.name, s.uuid) && !isActive(env.layout, s.name, s.uuid),
  );
  if (stale.length === 0) return { name: "kept profiles", status: "ok", detail: "every kept profile belongs to a running guest or a domain defined with its label" };
  return {
    name: "kept profiles",
    status: "warn",
    detail: `kept for domains no longer defined with their label and not running: ${stale.map((s) => `${s.profileName} (${displayName(s.name)})`).join(", ")}`,
    fix: "virt-aa-hook load-adopted (releases them)",
  };
}

/** seclabel: the profiles must be loaded at boot before libvirtd reads the domains. */
function bootCheck(env: DoctorEnv): Check {
  const { libvirtdDropIn, systemdUnitDir } = env.layout;
  if (fs.existsSync(env.layout.host(libvirtdDropIn))) {
    return { name: "loaded at boot", status: "ok", detail: `${libvirtdDropIn} runs virt-aa-hook load-adopted before libvirtd` };
  }
  if (fs.existsSync(env.layout.host(systemdUnitDir))) {
    return { name: "loaded at boot", status: "fail", detail: `${libvirtdDropIn} missing: after a reboot libvirtd drops adopted domains`, fix: "run install.sh again" };
  }
  return { name: "loaded at boot", status: "warn", detail: "no systemd: run virt-aa-hook load-adopted at boot before libvirtd starts, or libvirtd drops adopted domains" };
}

/**
 * The hook's profile, libvirtd's and every per-guest profile compile, as the installer checks them:
 * the first two with includes from the system's AppArmor directory (where they are installed), the
 * per-guest ones from the configured `apparmor_dir`, as the hook compiles them.
 */
async function compileCheck(env: DoctorEnv): Promise<Check> {
  const { layout } = env;
  const features = compileFeatures(layout);
  const system = [layout.hookProfile, layout.libvirtdProfile]
    .filter((p) => fs.existsSync(layout.host(p)))
    .map((p) => path.posix.relative(layout.systemApparmorDir, p));
  const guests: string[] = [];
  // Profiles of older versions include their .files without `if exists`: while the .files is gone
  // (the guest stopped) they cannot compile, which is no fault of theirs (legacyIncludes says it).
  const legacy = new Set(legacyIncludes(layout).map((l) => l.profileName));
  const profilesDir = layout.host(layout.profilesDir);
  if (fs.existsSync(profilesDir)) {
    for (const f of fs.readdirSync(profilesDir).sort()) {
      if (isProfileName(f) && !legacy.has(f)) guests.push(path.posix.relative(layout.apparmorDir, `${layout.profilesDir}/${f}`));
    }
  }
  const failed = [
    ...(await compileProfiles(layout.parser, layout.host(layout.systemApparmorDir), system, features)),
    ...(await compileProfiles(layout.parser, layout.host(layout.apparmorDir), guests, features)),
  ];
  const profiles = [...system, ...guests];
  return failed.length === 0
    ? { name: "profiles compile", status: "ok", detail: `${profiles.length} profile(s): ${profiles.join(", ")}` }
    : { name: "profiles compile", status: "fail", detail: failed.map((f) => `${f.profile}: ${f.message}`).join("; "), fix: "fix the named files (per-guest profiles are yours to edit; .files are regenerated at the next start)" };
}

/**
 * The template compiles on its own (with an empty .files): a syntax error in it, or in an
 * abstraction or local override it includes, is named with its file and line (doctor/template.ts).
 */
async function templateCheck(env: DoctorEnv): Promise<Check> {
  const { layout } = env;
  const name = "template compiles";
  if (!fs.existsSync(layout.host(layout.template))) return { name, status: "skip", detail: `${layout.template} missing (see "template and abstraction")` };
  const features = compileFeatures(layout);
  const problem = await templateProblem(layout, { ...(features !== undefined ? { features } : {}), scratchIn: os.tmpdir() });
  if (problem === undefined) return { name, status: "ok", detail: `${layout.template} (with an empty .files)` };
  const at = `${problem.file}${problem.line !== undefined ? ` line ${problem.line}` : ""}`;
  return {
    name,
    status: "fail",
    detail: templateProblemText(problem),
    fix: `fix ${at}: no new guest can start until it compiles (apparmor_parser -QK ${layout.template} shows the same)`,
  };
}

/** Per-guest profiles whose plain include of a missing .files keeps them from compiling (older versions). */
function legacyIncludes(layout: Layout): { profileName: string; hostProfile: string; origin: string }[] {
  const out: { profileName: string; hostProfile: string; origin: string }[] = [];
  for (const uuid of guestUuidsOnDisk(layout)) {
    const g = readGuestFiles(layout, uuid);
    if (g.profile === undefined || g.files !== undefined) continue;
    if (legacyFilesInclude(g.profile.toString("utf8"), filesInclude(uuid))) out.push({ profileName: g.paths.profileName, hostProfile: g.paths.hostProfile, origin: g.origin });
  }
  return out;
}

/** Profiles without a defined domain (prune removes them), profiles of older versions that cannot load without their .files. */
function leftoversCheck(env: DoctorEnv): Check {
  const { layout } = env;
  const name = "left-over profiles";
  const definedNames = new Map(listDefined(layout).map((d) => [d.uuid, d.name]));
  const defined = new Set(definedNames.keys());
  const guests = guestUuidsOnDisk(layout).map((u) => readGuestFiles(layout, u));
  // Running or being started (a transient or incoming guest is defined nowhere meanwhile).
  const running = activeUuids(layout, guests, Date.now());
  const orphaned = guests.filter((g) => standing(g.uuid, g.state !== undefined, defined, running) === "orphaned");
  const kept = guests.filter((g) => standing(g.uuid, g.state !== undefined, defined, running) === "kept" && g.profile !== undefined);
  const legacy = legacyIncludes(layout);
  const show = (g: GuestFiles) => `${g.paths.profileName} (${displayName(g.state?.name ?? g.kept?.name ?? definedNames.get(g.uuid) ?? "-")}, ${g.origin})`;
  const problems: string[] = [];
  const fixes: string[] = [];
  if (orphaned.length > 0) {
    problems.push(`no defined domain has the UUID of: ${orphaned.map(show).join(", ")}`);
    fixes.push("virt-aa-hook prune --dry-run shows what goes, virt-aa-hook prune removes it (--force also edited profiles)");
  }
  if (legacy.length > 0) {
    problems.push(`made by an older virt-aa-hook, they include their missing .files without "if exists" and cannot load until their guest starts: ${legacy.map((l) => `${l.hostProfile} (${l.origin})`).join(", ")}`);
    fixes.push(`in each, replace "#include <libvirt/libvirt-<uuid>.files>" by "include if exists <libvirt/libvirt-<uuid>.files>" (virt-aa-hook never rewrites a profile once written), or remove a pristine one: the next start makes it anew`);
  }
  const keptText = kept.length > 0 ? `; kept for stopped defined guests: ${kept.map(show).join(", ")}` : "";
  if (problems.length === 0) return { name, status: "ok", detail: `every profile belongs to a defined or running guest${keptText}` };
  return { name, status: "warn", detail: problems.join("; ") + keptText, fix: fixes.join("; ") };
}

function domainsCheck(env: DoctorEnv, config: Config): Check {
  if (config.attach === "none") return { name: "domains adopted", status: "skip", detail: 'attach = "none": no domain is adopted' };
  const dir = env.layout.host(env.layout.libvirtDomainsDir);
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".xml")).sort() : [];
  const bad: { name: string; why: string }[] = [];
  for (const f of files) {
    try {
      const facts = attachFacts(fs.readFileSync(path.join(dir, f), "utf8"));
      const problem = adoptionProblem(facts, config.attach, env.layout);
      if (problem) bad.push({ name: facts.name, why: problem });
    } catch (err) {
      bad.push({ name: f.slice(0, -4), why: (err as Error).message });
    }
  }
  if (bad.length === 0) return { name: "domains adopted", status: "ok", detail: `${files.length} defined domain(s) use attach = ${config.attach}` };
  const fix = `virt-aa-hook adopt ${bad.length === 1 ? shellQuote(bad[0]!.name) : "--all"}`;
  const list = bad.map((b) => `${displayName(b.name)} (${b.why})`).join("; ");
  // seclabel next to libvirt's AppArmor driver: an unadopted domain is confined by libvirt's own
  // generator (attach/ownership.ts), unless require_attach refuses it.
  if (config.attach === "seclabel" && !config.requireAttach && readSecurityDriver(env.layout).effective === "apparmor") {
    return { name: "domains adopted", status: "warn", detail: `left to libvirt's own AppArmor driver: ${list}`, fix };
  }
  // helper: a domain with our static label is still confined (the hook loads its profile, libvirt
  // makes the transition), only without the grants libvirt asks virt-aa-helper for after start.
  if (config.attach === "helper") {
    const confinedAnyway = bad.every((b) => b.why.startsWith("static label libvirt-"));
    return { name: "domains adopted", status: confinedAnyway ? "warn" : "fail", detail: `not labelled dynamically (libvirt runs no virt-aa-helper for them): ${list}`, fix };
  }
  return { name: "domains adopted", status: "fail", detail: `not adopted: ${list}`, fix };
}

/** The report: one line per check, a fix line under each failure, a summary. */
export function formatReport(checks: Check[]): string {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${c.status === "ok" ? "ok  " : c.status === "fail" ? "FAIL" : c.status}  ${c.name}: ${c.detail}`);
    if ((c.status === "fail" || c.status === "warn") && c.fix) lines.push(`      fix: ${c.fix}`);
  }
  const failures = checks.filter((c) => c.status === "fail").length;
  const warnings = checks.filter((c) => c.status === "warn").length;
  const also = warnings > 0 ? ` (${warnings} warning(s))` : "";
  lines.push(failures === 0 ? `virt-aa-hook doctor: all good${also}` : `virt-aa-hook doctor: ${failures} problem(s) to fix${also}`);
  return lines.join("\n") + "\n";
}
