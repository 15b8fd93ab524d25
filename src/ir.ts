import type { Layout } from "./layout.js";

/**
 * The rule IR: what one guest's QEMU may touch, before any profile text exists.
 *
 * `path` is always a literal, canonical host path (never a pattern). The only way to widen a rule
 * beyond that single path is `suffix`, chosen from a fixed list, which the renderer appends after
 * escaping the literal part.
 */

/** Glob suffixes a rule may carry. Anything else is not expressible on purpose. */
export const GLOB_SUFFIXES = ["", "/", "/**", "{,/**}", "/*"] as const;
export type GlobSuffix = (typeof GLOB_SUFFIXES)[number];

/**
 * AppArmor file permissions we emit, in canonical order. `r` read, `w` write, `k` lock,
 * `m` mmap-exec (firmware/pflash is never needed executable, so `m` is rare), `a` append,
 * `l` link: create a hard link at the path (9p shares, where the guest makes links inside the
 * share; libvirt's virt-aa-helper grants 9p `rwl`). A link changes the file system like a write,
 * so everything that asks "may this rule change the file?" uses `isWritablePerms`, never `w` alone.
 */
export type Perm = "r" | "w" | "a" | "l" | "k" | "m";
export const PERM_ORDER: readonly Perm[] = ["r", "w", "a", "l", "k", "m"];

/** Permissions that change the file system at the path: write, append, link. */
export const WRITE_PERMS: ReadonlySet<string> = new Set(["w", "a", "l"]);

/** Whether a permission string lets the guest change what is at the path (w, a or l). */
export function isWritablePerms(perms: string): boolean {
  return [...perms].some((p) => WRITE_PERMS.has(p));
}

/**
 * The kind of element (or derivation) a rule comes from: what the policy judges a path against.
 * Set by the rule family that builds the rule, never from XML text, so an XML cannot claim a
 * kind it is not: a serial port's path is judged as a serial port's whatever it names.
 */
export const ORIGIN_KINDS = [
  /** `<disk>`: images, backing chains, data files, dir disks, vhost-user/reservation sockets (rules/storage.ts). */
  "disk",
  /** `<disk type='nvme'>`: the controller through VFIO. */
  "nvme",
  /** `<disk type='vhostvdpa'>`: the vhost-vdpa character device (rules/storage.ts). */
  "disk-vdpa",
  /** `<filesystem>`: 9p trees, virtiofs sockets, loop/nbd images. */
  "filesystem",
  /** `<os>` loader, nvram, kernel, initrd, dtb, ACPI tables, shim; `<sysinfo type='fwcfg'>` files. */
  "firmware",
  /** chardev `type='file'`/`'pipe'` backends and every chardev `<log file>`. */
  "chardev-file",
  /** chardev `type='dev'`: a host serial or parallel line. */
  "chardev-dev",
  /** chardev `type='unix'`: a socket QEMU binds or connects to. */
  "chardev-socket",
  /** `<graphics>` listen sockets and render nodes, `<video>` render nodes. */
  "graphics",
  /**
   * What the OpenGL render path of a GL `<graphics>`/vhost-user `<video>` reads on the host
   * (rules/gl.ts): `/dev/dri/`, its render node's sysfs device (`device` below), EGL/drirc
   * configuration, NVIDIA's nodes. From host discovery, never from XML text.
   */
  "gl",
  /** `<graphics type='sdl' xauth=...>`: the X authority file, read-only. */
  "xauth",
  /** `<input type='passthrough'|'evdev'>`. */
  "input",
  /** `<interface>`: vhost-net, taps, vDPA, vhost-user sockets. */
  "net",
  /** `<vsock>`. */
  "vsock",
  /** `<rng><backend model='random'>`. */
  "rng",
  /** `<shmem>` objects and ivshmem server sockets. */
  "shmem",
  /** `<memory model='nvdimm'|'virtio-pmem'>` backing files or devices. */
  "memory",
  /** `<memory model='sgx-epc'>`: the host's virtual EPC and SGX provisioning nodes (rules/sgx.ts). */
  "sgx",
  /** `<pstore backend='acpi-erst'>`: the error-record file (rules/pstore.ts). */
  "pstore",
  /** `<smartcard mode='host'|'host-certificates'>`: the NSS database, read-only (rules/smartcard.ts). */
  "smartcard",
  /** `<tpm><backend type='emulator'>`: swtpm state, log, socket, pid. */
  "tpm-emulator",
  /** `<tpm><backend type='passthrough'>`: the host TPM and its sysfs `cancel` file. */
  "tpm-passthrough",
  /** `<tpm><backend type='external'>`: an externally started swtpm's socket. */
  "tpm-socket",
  /** TLS certificates QEMU reads from a qemu.conf `*_tls_x509_cert_dir` (rules/tls.ts): never XML-named. */
  "tls",
  /** `<launchSecurity>`. */
  "launch-security",
  /** `<hostdev type='pci'>`: VFIO container, the device's IOMMU group, its sysfs files. */
  "hostdev-pci",
  /** `<hostdev type='mdev'>`. */
  "hostdev-mdev",
  /** `<hostdev type='usb'>`. */
  "hostdev-usb",
  /** `<hostdev type='scsi'>` (SCSI generic node). */
  "hostdev-scsi",
  /** `<hostdev type='scsi_host'>` (vhost-scsi). */
  "hostdev-scsi-host",
  /** `<hostdev mode='capabilities' type='storage'>`. */
  "hostdev-storage",
  /** `<hostdev mode='capabilities' type='misc'>`. */
  "hostdev-misc",
  /** Per-guest paths libvirt computes from the guest's name, id and UUID (rules/runtime.ts). */
  "runtime",
  /** `<metadata><vah:guest><vah:allow>`: paths the admin pre-authorises in the domain (rules/metadata.ts). */
  "metadata",
  /**
   * A runtime grant (RuntimeGrant below): a path a running guest was given after its start, by
   * libvirt's helper call (`-F`), an admin (`virt-aa-hook grant`) or the network hook. Not from
   * the XML, so the policy judges it like any rule and allows only the device nodes the elements
   * that get such grants may use (disks, USB/SCSI hostdevs, VFIO, NICs, input, serial lines).
   */
  "granted",
] as const;
export type OriginKind = (typeof ORIGIN_KINDS)[number];

export interface Origin {
  kind: OriginKind;
  /**
   * The host device the rule family resolved, when the rule is one of that device's own files:
   * a PCI address (`0000:03:00.0`) for hostdev-pci/nvme, the TPM's name (`tpm0`) for
   * tpm-passthrough, the macvtap's tap node (`/dev/tap23`) for a `type='direct'` interface, the
   * canonical sysfs directory of the render node's device for gl. The policy grants sysfs files
   * only of this device, and `/dev/tapN` only as the node resolved.
   */
  device?: string;
}

export interface Rule {
  /** Literal canonical absolute host path, unescaped. */
  path: string;
  /** "" or one of GLOB_SUFFIXES, appended after escaping. */
  suffix: GlobSuffix;
  /** Permission string built from PERM_ORDER letters, e.g. "rwk", "rk", "r", "rw". */
  perms: string;
  /** The XML element (or derivation) that caused the rule, e.g. "disk vda", "serial 0 log". */
  source: string;
  /**
   * The kind of element that asked for the rule. Every rule a family derives has one
   * (OriginRule); it is optional here only so the renderer, which never looks at it, can be fed
   * plain rules. The policy judges a rule without one as strictly as it can: no device node, no
   * sysfs file, no libvirt-managed path.
   */
  origin?: Origin;
}

/** A rule as the rule families produce it: with the origin the policy judges it by. */
export type OriginRule = Rule & { origin: Origin };

/**
 * A path a running guest was given after its profile was made from the XML, kept in its state
 * record (store/state.ts `grants`) until revoked, its network port is deleted, libvirt's helper
 * regenerates the profile (`by: "libvirt"` only), or the guest is released. Rendered as a rule of
 * origin kind "granted" (pipeline.ts grantRules), judged by the same policy as the XML's rules.
 */
export interface RuntimeGrant {
  /** Absolute host path as it was named (canonicalised, like every rule, by the policy). */
  path: string;
  /** Read-write (`rwk`) rather than read-only (`rk`). */
  write: boolean;
  /** Who gave it: libvirt = virt-aa-helper `-F`; admin = `virt-aa-hook grant`; network = a network port. */
  by: "libvirt" | "admin" | "network";
  /** What the rule's comment and `explain` say it comes from, e.g. "admin grant", "network port <uuid>". */
  source: string;
  /** `by: "network"`: the port's UUID (port-deleted drops that port's grants). */
  port?: string;
}

export const GRANT_BY: readonly RuntimeGrant["by"][] = ["libvirt", "admin", "network"];

/** Normalise a permission string to canonical order without duplicates; throws on unknown letters. */
export function normalisePerms(perms: string): string {
  for (const c of perms) {
    if (!PERM_ORDER.includes(c as Perm)) throw new Error(`unknown permission letter ${JSON.stringify(c)}`);
  }
  return PERM_ORDER.filter((p) => perms.includes(p)).join("");
}

/**
 * Which of the places libvirt manages for ALL guests hold THIS guest's own files: computed by the
 * rule families (rules/ownership.ts) the way they compute the paths they grant (libvirt names them
 * after the guest's `<id>-<short name>`, name or UUID), judged by the policy. The policy grants a
 * path below a managed root only when it is one of these, whichever element names it, so no XML
 * can reach another guest's monitor socket, agent channel, swtpm state, hugepage or file-backed
 * RAM, or libvirt's own sockets and state.
 */
export interface RuntimeOwnership {
  /** Roots libvirt manages for every guest (and for itself): below them only `own*` is granted. */
  managedRoots: readonly string[];
  /** This guest's own directories: the directory and everything below it. */
  ownTrees: readonly string[];
  /** This guest's own single files. */
  ownFiles: readonly string[];
  /**
   * `<nvram>` (and its layers) and `<pstore>` paths the XML names, as named: one is this guest's own
   * file only where it canonicalises to a file directly in libvirt's NVRAM directory (`nvramDir`),
   * resolved by the pipeline (canonicalOwnership), never by where the XML says it is.
   */
  nvramNamed?: readonly string[];
  nvramDir?: string;
  /**
   * Prefixes (`<dir>/<name>-`) of files directly in a directory that are this guest's: the
   * `<name>-serial0.log`-style chardev logs next to its QEMU log. No trees, no subdirectories.
   */
  ownFilePrefixes?: readonly string[];
  /**
   * libvirt's run dir (Layout.libvirtRunDir) and the prefix (`<id>-<short name>-`) of the entries
   * libvirt names after this guest in its helper subdirectories (`swtpm/`, `dbus/`, `passt/`,
   * `slirp/`): `<run dir>/<subdir>/<prefix>...` is this guest's.
   */
  runDir: string;
  runSubdirPrefix?: string;
  /** `libvirt/qemu/<id>-<short name>`: this guest's directory below each hugetlbfs mount. */
  hugepageSubdir?: string;
}

/**
 * The managed roots with nothing in them owned: for judging a path before the guest is known.
 * `movedRoots`: the managed directories qemu.conf moves (host/qemu-conf.ts qemuConfManagedRoots;
 * libvirt's defaults are all below the layout's roots already).
 */
export function noRuntimeOwnership(layout: Layout, movedRoots: readonly string[] = []): RuntimeOwnership {
  return { managedRoots: layout.libvirtManagedRoots(movedRoots), ownTrees: [], ownFiles: [], runDir: layout.libvirtRunDir };
}
