import { PathError } from "../errors.js";
import type { Rule } from "../rules/ir.js";

/**
 * Host locations no guest may be granted, whatever its XML says. Matched by whole path
 * component: `/lib` blocks `/lib/x` but not `/library`.
 */
const FORBIDDEN: readonly string[] = [
  "/etc",
  "/proc",
  "/sys",
  "/bin",
  "/sbin",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/usr/bin",
  "/usr/sbin",
  "/usr/lib",
  "/usr/lib32",
  "/usr/lib64",
  "/usr/libx32",
  "/usr/libexec",
  "/usr/share",
  "/usr/local/bin",
  "/usr/local/sbin",
  "/usr/local/lib",
  "/usr/local/lib32",
  "/usr/local/lib64",
  "/usr/local/libexec",
  "/usr/local/share",
  "/boot",
  "/root",
  // Raw memory and I/O ports: access to them is access to the whole host.
  "/dev/mem",
  "/dev/kmem",
  "/dev/port",
  "/dev/cpu",
  "/dev/kmsg",
  "/dev/mapper/control",
  "/dev/loop-control",
  // virt-aa-hook's own state, locks and log: a guest must not be able to forge them.
  "/var/lib/virt-aa-hook",
  "/run/virt-aa-hook",
  "/var/log/libvirt/virt-aa-hook.log",
];

/**
 * Read-only exceptions inside forbidden locations: kernels, initrds and firmware images that
 * guests legitimately boot from. Only permissions that cannot change the file are allowed there.
 */
const READ_ONLY_ALLOWED: readonly string[] = [
  "/boot",
  "/usr/share/OVMF",
  "/usr/share/ovmf",
  "/usr/share/AAVMF",
  "/usr/share/edk2",
  "/usr/share/edk2-ovmf",
  "/usr/share/qemu-efi",
  "/usr/share/qemu-efi-aarch64",
  "/usr/share/qemu-efi-riscv64",
  "/usr/share/qemu",
  "/usr/share/seabios",
  "/usr/share/ipxe",
  "/usr/share/opensbi",
  "/usr/share/virtio-win",
  "/usr/lib/u-boot",
  "/usr/lib/ipxe/qemu",
];
const READ_ONLY_PERMS = new Set(["r", "k", "m"]);

/** Top-level kernel/initrd links some distributions keep in `/`. */
const ROOT_BOOT_LINK = /^\/(vmlinuz|initrd)[^/]*$/;

/**
 * sysfs files that device assignment needs: files of one PCI device (VFIO, libvirt's reset and
 * config handling) and a TPM's `cancel` file. Everything else under /sys stays forbidden.
 */
const PCI_ADDRESS = "[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\\.[0-7]";
const SYSFS_ALLOWED: readonly RegExp[] = [
  new RegExp(`^/sys/devices/pci[0-9a-f]{4}:[0-9a-f]{2}(/${PCI_ADDRESS})+/[^/]+$`),
  new RegExp(`^/sys/bus/pci/devices/${PCI_ADDRESS}/[^/]+$`),
  /^\/sys\/devices\/(?:[^/]+\/)*tpm[0-9]+\/device\/cancel$/,
  /^\/sys\/devices\/(?:[^/]+\/)*(?:tpm|misc)\/tpm[0-9]+\/cancel$/,
  /^\/sys\/class\/(?:tpm|misc)\/tpm[0-9]+\/device\/cancel$/,
  // `/sys/class/misc/tpm0/device` resolves to the TPM's parent device (e.g. /sys/devices/pnp0/00:05);
  // `cancel` is a TPM 1.2 attribute that exists nowhere else.
  /^\/sys\/devices\/(?:[^/]+\/)+cancel$/,
];

/** Suffixes that reach beyond the directory itself ("/" alone names just the directory). */
const RECURSIVE_SUFFIXES = new Set(["/**", "{,/**}", "/*"]);

export function isUnder(candidate: string, location: string): boolean {
  return candidate === location || candidate.startsWith(location === "/" ? "/" : location + "/");
}

/**
 * Throws PathError when `rule` (already canonical) would give the guest a restricted location.
 * The reason names the rule's source so the admin sees which XML element asked for it.
 */
export function checkRestricted(rule: Rule): void {
  const { path, perms, source } = rule;
  const recursive = RECURSIVE_SUFFIXES.has(rule.suffix);

  if (recursive) {
    if (path === "/") throw new PathError(path, `${source}: cannot grant the whole filesystem`);
    // A recursive grant on a parent of a forbidden location would reach into it.
    const covered = FORBIDDEN.find((location) => isUnder(location, path) && location !== path);
    if (covered !== undefined) {
      throw new PathError(path, `${source}: recursive access would include the restricted location ${covered}`);
    }
  }

  if (path.startsWith("/sys/") && SYSFS_ALLOWED.some((re) => re.test(path)) && !recursive) return;

  const readOnly = [...perms].every((p) => READ_ONLY_PERMS.has(p));
  if (readOnly && (ROOT_BOOT_LINK.test(path) || READ_ONLY_ALLOWED.some((location) => isUnder(path, location)))) {
    return;
  }

  const forbidden = FORBIDDEN.find((location) => isUnder(path, location));
  if (forbidden === undefined) return;
  const exception = READ_ONLY_ALLOWED.find((location) => isUnder(path, location));
  const why =
    exception !== undefined
      ? `${source}: only read access is allowed under ${exception} (asked for "${perms}")`
      : `${source}: restricted location ${forbidden} is never granted to guests`;
  throw new PathError(path, why);
}
