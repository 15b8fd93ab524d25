import path from "node:path";
import type { Config } from "./config.js";

/**
 * The one root-aware map of the host paths virt-aa-hook reads, writes, installs or must protect.
 *
 * Rules and messages always name paths as the host sees them ("/var/lib/libvirt/images/a.qcow2");
 * `host()` maps such a path to where it really is on this filesystem. With root "/" the two are
 * the same; with `--root DIR` every access happens under DIR, which is how tests and admins run
 * the whole tool without touching the machine.
 *
 * Which paths are spelled here (and nowhere else in src/):
 * - Ours: the config file, state, locks, log, parser cache, the AppArmor directory our profiles
 *   live in, the template, the installed files and what the installer keeps to undo them
 *   (manifest, backups). Those the config can move (`LOCATION_DEFAULTS`)
 *   come from the config (`Layout.from(root, config)`); `config.ts` takes its defaults from here.
 *   The config file itself cannot come from the config: it is a fact of the root alone.
 * - Host facts the hook reads, lists or must agree on in more than one module: libvirt's files
 *   and per-guest directories, /proc and sysfs files, the device directories both a rule family
 *   and the policy name (/dev/shm, /dev/vfio); and those the installer and doctor act on (the
 *   daemons' pid files, systemd).
 * Not here: paths that only one rule family names in a profile and never reads (a device node
 * such as /dev/vhost-net, a default such as /dev/random), which stay with that family as what
 * the device needs; and the restricted-location list (policy/restricted.ts), which is policy
 * data, except that it takes the hook's own locations from `ownLocations` here.
 */

/** The config keys that move one of our locations. */
export type LocationConfig = Pick<
  Config,
  "parser" | "featuresFile" | "cacheDir" | "template" | "apparmorDir" | "subdomainfs" | "logFile" | "emulatorDir"
>;

/** Where our configurable locations are when the config does not say ("" = none). */
export const LOCATION_DEFAULTS: Readonly<LocationConfig> = Object.freeze({
  parser: "/usr/sbin/apparmor_parser",
  featuresFile: "",
  cacheDir: "/var/cache/apparmor/virt-aa-hook",
  template: "/etc/apparmor.d/libvirt/TEMPLATE.qemu",
  apparmorDir: "/etc/apparmor.d",
  subdomainfs: "",
  logFile: "/var/log/libvirt/virt-aa-hook.log",
  emulatorDir: "/usr/bin",
});

/** The system's AppArmor directory (where the installer puts the hook's own profile). */
const SYSTEM_APPARMOR_DIR = "/etc/apparmor.d";
/** Where the installer puts our files. */
const INSTALL_DIR = "/usr/lib/virt-aa-hook";

/**
 * The template the installer derives from libvirt's (its abstraction without the NVRAM rule every
 * guest shares, src/install/derive.ts). When it exists and the config names no `template`, it is
 * the default (config.ts).
 */
export const DERIVED_TEMPLATE = `${SYSTEM_APPARMOR_DIR}/libvirt/TEMPLATE.virt-aa-hook-qemu`;

export class Layout {
  readonly root: string;

  /**
   * The layout of `root` with our locations where `config` puts them. `new Layout(root)` is the
   * layout before (or without) a config: every location at its default.
   */
  static from(root: string, config: Partial<LocationConfig>): Layout {
    return new Layout(root, config);
  }

  constructor(root = "/", config: Partial<LocationConfig> = {}) {
    this.root = path.resolve(root);
    const own = { ...LOCATION_DEFAULTS, ...definedOnly(config) };
    this.parser = own.parser;
    this.featuresFile = own.featuresFile;
    this.cacheDir = own.cacheDir;
    this.template = own.template;
    this.apparmorDir = own.apparmorDir;
    this.profilesDir = `${own.apparmorDir}/libvirt`;
    this.baseLibvirtAbstraction = `${own.apparmorDir}/abstractions/libvirt-qemu`;
    this.subdomainfs = own.subdomainfs;
    this.logFile = own.logFile;
    this.emulatorDir = own.emulatorDir;
  }

  get isRealRoot(): boolean {
    return this.root === "/";
  }

  /** Host path (absolute, as the guest's host sees it) → path on this filesystem. */
  host(hostPath: string): string {
    if (!hostPath.startsWith("/")) throw new Error(`not an absolute host path: ${hostPath}`);
    return this.isRealRoot ? hostPath : path.join(this.root, hostPath);
  }

  // ---- Ours, fixed (root only) -------------------------------------------------------------------

  /** The config file: read before there is a config, so no config can move it. */
  readonly configPath = "/etc/libvirt/virt-aa-hook.conf";
  /** One state record per guest. */
  readonly stateDir = "/var/lib/virt-aa-hook";
  /** Our directory under /run; the per-guest locks are in `lockDir`. */
  readonly runDir = "/run/virt-aa-hook";
  readonly lockDir = `${this.runDir}/locks`;
  /**
   * The compiled-policy store (apparmor/compiled-store.ts): compiled profiles keyed by everything
   * that makes them, kept across release and reboots. A cache (may be deleted at any time), root's
   * alone (0700).
   */
  readonly compiledStoreDir = "/var/cache/virt-aa-hook";
  /** The lock taken while the store evicts entries. */
  readonly compiledStoreLock = `${this.runDir}/locks/compiled-store.lock`;

  // ---- Ours, moved by the config (LocationConfig) ------------------------------------------------

  /** apparmor_parser on this machine: executed, never mapped through host(). */
  readonly parser: string;
  /** Features file for the parser's `-M`; "" = the kernel's own (or `fallbackFeaturesFile`). */
  readonly featuresFile: string;
  /** Parser cache (`-L`). */
  readonly cacheDir: string;
  /** TEMPLATE the per-guest profile is created from. */
  readonly template: string;
  /** The parser's `--base`: tunables/, abstractions/, libvirt/. */
  readonly apparmorDir: string;
  /** The per-guest profiles and `.files` (`apparmorDir`/libvirt). */
  readonly profilesDir: string;
  /** libvirt's abstraction as the parser's `--base` finds it for a template's `<abstractions/libvirt-qemu>`. */
  readonly baseLibvirtAbstraction: string;
  /** Load into this directory instead of the kernel; "" = the kernel. */
  readonly subdomainfs: string;
  /** One line per hook call; "" = no log. */
  readonly logFile: string;
  /** Where the real emulators are (the emulator wrapper execs them). */
  readonly emulatorDir: string;

  profileName(uuid: string): string {
    return `libvirt-${uuid}`;
  }
  profilePath(uuid: string): string {
    return `${this.profilesDir}/libvirt-${uuid}`;
  }
  filesPath(uuid: string): string {
    return `${this.profilesDir}/libvirt-${uuid}.files`;
  }

  /**
   * Every location of ours a guest must never be granted (policy/restricted.ts): what we read our
   * configuration and policy from, write state, locks and the log to, and execute.
   */
  get ownLocations(): string[] {
    return [
      this.configPath,
      this.stateDir,
      this.runDir,
      this.logFile,
      this.cacheDir,
      this.compiledStoreDir,
      this.apparmorDir,
      this.template,
      this.featuresFile,
      this.subdomainfs,
      this.emulatorDir,
      INSTALL_DIR,
      this.command,
    ].filter((location) => location !== "");
  }

  // ---- What the installer installs (install/, doctor/) -------------------------------------------

  readonly installDir = INSTALL_DIR;
  /** The system's AppArmor directory: the installer's files and libvirt's, whatever `apparmor_dir` says. */
  readonly systemApparmorDir = SYSTEM_APPARMOR_DIR;
  /** The hook libvirt runs (hooks/qemu). */
  readonly launcher = `${INSTALL_DIR}/qemu-hook`;
  readonly bundle = `${INSTALL_DIR}/virt-aa-hook.cjs`;
  /** The emulator wrapper (hooks/qemu-wrapper) and the per-emulator links to it. */
  readonly wrapper = `${INSTALL_DIR}/qemu-wrapper`;
  readonly wrapperDir = `${INSTALL_DIR}/bin`;
  /** The admin command. */
  readonly command = "/usr/sbin/virt-aa-hook";
  /** The hook's own AppArmor profile. */
  readonly hookProfile = `${SYSTEM_APPARMOR_DIR}/usr.lib.virt-aa-hook.qemu-hook`;
  /** libvirt's abstraction and template, and ours derived from them. */
  readonly libvirtAbstraction = `${SYSTEM_APPARMOR_DIR}/abstractions/libvirt-qemu`;
  readonly libvirtTemplate = `${SYSTEM_APPARMOR_DIR}/libvirt/TEMPLATE.qemu`;
  readonly ourAbstraction = `${SYSTEM_APPARMOR_DIR}/abstractions/virt-aa-hook-qemu`;
  readonly derivedTemplate = DERIVED_TEMPLATE;
  readonly libvirtdProfile = `${SYSTEM_APPARMOR_DIR}/usr.sbin.libvirtd`;
  readonly libvirtdLocalProfile = `${SYSTEM_APPARMOR_DIR}/local/usr.sbin.libvirtd`;
  /** systemd unit directory and our libvirtd drop-in. */
  readonly systemdUnitDir = "/etc/systemd/system";
  readonly libvirtdDropIn = `${this.systemdUnitDir}/libvirtd.service.d/virt-aa-hook.conf`;
  /** systemd is running (this machine's, never mapped), and where its systemctl may be. */
  readonly systemdRunDir = "/run/systemd/system";
  readonly systemctls: readonly string[] = ["/usr/bin/systemctl", "/bin/systemctl"];
  /** What uninstall works from, under the state directory: the manifest, backups, pristine copies. */
  readonly installManifest = `${this.stateDir}/install-manifest`;
  readonly installBackupDir = `${this.stateDir}/backup`;
  readonly installPristineDir = `${this.stateDir}/pristine`;
  /**
   * attach = "helper": libvirt's virt-aa-helper is diverted (dpkg-divert --rename) to
   * `libvirtHelperReal` and replaced by a link to our launcher (hooks/virt-aa-helper).
   */
  readonly helperLauncher = `${INSTALL_DIR}/virt-aa-helper`;
  readonly libvirtHelper = "/usr/lib/libvirt/virt-aa-helper";
  readonly libvirtHelperReal = "/usr/lib/libvirt/virt-aa-helper.real";
  /** dpkg's record of diversions (under the root) and dpkg-divert (this machine's program, never mapped). */
  readonly dpkgAdminDir = "/var/lib/dpkg";
  readonly dpkgDiversions = "/var/lib/dpkg/diversions";
  readonly dpkgDivert = "/usr/bin/dpkg-divert";
  /** The name our diversion is recorded under (`dpkg-divert --package`). */
  readonly divertPackage = "virt-aa-hook";
  /** The network hook launcher (hooks/network) and where libvirt finds it. */
  readonly networkLauncher = `${INSTALL_DIR}/network-hook`;
  /** this libvirt runs `network` and (>= 6.5) every program in `network.d/`. */
  readonly libvirtNetworkHookScript = "/etc/libvirt/hooks/network";
  readonly libvirtNetworkHookDropIn = "/etc/libvirt/hooks/network.d/virt-aa-hook";
  /** What the hook makes at run time at its default places (not where a config moves them): removed by uninstall. */
  readonly runtimeDirs: readonly string[] = [LOCATION_DEFAULTS.cacheDir, this.compiledStoreDir, this.runDir];

  // ---- libvirt ---------------------------------------------------------------------------------

  readonly libvirtConfigDir = "/etc/libvirt";
  readonly qemuConf = `${this.libvirtConfigDir}/qemu.conf`;
  /** libvirt's hook directory: `qemu` (one script) or `qemu.d/` (libvirt ≥ 6.5, several). */
  readonly libvirtHooksDir = `${this.libvirtConfigDir}/hooks`;
  /** Where the installer puts the hook: the one `qemu` script, or ours in `qemu.d/` (libvirt ≥ 6.5). */
  readonly libvirtHookScript = `${this.libvirtHooksDir}/qemu`;
  readonly libvirtHookDropIn = `${this.libvirtHooksDir}/qemu.d/virt-aa-hook`;
  /** libvirt < 6.5: a foreign `qemu` hook is moved here and run by our chain script. */
  readonly libvirtChainedHook = `${this.libvirtHooksDir}/qemu.virt-aa-hook-chained`;
  /** Persistent domain definitions (`<name>.xml`). */
  readonly libvirtDomainsDir = `${this.libvirtConfigDir}/qemu`;
  /** Persistent storage pool definitions (`<pool>.xml`), read to resolve `<disk type='volume'>`. */
  readonly libvirtStorageDir = `${this.libvirtConfigDir}/storage`;
  /** The daemons that run the hook (monolithic and modular). */
  readonly libvirtDaemons: readonly string[] = ["/usr/sbin/libvirtd", "/usr/sbin/virtqemud"];
  /** The daemons' pid files, first found wins (install --reload); /var/run is /run's old name. */
  readonly libvirtdPidFile = "/run/libvirtd.pid";
  readonly virtqemudPidFile = "/run/virtqemud.pid";
  readonly libvirtdPidFiles: readonly string[] = [this.libvirtdPidFile, "/var/run/libvirtd.pid", this.virtqemudPidFile];
  /** virsh, for `adopt`. */
  readonly virsh = "/usr/bin/virsh";
  /** Live state: `<name>.xml` and `<name>.pid` of running guests, helper sockets below. */
  readonly libvirtRunDir = "/run/libvirt/qemu";
  readonly libvirtLibDir = "/var/lib/libvirt/qemu";
  readonly libvirtLogDir = "/var/log/libvirt/qemu";
  /** libvirt's channelTargetDir: per-guest dirs for auto-named unix channel sockets (no qemu.conf key moves it). */
  readonly libvirtChannelTargetDir = `${this.libvirtLibDir}/channel/target`;
  /** libvirt's shared NVRAM directory (every guest's `*_VARS.fd`). */
  readonly libvirtNvramDir = `${this.libvirtLibDir}/nvram`;
  /**
   * swtpm's storage, state and log directories (libvirt's swtpmStorageDir, swtpmStateDir,
   * swtpmLogDir): fixed in qemu_conf.c virQEMUDriverConfigNew; no qemu.conf key moves them in
   * libvirt 9.0 or 10+ (only swtpm_user/swtpm_group are keys). What qemu.conf does move
   * (memory_backing_dir, hugetlbfs_mount, auto_dump_path, ...) is in host/qemu-conf.ts: QemuConf.
   */
  readonly swtpmStorageDir = "/var/lib/libvirt/swtpm";
  readonly swtpmStateDir = `${this.libvirtRunDir}/swtpm`;
  readonly swtpmLogDir = "/var/log/swtpm/libvirt/qemu";
  /** Where `<shmem>` doorbell servers listen without a path: `shmem-<name>-sock` below it. */
  readonly libvirtShmemSocketDir = "/var/lib/libvirt";

  /** libvirt's `<pid file>` and live XML of a running guest. */
  libvirtPidFile(name: string): string {
    return `${this.libvirtRunDir}/${name}.pid`;
  }
  libvirtStatusXml(name: string): string {
    return `${this.libvirtRunDir}/${name}.xml`;
  }

  /** Where libvirt's TLS certificate directories are by default (qemu.conf *_tls_x509_cert_dir). */
  readonly libvirtPkiDir = "/etc/pki";

  /**
   * Roots libvirt manages for every guest and for itself (policy: only a guest's own entries),
   * with the directories qemu.conf moves (`moved`: host/qemu-conf.ts qemuConfManagedRoots; the
   * hugetlbfs mounts come with the policy's host view).
   */
  libvirtManagedRoots(moved: readonly string[]): string[] {
    return [
      this.libvirtLibDir,
      this.libvirtChannelTargetDir,
      ...moved.filter((dir) => !(dir === this.libvirtLibDir || dir.startsWith(`${this.libvirtLibDir}/`))),
      // All of /run/libvirt: the daemons' sockets (libvirt-sock, virtqemud-sock, virtlogd-sock...)
      // and every guest's live XML, pid and helper sockets.
      path.posix.dirname(this.libvirtRunDir),
      this.swtpmStateDir,
      this.swtpmStorageDir,
      this.swtpmLogDir,
      // All of /var/log/libvirt: every guest's QEMU log (qemu/<name>.log) and the daemons' logs.
      path.posix.dirname(this.libvirtLogDir),
    ];
  }

  // ---- Kernel interfaces -----------------------------------------------------------------------

  readonly procDir = "/proc";
  readonly procMounts = "/proc/mounts";
  readonly procMountinfo = "/proc/self/mountinfo";
  readonly procSwaps = "/proc/swaps";
  readonly sysfsDir = "/sys";
  readonly securityfsDir = "/sys/kernel/security/apparmor";
  readonly apparmorEnabledFile = "/sys/module/apparmor/parameters/enabled";
  /** The parser's features when the kernel has none to give (no AppArmor, or a container). */
  readonly fallbackFeaturesFile = "/usr/share/apparmor-features/features";
  /** `M:m` → the block device's sysfs directory. */
  readonly sysDevBlock = "/sys/dev/block";
  readonly sysfsPciDevices = "/sys/bus/pci/devices";
  readonly sysfsMdevDevices = "/sys/bus/mdev/devices";
  readonly sysfsUsbDevices = "/sys/bus/usb/devices";
  readonly sysfsScsiDevices = "/sys/bus/scsi/devices";
  readonly sysfsClassDir = "/sys/class";
  readonly devDir = "/dev";
  /** POSIX shared memory: every host process's, `<shmem>` objects among them. */
  readonly shmDir = "/dev/shm";
  /** The VFIO container (`vfio`) and one node per IOMMU group. */
  readonly vfioDir = "/dev/vfio";
  /** DRM nodes (render nodes `renderD<N>`). */
  readonly driDir = "/dev/dri";
  /** Where libvirt looks for hugetlbfs when /proc/mounts lists none. */
  readonly defaultHugepagesDir = "/dev/hugepages";
  /** For adopt's virsh under `--root`. */
  readonly tmpDir = "/tmp";

  /** `/proc/<pid>`. */
  procPidDir(pid: number | string): string {
    return `${this.procDir}/${pid}`;
  }
  /** Where the kernel tells a process's AppArmor label: the LSM-specific file first, then the shared one. */
  apparmorLabelFiles(pid: number | string): string[] {
    return [`${this.procPidDir(pid)}/attr/apparmor/current`, `${this.procPidDir(pid)}/attr/current`];
  }
}

function definedOnly<T extends object>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}
