import path from "node:path";

/**
 * The one root-aware map of every host path virt-aa-hook reads or writes.
 *
 * Rules and messages always name paths as the host sees them ("/var/lib/libvirt/images/a.qcow2");
 * `host()` maps such a path to where it really is on this filesystem. With root "/" the two are
 * the same; with `--root DIR` every access happens under DIR, which is how tests and admins run
 * the whole tool without touching the machine.
 */
export class Layout {
  readonly root: string;

  constructor(root = "/") {
    this.root = path.resolve(root);
  }

  get isRealRoot(): boolean {
    return this.root === "/";
  }

  /** Host path (absolute, as the guest's host sees it) → path on this filesystem. */
  host(hostPath: string): string {
    if (!hostPath.startsWith("/")) throw new Error(`not an absolute host path: ${hostPath}`);
    return this.isRealRoot ? hostPath : path.join(this.root, hostPath);
  }

  // Host paths (not yet mapped through host()). Config may override some of them.
  readonly apparmorDir = "/etc/apparmor.d";
  readonly profilesDir = "/etc/apparmor.d/libvirt";
  readonly templatePath = "/etc/apparmor.d/libvirt/TEMPLATE.qemu";
  readonly configPath = "/etc/libvirt/virt-aa-hook.conf";
  readonly stateDir = "/var/lib/virt-aa-hook";
  readonly lockDir = "/run/virt-aa-hook/locks";
  readonly cacheDir = "/var/cache/apparmor/virt-aa-hook";
  readonly logPath = "/var/log/libvirt/virt-aa-hook.log";
  readonly securityfsDir = "/sys/kernel/security/apparmor";
  readonly libvirtRunDir = "/run/libvirt/qemu";
  readonly libvirtLibDir = "/var/lib/libvirt/qemu";
  readonly libvirtLogDir = "/var/log/libvirt/qemu";
  readonly sysfsPciDevices = "/sys/bus/pci/devices";
  /** Persistent storage pool definitions (`<pool>.xml`), read to resolve `<disk type='volume'>`. */
  readonly libvirtStorageDir = "/etc/libvirt/storage";
  /** qemu.conf channel_target_dir: per-guest dirs for auto-named unix channel sockets. */
  readonly libvirtChannelTargetDir = "/var/lib/libvirt/qemu/channel/target";
  /** qemu.conf memory_backing_dir: per-guest dirs for file-backed guest RAM. */
  readonly libvirtMemoryBackingDir = "/var/lib/libvirt/qemu/ram";
  /** Where libvirt looks for hugetlbfs when /proc/mounts lists none. */
  readonly defaultHugepagesDir = "/dev/hugepages";
  readonly procMounts = "/proc/mounts";

  profileName(uuid: string): string {
    return `libvirt-${uuid}`;
  }
  profilePath(uuid: string): string {
    return `${this.profilesDir}/libvirt-${uuid}`;
  }
  filesPath(uuid: string): string {
    return `${this.profilesDir}/libvirt-${uuid}.files`;
  }
}
