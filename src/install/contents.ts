/**
 * What install writes, made from the source tree (bundle, hooks/, install/) and this host (its
 * libvirt files, qemu.conf, the kernel, the emulator directory): the `Wanted` the planner compares
 * with the host. Reads only.
 */
import fs from "node:fs";
import path from "node:path";
import type { AttachMode } from "../attach/index.js";
import type { Layout } from "../layout.js";
import { deriveAbstraction, deriveTemplate, installedConfig } from "./derive.js";
import { helperDivertable } from "./divert.js";
import { chooseAttach, readSecurityDriver } from "./host.js";
import { Refusal, withoutOurBlock, type Put, type Wanted } from "./plan.js";

/** The files of a source tree install reads (relative to --source). */
export const SOURCE_FILES = {
  bundle: "dist/virt-aa-hook.cjs",
  launcher: "hooks/qemu",
  wrapper: "hooks/qemu-wrapper",
  config: "install/virt-aa-hook.conf",
  hookProfile: "install/apparmor/usr.lib.virt-aa-hook.qemu-hook",
  libvirtdLocal: "install/apparmor/usr.sbin.libvirtd.local",
  template: "install/apparmor/libvirt/TEMPLATE.qemu",
  abstraction: "install/apparmor/abstractions/libvirt-qemu",
} as const;

/**
 * Launchers installed when the source tree has them (built by other parts of the project): the
 * virt-aa-helper entry point (attach = "helper") and the network hook. Each is shaped like
 * hooks/qemu: its NODE= and BUNDLE= lines are rewritten.
 */
export const OPTIONAL_SOURCE_FILES = {
  helperLauncher: "hooks/virt-aa-helper",
  networkLauncher: "hooks/network",
} as const;

export interface Source {
  dir: string;
  read(file: keyof typeof SOURCE_FILES): Buffer;
  /** An optional file, or undefined when the tree has none. */
  optional(file: keyof typeof OPTIONAL_SOURCE_FILES): Buffer | undefined;
  /**
   * What `npm run build` put beside the bundle, installed beside it: the loader hooks/qemu runs
   * the bundle with (`loader.cjs`), the V8 code caches it compiles the bundle with
   * (`virt-aa-hook.cjs.*.v8cache`) and files the bundle loads at run time (`virt-aa-hook-*.cjs`).
   */
  companions: string[];
}

export function openSource(dir: string): Source {
  for (const rel of Object.values(SOURCE_FILES)) {
    if (!fs.statSync(path.join(dir, rel), { throwIfNoEntry: false })?.isFile()) {
      throw new Refusal(`${dir}/${rel}: missing from the source tree (run 'npm run build' for dist/)`);
    }
  }
  const dist = path.join(dir, "dist");
  return {
    dir,
    read: (file) => fs.readFileSync(path.join(dir, SOURCE_FILES[file])),
    optional: (file) => {
      const p = path.join(dir, OPTIONAL_SOURCE_FILES[file]);
      return fs.statSync(p, { throwIfNoEntry: false })?.isFile() ? fs.readFileSync(p) : undefined;
    },
    companions: fs
      .readdirSync(dist)
      .filter((f) => /^(?:loader\.cjs|virt-aa-hook(?:\.cjs\..*\.v8cache|-[a-z0-9-]+\.cjs))$/.test(f) && fs.statSync(path.join(dist, f)).isFile())
      .sort(),
  };
}

/** `text` with the one line `line` matches replaced, or a refusal naming how many there were. */
function rewriteOne(text: string, line: RegExp, by: string, what: string, file: string): string {
  const n = text.match(new RegExp(line.source, "gm"))?.length ?? 0;
  if (n !== 1) throw new Refusal(`${file}: expected exactly one ${what}, found ${n}`);
  return text.replace(new RegExp(line.source, "m"), () => by);
}

export interface Host {
  /** The layout the config in effect makes (the existing config, or the defaults): Layout.from. */
  layout: Layout;
  /** The node the hook runs, as given, and its real path (what the hook's profile names). */
  node: string;
  nodeReal: string;
  libvirtVersion: string;
  hookDirs: boolean;
  /** The attach mode of the config already there; undefined when there is none (install writes one). */
  existingAttach?: AttachMode;
}

export function wantedFiles(src: Source, host: Host): Wanted {
  const { layout } = host;
  const text = (f: keyof typeof SOURCE_FILES) => src.read(f).toString("utf8");
  const file = (f: keyof typeof SOURCE_FILES) => `${src.dir}/${SOURCE_FILES[f]}`;
  const put = (p: string, content: string | Buffer, mode = 0o644): Put => ({ path: p, content: Buffer.from(content), mode });
  const hostText = (p: string) => {
    const real = layout.host(p);
    return fs.existsSync(real) ? fs.readFileSync(real, "utf8") : undefined;
  };

  const rewriteLauncher = (content: string, name: string) => {
    const withNode = rewriteOne(content, /^NODE=.*$/, `NODE=${host.node}`, "NODE= line to rewrite", name);
    return rewriteOne(withNode, /^BUNDLE=.*$/, `BUNDLE=${layout.bundle}`, "BUNDLE= line to rewrite", name);
  };
  const launcher = rewriteLauncher(text("launcher"), file("launcher"));
  const optionalLauncher = (f: keyof typeof OPTIONAL_SOURCE_FILES, to: string): Put | undefined => {
    const content = src.optional(f);
    return content === undefined ? undefined : put(to, rewriteLauncher(content.toString("utf8"), `${src.dir}/${OPTIONAL_SOURCE_FILES[f]}`), 0o755);
  };
  const helperLauncher = optionalLauncher("helperLauncher", layout.helperLauncher);
  const networkLauncher = optionalLauncher("networkLauncher", layout.networkLauncher);
  const wrapper = rewriteOne(text("wrapper"), /^ALLOW_ENV_OVERRIDES=yes$/, "ALLOW_ENV_OVERRIDES=no", "ALLOW_ENV_OVERRIDES=yes line", file("wrapper"));
  const profileText = text("hookProfile");
  if (!/^@\{virt_aa_hook_node\}=.*$/m.test(profileText)) throw new Refusal(`${file("hookProfile")}: no @{virt_aa_hook_node}= line to rewrite`);
  const hookProfile = profileText.replace(/^@\{virt_aa_hook_node\}=.*$/gm, () => `@{virt_aa_hook_node}=${host.nodeReal}`);

  // The command admins run, on PATH: node and the bundle by absolute path, like the hook launcher.
  const command =
    "#!/bin/sh\n# virt-aa-hook command (installed by virt-aa-hook install.sh; uninstall.sh removes it).\n" + `exec ${host.node} ${layout.bundle} "$@"\n`;
  // libvirtd (systemd): load the profiles adopted domains' static labels name before libvirtd
  // reads their definitions, or it drops them (src/adopted/load.ts). "-": a failure must not stop libvirtd.
  const dropin =
    "# Installed by virt-aa-hook install.sh (uninstall.sh removes it). libvirt refuses a domain whose\n" +
    "# static AppArmor label names a profile that is not loaded: load them before libvirtd starts.\n" +
    `[Unit]\nAfter=apparmor.service\n\n[Service]\nExecStartPre=-${layout.command} load-adopted\n`;

  // logrotate (where the host has it): the hook opens the log for each line it appends, so a
  // rotated log is simply created again at the next call; nothing needs to be signalled.
  const logrotate =
    "# Installed by virt-aa-hook install.sh (uninstall.sh removes it): the hook's log, one line per hook call.\n" +
    `${layout.logFile} {\n\tweekly\n\trotate 4\n\tcompress\n\tdelaycompress\n\tmissingok\n\tnotifempty\n\tnocreate\n}\n`;
  // A path logrotate would read as a pattern or split (glob characters, spaces) gets no entry.
  const withLogrotate = /^\/[A-Za-z0-9/._+-]+$/.test(layout.logFile) && fs.statSync(layout.host(layout.logrotateDir), { throwIfNoEntry: false })?.isDirectory() === true;

  // Config (used only where none exists), abstraction and template derived from this host, or
  // from the fallbacks installed where the host has none.
  const choice = chooseAttach(readSecurityDriver(layout), helperDivertable(layout));
  const config = installedConfig(text("config"), choice);
  // The mode the installed config will say: the existing config's, else the one chosen now.
  const attach = host.existingAttach ?? choice.attach;
  if (attach === "helper" && helperLauncher === undefined) {
    throw new Refusal(`attach = "helper" needs ${src.dir}/${OPTIONAL_SOURCE_FILES.helperLauncher} (the virt-aa-helper launcher), missing from the source tree`);
  }
  const abstraction = deriveAbstraction(hostText(layout.libvirtAbstraction) ?? text("abstraction"), layout.libvirtAbstraction).text;
  let template: string;
  try {
    template = deriveTemplate(hostText(layout.libvirtTemplate) ?? text("template"), layout.libvirtTemplate);
  } catch (err) {
    throw new Refusal(`cannot derive the config, abstraction and template for this host: ${(err as Error).message}`);
  }

  // local/usr.sbin.libvirtd with our block replaced (or appended), everything else as it was.
  const localNow = layout.host(layout.libvirtdLocalProfile);
  const localStat = fs.statSync(localNow, { throwIfNoEntry: false });
  const localOld = localStat?.isFile() ? withoutOurBlock(fs.readFileSync(localNow, "utf8")) : "";
  const local = put(layout.libvirtdLocalProfile, localOld + text("libvirtdLocal"), localStat?.isFile() ? localStat.mode & 0o7777 : 0o644);

  const emulatorDir = layout.emulatorDir;
  return {
    stateDir: layout.stateDir,
    manifest: layout.installManifest,
    backupDir: layout.installBackupDir,
    pristineDir: layout.installPristineDir,
    lib: [
      put(layout.bundle, src.read("bundle")),
      // The V8 code caches made for this bundle (docs/performance.md; optional: without them, or
      // with a different node, the hook compiles the bundle as usual), and what it loads beside it.
      ...src.companions.map((c) => put(`${layout.installDir}/${c}`, fs.readFileSync(path.join(src.dir, "dist", c)))),
      put(layout.launcher, launcher, 0o755),
      put(layout.wrapper, wrapper, 0o755),
      ...(helperLauncher ? [helperLauncher] : []),
      ...(networkLauncher ? [networkLauncher] : []),
    ],
    wrapperBin: layout.wrapperDir,
    emulators: emulatorsIn(layout.host(emulatorDir)),
    emulatorDir,
    config: put(layout.configPath, config),
    libvirtFallbacks: [put(layout.libvirtTemplate, src.read("template")), put(layout.libvirtAbstraction, src.read("abstraction"))],
    derived: [
      put(layout.ourAbstraction, abstraction),
      put(layout.derivedTemplate, template),
      put(layout.command, command, 0o755),
      ...(withLogrotate ? [put(layout.logrotateEntry, logrotate)] : []),
    ],
    ...(fs.statSync(layout.host(layout.systemdUnitDir), { throwIfNoEntry: false })?.isDirectory() ? { dropin: put(layout.libvirtdDropIn, dropin) } : {}),
    apparmor: [put(layout.hookProfile, hookProfile), local],
    hook: {
      dirs: host.hookDirs,
      libvirtVersion: host.libvirtVersion,
      launcher: layout.launcher,
      dLink: layout.libvirtHookDropIn,
      main: layout.libvirtHookScript,
      chained: layout.libvirtChainedHook,
      chain: Buffer.from(chainScript(layout)),
    },
    helper: {
      active: attach === "helper",
      path: layout.libvirtHelper,
      to: layout.libvirtHelperReal,
      package: layout.divertPackage,
      launcher: layout.helperLauncher,
      diversions: layout.dpkgDiversions,
      configPath: layout.configPath,
      attach,
    },
    ...(networkLauncher
      ? { network: { dirs: host.hookDirs, libvirtVersion: host.libvirtVersion, launcher: layout.networkLauncher, dLink: layout.libvirtNetworkHookDropIn, main: layout.libvirtNetworkHookScript } }
      : {}),
    command: { path: layout.command, mark: /^# virt-aa-hook command/m },
  };
}

/** QEMU binaries the wrapper stands in for: qemu-system-*, qemu-kvm, kvm (executable files). */
function emulatorsIn(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const isEmulator = (n: string) => {
    try {
      fs.accessSync(path.join(dir, n), fs.constants.X_OK);
      return fs.statSync(path.join(dir, n)).isFile();
    } catch {
      return false;
    }
  };
  // The order a shell glob gives (C locale), then the two fixed names.
  const systems = names.filter((n) => n.startsWith("qemu-system-")).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return [...systems, ...["qemu-kvm", "kvm"].filter((n) => names.includes(n))].filter(isEmulator);
}

/** libvirt < 6.5 runs one qemu hook only: a foreign one is kept running through this chain. */
function chainScript(layout: Layout): string {
  return `#!/bin/sh
# virt-aa-hook chain (written by virt-aa-hook install.sh; uninstall.sh restores the original hook).
# This libvirt runs only ${layout.libvirtHookScript}, so this runs the hook that was here before
# (${layout.libvirtChainedHook}) and then virt-aa-hook, with the same arguments and the same XML on stdin. For
# migrate and restore, XML printed by the first is what the second gets, and the last XML printed
# is what libvirt gets.
set -eu
tmp=$(/bin/mktemp)
trap '/bin/rm -f "$tmp" "$tmp.out"' EXIT
/bin/cat > "$tmp"
${layout.libvirtChainedHook} "$@" < "$tmp" > "$tmp.out"
case \${2:-} in
    migrate|restore)
        if [ -s "$tmp.out" ]; then /bin/cat "$tmp.out" > "$tmp"; fi
        ${layout.launcher} "$@" < "$tmp" > "$tmp.out.2" || { rc=$?; /bin/rm -f "$tmp.out.2"; exit "$rc"; }
        if [ -s "$tmp.out.2" ]; then /bin/cat "$tmp.out.2"; else /bin/cat "$tmp.out"; fi
        /bin/rm -f "$tmp.out.2"
        ;;
    *) ${layout.launcher} "$@" < "$tmp" ;;
esac
`;
}
