import type { OriginKind, Rule, RuntimeOwnership } from "../ir.js";
import type { Layout } from "../layout.js";
import type { HostView, PathFacts } from "./host-facts.js";
import { isUnder, locationRefusal, RECURSIVE_SUFFIXES } from "./restricted.js";
import { GL_CONFIG_DIRS, GL_CONFIG_FILES, NVIDIA_PROC_FILES } from "../host/drm.js";

/**
 * The policy by provenance: a canonical rule is judged by (the kind of element that asked for
 * it × the class of its path), not by its path alone. Pure: the host facts (file type, block
 * device use, swap, hugetlbfs mounts) and this guest's runtime ownership come in as data.
 *
 * Classes, in the order they are judged (docs/threat-model.md, "Policy by provenance"):
 *   1. sysfs: only a `<hostdev>`'s / NVMe disk's own PCI device files, only a TPM passthrough's
 *      `cancel` file; for every other element sysfs is a restricted location.
 *   2. restricted locations (restricted.ts), whoever asks.
 *   3. recursive grants over device trees, /dev/shm, libvirt-managed roots, hugetlbfs mounts.
 *   4. libvirt-managed runtime paths (layout.libvirtManagedRoots, /var/log/libvirt among them):
 *      only this guest's own (named after its id/name/UUID, its QEMU log, the NVRAM file its
 *      XML names; never libvirt's shared NVRAM directory, rules/ownership.ts).
 *   5. /dev/shm: POSIX shared memory objects of other host processes; only `<shmem>` names them.
 *   6. device nodes under /dev: an explicit allow-list per element kind (char and block names);
 *      an existing node must also have the type its name promises. Host terminals and VFIO groups
 *      are named in the refusal.
 *   7. device nodes outside /dev: character devices never; block devices like those under /dev.
 *   8. block devices: only disk-like elements, and never one the host uses (mounted, swap, held
 *      by device-mapper/LVM/md, or holding such a partition); nor a SCSI generic node whose disk
 *      the host uses.
 *   9. active swap files.
 * Paths the admin pre-authorises in the domain's metadata (`<vah:allow>`, origin "metadata") are
 * judged like any other element's by all of these (no device node of any kind, no sysfs) and, after
 * class 5, by what such an entry may name: a regular file (or a file not there yet), or with
 * tree="yes" an existing directory that is not libvirt's images directory or above it.
 */

export interface PolicyInput {
  ownership: RuntimeOwnership;
  host: HostView;
  /** Where the host keeps sysfs, device nodes, shared memory, and the hook's own files. */
  layout: Layout;
}

/**
 * Device-name allow-lists below (serial lines, block names, `/dev/vfio/<N>`...) are policy data,
 * spelled here as patterns; the roots they classify (sysfs, /dev, /dev/shm) come from the layout.
 */

/** Why the rule is refused, as "<source>: <reason>; <what to do>"; undefined when it is granted. */
export function refusal(rule: Rule, facts: PathFacts, input: PolicyInput): string | undefined {
  const why = reason(rule, facts, input);
  return why === undefined ? undefined : `${rule.source}: ${why}`;
}

function reason(rule: Rule, facts: PathFacts, input: PolicyInput): string | undefined {
  const { path } = rule;
  const { sysfsDir, shmDir, devDir } = input.layout;
  const kind = rule.origin?.kind;
  const recursive = RECURSIVE_SUFFIXES.has(rule.suffix);
  const what = kind === undefined ? "this element" : `a ${ELEMENT_NAMES[kind]}`;

  // Link (`l`): only a 9p share, where the guest's link(2) becomes QEMU's (rules/filesystems.ts).
  if (rule.perms.includes("l") && kind !== "filesystem") {
    return `the link permission is granted only to a 9p <filesystem>, not to ${what}`;
  }

  // The host's NSS database, which libvirt's smartcard emulation reads (rules/smartcard.ts): the
  // admin's choice of what to expose, read-only, the directory and the files directly in it.
  if (kind === "smartcard" && path === NSS_DEFAULT_DATABASE && (rule.suffix === "/" || rule.suffix === "/*") && READ_ONLY.test(rule.perms)) {
    return undefined;
  }

  // 1. sysfs, bound to the device the element resolved.
  if (isUnder(path, sysfsDir) && !recursive && sysfsGranted(rule)) return undefined;

  // The GL render path's host files (rules/gl.ts): read-only, exactly the configuration the GL
  // stack reads and the `/dev/dri/` listing; nothing else of /etc, /usr, /proc or /dev.
  if (kind === "gl" && glHostFileGranted(rule, input.layout)) return undefined;

  // SDL's X authority file, where desktops keep it (home directories, /run/user).
  if (kind === "xauth") {
    const wrong = xauthRefusal(rule, facts);
    if (wrong !== undefined) return wrong;
    if (XAUTH_HOMES.some((re) => re.test(path))) return undefined;
  }
  if (isUnder(path, sysfsDir) && (SYSFS_PCI_FILE.test(path) || SYSFS_TPM_CANCEL.some((re) => re.test(path)))) {
    return `sysfs files of a host device are granted only to the <hostdev> (or <tpm> passthrough) that assigns that very device, not to ${what}; assign the device with a <hostdev> instead`;
  }

  // 2. Restricted locations. A firmware image qemu.conf's `nvram` list names is firmware wherever
  // the admin keeps it: readable (never writable, never as a tree) by a firmware element. The
  // same for the TLS certificates of qemu.conf's cert dirs (/etc/pki/...): rules/tls.ts names only
  // files in those dirs (the XML decides whether a guest uses TLS, never which files), and no XML
  // can give a rule the "tls" origin.
  const location = locationRefusal(path, rule.perms, rule.suffix, input.layout);
  const configured = !recursive && readOnlyPerms(rule.perms) && ((kind === "firmware" && input.host.firmwareLoaders?.includes(path)) || kind === "tls");
  if (location !== undefined && !configured) return location;

  // 3. Recursive grants over trees that hold other guests', processes' or the host's devices.
  if (recursive) {
    const covered = recursiveReach(path, input);
    if (covered !== undefined) {
      return `recursive access would include ${covered}; share a directory of its own instead`;
    }
  }

  // 4. libvirt-managed runtime paths.
  const managed = managedRoot(path, input);
  if (managed !== undefined && !ownRuntime(path, recursive, input)) {
    return `${managed} holds libvirt's runtime state for every guest and for libvirt itself; only this guest's own entries (named after its id, name and UUID) are granted; name a path outside ${managed}`;
  }

  // 5. POSIX shared memory (and, with qemu.conf's memory_backing_dir = "/dev/shm", the guest's
  // own RAM directory there: rules/ownership.ts names it an own tree).
  if (isUnder(path, shmDir) && kind !== "shmem" && !(kind === "runtime" && ownRuntime(path, recursive, input))) {
    return `${shmDir} holds the shared memory of other host processes; only a <shmem> may name an object there; use another directory`;
  }

  // Pre-authorised paths: files and directories only, trees not over every guest's images.
  if (kind === "metadata") {
    const wrong = metadataRefusal(rule, facts, input);
    if (wrong !== undefined) return wrong;
  }
  // A smartcard database's entries (`<db>/*`) are a tree like a `<vah:allow tree>`: not over
  // every guest's images or a managed root (review18 F4).
  if (kind === "smartcard" && rule.suffix === "/*") {
    const wrong = imagesTreeRefusal(path, input);
    if (wrong !== undefined) return wrong;
  }

  // 6, 7. Device nodes.
  const deviceArea = isUnder(path, devDir) && !isUnder(path, shmDir) && managed === undefined;
  const allowed = kind === undefined ? NO_DEVICES : DEVICES[kind];
  if (deviceArea) {
    const isChar = allowed.char.some((re) => re.test(path)) || boundTap(rule);
    const isBlock = allowed.block && BLOCK_NAMES.some((re) => re.test(path));
    if (!isChar && !isBlock) return deviceRefusal(path, what, kind, input.layout);
    if (isChar && facts.type !== "missing" && facts.type !== "char") {
      return `${path} should be a character device but is a ${TYPE_NAMES[facts.type]}; name the device node itself`;
    }
    if (!isChar && facts.type !== "missing" && facts.type !== "block") {
      return `${path} should be a block device but is a ${TYPE_NAMES[facts.type]}; name the device node itself`;
    }
  } else if (facts.type === "char") {
    return `character device nodes outside ${devDir} are never granted; name the node in ${devDir}`;
  }

  // 8. Block devices the host uses.
  if (facts.type === "block") {
    if (!allowed.block) return `block devices are granted only to a <disk>, a storage <hostdev>, a <filesystem> or an nvdimm, not to ${what}`;
    if (facts.blockUse.length > 0) {
      return `block device in use by the host: ${facts.blockUse.join("; ")}; give the guest a device the host does not use`;
    }
  }

  // A SCSI generic node of a disk the host uses: raw commands reach the disk behind the host's back.
  if (facts.type === "char" && facts.blockUse.length > 0) {
    return `SCSI disk in use by the host: ${facts.blockUse.join("; ")}; give the guest a disk the host does not use`;
  }

  // 9. Swap.
  if (facts.swap) return `active swap area (listed in /proc/swaps): it holds host memory; never give it to a guest`;
  return undefined;
}

/** Permissions that cannot change a file (restricted.ts READ_ONLY_PERMS). */
function readOnlyPerms(perms: string): boolean {
  return [...perms].every((p) => p === "r" || p === "k" || p === "m");
}

/**
 * libvirt's default smartcard database (VIR_DOMAIN_SMARTCARD_DEFAULT_DATABASE), the only one
 * granted inside a restricted location: any other `<database>` is judged like every path an XML
 * names (docs/threat-model.md, "Smartcard databases").
 */
const NSS_DEFAULT_DATABASE = "/etc/pki/nssdb";
const READ_ONLY = /^[rk]+$/;

// ---- sysfs ---------------------------------------------------------------------------------------

const PCI_ADDRESS = "[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]";
/** The files of one PCI device that device assignment opens (rules/vfio.ts: isAssignmentFile). */
const PCI_ASSIGNMENT_FILE = "(?:config|rom|vendor|device|reset|resource[0-9]*(?:_wc)?)";
const SYSFS_PCI_FILE = new RegExp(`^/sys/(?:devices/pci[0-9a-f]{4}:[0-9a-f]{2}(?:/${PCI_ADDRESS})+|bus/pci/devices/${PCI_ADDRESS})/[^/]+$`);

/** A TPM's `cancel` file, in the forms canonicalisation leaves (TPM 1.2's attribute exists nowhere else). */
const SYSFS_TPM_CANCEL: readonly RegExp[] = [
  /^\/sys\/devices\/(?:[^/]+\/)*tpm[0-9]+\/device\/cancel$/,
  /^\/sys\/devices\/(?:[^/]+\/)*(?:tpm|misc)\/tpm[0-9]+\/cancel$/,
  /^\/sys\/class\/(?:tpm|misc)\/tpm[0-9]+\/device\/cancel$/,
  // `/sys/class/misc/tpm0/device` resolves to the TPM's parent device (e.g. /sys/devices/pnp0/00:05).
  /^\/sys\/devices\/(?:[^/]+\/)+cancel$/,
];

function sysfsGranted(rule: Rule): boolean {
  const origin = rule.origin;
  if (origin === undefined || origin.device === undefined) return false;
  if (origin.kind === "hostdev-pci" || origin.kind === "nvme") {
    // The device's own directory must be the last address in the path: no parent bridge's, no
    // other function's, and only the files assignment uses (never `remove`, `driver_override`...).
    const own = new RegExp(
      `^/sys/(?:devices/pci[0-9a-f]{4}:[0-9a-f]{2}(?:/${PCI_ADDRESS})*|bus/pci/devices)/${escapeRegExp(origin.device)}/${PCI_ASSIGNMENT_FILE}$`,
    );
    return own.test(rule.path);
  }
  if (origin.kind === "tpm-passthrough") return SYSFS_TPM_CANCEL.some((re) => re.test(rule.path));
  if (origin.kind === "gl") return glSysfsGranted(rule, origin.device);
  return false;
}

/**
 * A GL guest's render node device (rules/gl.ts, `device` = its canonical sysfs directory, found from
 * the node's device number): read-only, only the attributes libdrm reads (host/drm.ts
 * drmDeviceFiles), the listing of its `drm/` directory and one of its minors' `uevent`.
 */
const GL_DEVICE_FILE = /^(?:uevent|vendor|device|subsystem_vendor|subsystem_device|revision|config)$/;
function glSysfsGranted(rule: Rule, device: string): boolean {
  if (rule.perms !== "r" || !device.startsWith("/sys/devices/") || !isUnder(rule.path, device) || rule.path === device) return false;
  const rest = rule.path.slice(device.length + 1);
  if (rule.suffix === "/") return rest === "drm";
  if (rule.suffix !== "") return false;
  return GL_DEVICE_FILE.test(rest) || /^drm\/(?:renderD|card)[0-9]+\/uevent$/.test(rest);
}

/** The GL configuration (host/drm.ts) and `/dev/dri/`, read-only, as rules/gl.ts names them. */
function glHostFileGranted(rule: Rule, layout: Layout): boolean {
  if (rule.perms !== "r") return false;
  const { path, suffix } = rule;
  if (suffix === "/") return path === layout.driDir || GL_CONFIG_DIRS.some((c) => c.dir === path);
  if (suffix !== "") return false;
  if (GL_CONFIG_FILES.includes(path) || NVIDIA_PROC_FILES.includes(path)) return true;
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash);
  const name = path.slice(slash + 1);
  return GL_CONFIG_DIRS.some((c) => c.dir === dir && name.endsWith(c.suffix) && name !== c.suffix);
}

// ---- SDL's X authority file ---------------------------------------------------------------------

/**
 * What X authority files are called: `~/.Xauthority`, gdm's `/run/user/<uid>/gdm/Xauthority`,
 * mutter's `.mutter-Xwaylandauth.<random>`, sddm's and startx's `xauth_<random>`/`.Xauth<random>`,
 * lightdm's `/run/lightdm/<user>/xauthority`. The XML names the file: anything else (an ssh key, a
 * shell start-up file) is not one, whatever directory it is in.
 */
const XAUTH_NAME = /^(?:\.?[Xx]authority|\.mutter-Xwaylandauth\.[A-Za-z0-9]+|xauth_[A-Za-z0-9]+|\.Xauth[A-Za-z0-9]*)$/;
/** Where those live although the place is closed to guests otherwise (users' dotfiles, /run/user). */
const XAUTH_HOMES: readonly RegExp[] = [/^\/home\/[^/]+\/(?:[^/]+\/)*[^/]+$/, /^\/run\/user\/[0-9]+\/(?:[^/]+\/)*[^/]+$/];

function xauthRefusal(rule: Rule, facts: PathFacts): string | undefined {
  const name = rule.path.slice(rule.path.lastIndexOf("/") + 1);
  if (!XAUTH_NAME.test(name) || rule.suffix !== "") {
    return `${rule.path} is not named like an X authority file (.Xauthority, Xauthority, xauth_*, .mutter-Xwaylandauth.*); name the file the X server's display manager wrote`;
  }
  if (rule.perms !== "r") return `an X authority file is only read (asked for "${rule.perms}")`;
  if (facts.type !== "file" && facts.type !== "missing") return `${rule.path} should be a regular file but is a ${TYPE_NAMES[facts.type]}`;
  return undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// ---- libvirt-managed runtime paths --------------------------------------------------------------

function managedRoot(path: string, input: PolicyInput): string | undefined {
  return [...input.ownership.managedRoots, ...input.host.hugetlbfsMounts].find((root) => isUnder(path, root));
}

function ownRuntime(path: string, recursive: boolean, input: PolicyInput): boolean {
  const own = input.ownership;
  if (own.ownTrees.some((tree) => isUnder(path, tree))) return true;
  if (!recursive && own.ownFiles.includes(path)) return true;
  if (!recursive && own.ownFilePrefixes?.some((p) => path.length > p.length && path.startsWith(p) && !path.slice(p.length).includes("/"))) return true;
  if (!recursive && own.runSubdirPrefix !== undefined && isUnder(path, own.runDir)) {
    // <run dir>/<helper subdir>/<id>-<short name>-...: swtpm, dbus, passt, slirp sockets and pids.
    const [subdir, name, ...deeper] = path.slice(own.runDir.length + 1).split("/");
    if (subdir !== undefined && name !== undefined && deeper.length === 0 && name.startsWith(own.runSubdirPrefix)) return true;
  }
  if (own.hugepageSubdir !== undefined) {
    return input.host.hugetlbfsMounts.some((mount) => isUnder(path, `${mount}/${own.hugepageSubdir}`));
  }
  return false;
}

/** What a recursive grant at `dir` would reach that it must not, or undefined. */
function recursiveReach(dir: string, input: PolicyInput): string | undefined {
  if (ownRuntime(dir, true, input)) return undefined;
  const roots = [...input.ownership.managedRoots, ...input.host.hugetlbfsMounts];
  const root = roots.find((r) => isUnder(r, dir) || isUnder(dir, r));
  if (root !== undefined) return `${root}, libvirt's runtime state for other guests and for itself`;
  const { shmDir, devDir } = input.layout;
  if (isUnder(shmDir, dir)) return `${shmDir}, the shared memory of other host processes`;
  if (isUnder(dir, devDir) && !isUnder(dir, shmDir)) return `the device nodes below ${dir}`;
  return undefined;
}

// ---- pre-authorised paths (domain metadata) -----------------------------------------------------

/**
 * A `<vah:allow>` names files and directories, never a device, socket or FIFO: those have their
 * own elements, each with its own allowances (a block device is a `<disk type='block'>`, judged
 * for host use). A tree must be a directory that exists when the hook runs: what it grants is then
 * judged on what it is, not on what might be created there later (the admin creates it first). A
 * tree may not be, or hold, libvirt's images directory: it would reach every guest's disks,
 * present and future, and, since a tree is held like a disk (hook/exclusive.ts), block every other
 * guest whose disk is in it.
 */
/**
 * A tree (a `<vah:allow tree>`, a smartcard database's entries) over libvirt's images directory or
 * one of its managed roots: every guest's images and runtime state, and, held for the
 * exclusive-write check, every other guest with a disk there made unstartable.
 */
function imagesTreeRefusal(path: string, input: PolicyInput): string | undefined {
  const images = libvirtImagesDir(input.layout);
  if (isUnder(images, path)) {
    return `recursive access would include ${images}, where libvirt keeps every guest's images; name a directory of this guest's own below it`;
  }
  const root = input.ownership.managedRoots.find((r) => isUnder(r, path));
  if (root !== undefined) return `recursive access would include ${root}, libvirt's runtime state for other guests and for itself; name a directory of this guest's own`;
  return undefined;
}

function metadataRefusal(rule: Rule, facts: PathFacts, input: PolicyInput): string | undefined {
  const { path } = rule;
  const tree = RECURSIVE_SUFFIXES.has(rule.suffix);
  if (facts.type === "block" || facts.type === "char" || facts.type === "socket" || facts.type === "fifo") {
    return `${path} is a ${TYPE_NAMES[facts.type]}; <allow> pre-authorises regular files and directories only (a device or socket belongs in its own element, e.g. <disk type='block'>)`;
  }
  if (tree) {
    if (facts.type === "missing") return `tree="yes" needs an existing directory and ${path} does not exist; create it before the guest starts`;
    if (facts.type !== "dir") return `tree="yes" needs a directory and ${path} is a ${TYPE_NAMES[facts.type]}; remove tree="yes" to grant the file alone`;
    return imagesTreeRefusal(path, input);
  }
  if (facts.type === "dir") return `${path} is a directory; add tree="yes" to grant it and everything below it`;
  return undefined;
}

/** libvirt's default storage pool, next to its per-guest state: `/var/lib/libvirt/images`. */
function libvirtImagesDir(layout: Layout): string {
  return `${layout.libvirtLibDir.slice(0, layout.libvirtLibDir.lastIndexOf("/"))}/images`;
}

// ---- device nodes -------------------------------------------------------------------------------

interface DeviceAllowance {
  /** Character device nodes (canonical names) this kind of element may name. */
  char: readonly RegExp[];
  /** Whether it may name block devices (BLOCK_NAMES under /dev, any block node elsewhere). */
  block: boolean;
}

/**
 * Host serial and parallel lines: what `<serial|parallel type='dev'>` exists for. Virtual
 * consoles, pseudo-terminals and the console are host terminals, not lines, and are not here.
 */
const SERIAL_LINES: readonly RegExp[] = [
  /^\/dev\/tty(?:S|USB|ACM|AMA|mxc|O|SAC|THS)[0-9]+$/,
  /^\/dev\/rfcomm[0-9]+$/,
  /^\/dev\/parport[0-9]+$/,
];
const NULL_DEVICE = /^\/dev\/null$/;
const INPUT_EVENTS = /^\/dev\/input\/event[0-9]+$/;
/** The VFIO container and groups; with iommufd (libvirt 11.x) `/dev/iommu` and the device cdevs. */
const VFIO = [/^\/dev\/vfio\/vfio$/, /^\/dev\/vfio\/[0-9]+$/, /^\/dev\/iommu$/, /^\/dev\/vfio\/devices\/vfio[0-9]+$/];
/** A macvtap's tap node: granted to an `<interface>` only as the node its rule family resolved. */
const TAP = /^\/dev\/tap[0-9]+$/;

/**
 * `/dev/tapN` of a `type='direct'` interface: the family resolved N from the macvtap link the
 * interface names (origin.device), so the XML cannot point at another guest's macvtap through
 * `<backend tap=...>` or any other element.
 */
function boundTap(rule: Rule): boolean {
  return rule.origin?.kind === "net" && rule.origin.device === rule.path && TAP.test(rule.path);
}

/** Block device names (canonical: /dev/disk/by-* and LVM's /dev/<vg>/<lv> links resolve to these). */
const BLOCK_NAMES: readonly RegExp[] = [
  /^\/dev\/(?:sd|vd|hd|xvd)[a-z]+[0-9]*$/,
  /^\/dev\/nvme[0-9]+n[0-9]+(?:p[0-9]+)?$/,
  /^\/dev\/mmcblk[0-9]+(?:p[0-9]+)?$/,
  /^\/dev\/dm-[0-9]+$/,
  /^\/dev\/(?:md|loop|nbd|zd|rbd|drbd|bcache|sr|fd|pmem|ram)[0-9]+(?:p[0-9]+)?$/,
  /^\/dev\/(?:mapper|md|zvol|rbd|drbd)\/[^/]+(?:\/[^/]+)*$/,
];

const NO_DEVICES: DeviceAllowance = { char: [], block: false };

const CHARDEV_DEV: DeviceAllowance = { char: [...SERIAL_LINES, NULL_DEVICE], block: false };
const INPUT: DeviceAllowance = { char: [INPUT_EVENTS], block: false };
const NET: DeviceAllowance = { char: [/^\/dev\/vhost-net$/, /^\/dev\/net\/tun$/, /^\/dev\/vhost-vdpa-[0-9]+$/], block: false };
const HOSTDEV_USB: DeviceAllowance = { char: [/^\/dev\/bus\/usb\/[0-9]{3}\/[0-9]{3}$/], block: false };
const HOSTDEV_SCSI: DeviceAllowance = { char: [/^\/dev\/sg[0-9]+$/], block: false };

/**
 * A runtime grant names no element, so it may use what the elements that get such grants may use
 * (libvirt's helper `-F` for disk/hostdev/NIC/input/chardev hotplug, an admin's `grant`, a network
 * port): the union of their allow-lists, and nothing wider. Sysfs never (it names no device).
 */
const GRANTED: DeviceAllowance = {
  // A macvtap hotplugged to a running guest reaches it as a helper `-F /dev/tapN` grant.
  char: [...new Set([...CHARDEV_DEV.char, ...INPUT.char, ...NET.char, TAP, ...HOSTDEV_USB.char, ...HOSTDEV_SCSI.char, ...VFIO])],
  block: true,
};

const DEVICES: Record<OriginKind, DeviceAllowance> = {
  disk: { char: [], block: true },
  "hostdev-storage": { char: [], block: true },
  filesystem: { char: [], block: true },
  memory: { char: [/^\/dev\/dax[0-9]+\.[0-9]+$/], block: true },
  nvme: { char: VFIO, block: false },
  "disk-vdpa": { char: [/^\/dev\/vhost-vdpa-[0-9]+$/], block: false },
  "hostdev-pci": { char: VFIO, block: false },
  "hostdev-mdev": { char: VFIO, block: false },
  "chardev-dev": CHARDEV_DEV,
  "chardev-file": { char: [NULL_DEVICE], block: false },
  "chardev-socket": NO_DEVICES,
  input: INPUT,
  // LXC's device passthrough: a serial line or an input device at most.
  "hostdev-misc": { char: [...SERIAL_LINES, INPUT_EVENTS], block: false },
  graphics: { char: [/^\/dev\/dri\/renderD[0-9]+$/, /^\/dev\/udmabuf$/], block: false },
  // NVIDIA's nodes (host/drm.ts nvidiaNodesFor; never UVM); `/dev/dri/` itself is glHostFileGranted's.
  gl: { char: [/^\/dev\/nvidia(?:ctl|-modeset|[0-9]+)$/], block: false },
  xauth: NO_DEVICES,
  net: NET,
  vsock: { char: [/^\/dev\/vhost-vsock$/], block: false },
  rng: { char: [/^\/dev\/(?:u?random|hwrng)$/], block: false },
  "launch-security": { char: [/^\/dev\/sev$/], block: false },
  tls: NO_DEVICES,
  "tpm-passthrough": { char: [/^\/dev\/tpm(?:rm)?[0-9]+$/], block: false },
  "hostdev-usb": HOSTDEV_USB,
  "hostdev-scsi": HOSTDEV_SCSI,
  "hostdev-scsi-host": { char: [/^\/dev\/vhost-scsi$/], block: false },
  sgx: { char: [/^\/dev\/sgx_vepc$/, /^\/dev\/sgx_provision$/], block: false },
  pstore: NO_DEVICES,
  smartcard: NO_DEVICES,
  firmware: NO_DEVICES,
  shmem: NO_DEVICES,
  "tpm-emulator": NO_DEVICES,
  "tpm-socket": NO_DEVICES,
  runtime: NO_DEVICES,
  // Pre-authorised paths are files and directories; a device has its own element.
  metadata: NO_DEVICES,
  granted: GRANTED,
};

/** Host terminals: pseudo-terminals, virtual consoles and their memory, the console. */
const TERMINAL = /^\/dev\/(?:pts(?:\/.*)?|ptmx|tty[0-9]*|tty[a-zA-Z]+[0-9]*|vcsu?a?[0-9]*|console|hvc[0-9]+|ttyprintk)$/;

function deviceRefusal(path: string, what: string, kind: OriginKind | undefined, layout: Layout): string {
  if (TERMINAL.test(path) && !SERIAL_LINES.some((re) => re.test(path))) {
    return `host terminals (pseudo-terminals, virtual consoles, the console) are never granted to guests; use <serial type='pty'> for a console, or type='dev' with a serial line such as /dev/ttyS0`;
  }
  if (VFIO.some((re) => re.test(path)) || isUnder(path, layout.vfioDir)) {
    return `VFIO devices are granted only to the <hostdev> or <disk type='nvme'> whose device is in that IOMMU group, not to ${what}; assign the device with a <hostdev>`;
  }
  const allowed = kind === undefined ? NO_DEVICES : DEVICES[kind];
  const list = [...allowed.char.map(patternText), ...(allowed.block ? ["block devices"] : [])];
  return `${path} is not a device node ${what} may use (${list.length === 0 ? "it may use none" : `allowed: ${list.join(", ")}`}); name a device of that kind or remove the element`;
}

/** A readable form of an allow-list entry for messages: `/dev/ttyS<N>`, `/dev/input/event<N>`. */
function patternText(re: RegExp): string {
  return re.source
    .replace(/^\^|\$$/g, "")
    .replace(/\\\//g, "/")
    .replace(/\[0-9\]\{3\}/g, "<NNN>")
    .replace(/\[0-9\]\+/g, "<N>")
    .replace(/\\\./g, ".")
    .replace(/\(\?:([^)]*)\)/g, "{$1}")
    .replace(/\|/g, ",")
    .replace(/\?/g, "");
}

const TYPE_NAMES: Record<PathFacts["type"], string> = {
  missing: "missing file",
  file: "regular file",
  dir: "directory",
  block: "block device",
  char: "character device",
  socket: "socket",
  fifo: "FIFO",
};

/** How messages name each kind of element. */
const ELEMENT_NAMES: Record<OriginKind, string> = {
  disk: "<disk>",
  nvme: "<disk type='nvme'>",
  "disk-vdpa": "<disk type='vhostvdpa'>",
  filesystem: "<filesystem>",
  firmware: "firmware or boot file",
  "chardev-file": "file or pipe chardev or log",
  "chardev-dev": "chardev of type='dev'",
  "chardev-socket": "unix socket chardev",
  graphics: "<graphics> or <video>",
  gl: "GL render path of a <graphics> or <video>",
  xauth: "<graphics type='sdl'> xauth file",
  input: "passthrough <input>",
  net: "<interface>",
  vsock: "<vsock>",
  rng: "<rng>",
  shmem: "<shmem>",
  memory: "<memory> device",
  sgx: "SGX EPC <memory> device",
  pstore: "<pstore>",
  smartcard: "host <smartcard>",
  "tpm-emulator": "emulated <tpm>",
  "tpm-passthrough": "passthrough <tpm>",
  "tpm-socket": "external <tpm>",
  "launch-security": "<launchSecurity>",
  tls: "TLS certificate from qemu.conf",
  "hostdev-pci": "PCI <hostdev>",
  "hostdev-mdev": "mdev <hostdev>",
  "hostdev-usb": "USB <hostdev>",
  "hostdev-scsi": "SCSI <hostdev>",
  "hostdev-scsi-host": "vhost-scsi <hostdev>",
  "hostdev-storage": "storage <hostdev>",
  "hostdev-misc": "misc <hostdev>",
  runtime: "per-guest runtime path",
  metadata: "pre-authorised path (<vah:allow> in the domain's metadata)",
  granted: "runtime grant",
};
