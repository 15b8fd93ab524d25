import { PathError } from "../errors.js";
import type { Rule } from "../ir.js";
import type { Layout } from "../layout.js";

/** Where virt-aa-hook's own locations (Layout.ownLocations) stand in the list. */
const OWN_LOCATIONS = Symbol("virt-aa-hook's own locations");

/**
 * Host locations no guest may be granted, whatever its XML says and whichever element asks: every
 * place the host executes from, loads policy or configuration from, keeps credentials in, or
 * controls daemons through. Matched by whole path component: `/lib` blocks `/lib/x` but not
 * `/library`. Each group is one class in docs/threat-model.md ("Policy by provenance").
 * The host's locations are policy data spelled here; the hook's own come from the layout, where
 * the config may have moved them (restrictedLocations).
 */
const FORBIDDEN: ReadonlyArray<string | typeof OWN_LOCATIONS> = [
  // Configuration, kernel interfaces, programs and libraries, boot, root's home.
  "/etc",
  "/proc",
  "/sys",
  "/bin",
  "/sbin",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  // All of /usr, /usr/local included (bin, lib, libexec, share, etc, src, include: code or config).
  "/usr",
  "/boot",
  "/efi",
  "/root",
  "/snap",
  // Raw memory and I/O ports: access to them is access to the whole host.
  "/dev/mem",
  "/dev/kmem",
  "/dev/port",
  "/dev/cpu",
  "/dev/kmsg",
  "/dev/mapper/control",
  "/dev/loop-control",
  // virt-aa-hook's own config, state, locks, log, parser cache, profiles and template, wherever
  // the config puts them: a guest must not be able to forge them.
  OWN_LOCATIONS,
  // Where AppArmor policy is loaded from: the compiled-policy caches boot and our `cache_dir` load,
  // snapd's generated profiles.
  "/var/cache/apparmor",
  "/var/lib/apparmor",
  "/var/lib/snapd",
  "/var/snap",
  // Jobs the host runs: cron, at, anacron spools; package maintainer scripts and databases.
  "/var/spool/cron",
  "/var/spool/at",
  "/var/spool/anacron",
  "/var/lib/dpkg",
  "/var/lib/rpm",
  // systemd and udev: units and rules loaded from /run, the journal and notify sockets, private
  // control socket, credentials, timers, core dumps.
  "/run/systemd",
  "/var/lib/systemd",
  "/run/udev",
  "/run/credentials",
  // init's control FIFO; the shutdown initramfs systemd executes at power-off.
  "/run/initctl",
  "/run/initramfs",
  // X11 and ICE sockets: input injected into a host user's desktop session.
  "/tmp/.X11-unix",
  "/tmp/.ICE-unix",
  // Daemons' control sockets: D-Bus (system and per-user buses), container engines, snapd,
  // sudo's timestamps, name-service caches and resolvers, polkit's local authority.
  "/run/dbus",
  "/run/user",
  "/run/docker.sock",
  "/run/docker",
  "/run/containerd",
  "/run/podman",
  "/run/crio",
  "/run/snapd.socket",
  "/run/snapd-snap.socket",
  "/run/lxd",
  "/run/incus",
  "/run/sudo",
  "/run/nscd",
  "/run/lvm",
  "/run/NetworkManager",
  "/run/resolvconf",
  "/var/lib/polkit-1",
  "/var/lib/sudo",
  // Container and system-container state: a writable layer is code some container runs as root.
  "/var/lib/docker",
  "/var/lib/containerd",
  "/var/lib/containers",
  "/var/lib/lxd",
  "/var/lib/lxc",
  "/var/lib/incus",
  // libvirt's own state outside the per-guest directories (rules/ownership.ts guards those):
  // dnsmasq's host and lease files, the lock managers' lockspaces.
  "/var/lib/libvirt/dnsmasq",
  "/var/lib/libvirt/lockd",
  "/var/lib/libvirt/sanlock",
  // Legacy aliases of /run: on a real host they are symlinks and canonicalise to /run/...; a
  // path still spelled this way names a directory we cannot classify, so it is refused.
  "/var/run",
  "/var/lock",
  // Copies of credentials and memory of crashed processes.
  "/var/backups",
  "/var/crash",
  "/var/log/journal",
  "/var/log/audit",
];

/**
 * Read-only exceptions inside forbidden locations: kernels, initrds and firmware images that
 * guests legitimately boot from. Only permissions that cannot change the file are allowed there.
 * Firmware of every architecture libvirt runs: Debian's edk2 packages (ovmf, qemu-efi-aarch64,
 * qemu-efi-arm, qemu-efi-riscv64, qemu-efi-loongarch64: /usr/share/<package>), Fedora's
 * (/usr/share/edk2/<arch>), QEMU's own blobs (pc-bios, installed in its data directory:
 * /usr/share/qemu for a packaged QEMU, /usr/local/share/qemu for one built from source; that is
 * also where edk2-{x86_64,aarch64,riscv,loongarch64}-code.fd and their firmware descriptors are),
 * and Debian's opensbi, which /usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.* links to.
 * Firmware an admin keeps elsewhere is read-only firmware when qemu.conf's `nvram` list names it
 * (provenance.ts, HostView.firmwareLoaders).
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
  "/usr/share/qemu-efi-loongarch64",
  "/usr/share/qemu",
  "/usr/local/share/qemu",
  "/usr/lib/riscv64-linux-gnu/opensbi",
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
 * Host files matched by name rather than location: control sockets that sit next to files guests
 * legitimately use (Open vSwitch keeps vhost-user sockets beside its database and control sockets),
 * and users' dotfiles and shell start-up files, which the host runs as that user.
 */
const FORBIDDEN_PATTERNS: ReadonlyArray<{ file: RegExp; what: string; reachedFrom: RegExp }> = [
  { file: /^\/run\/openvswitch\/(db\.sock|[^/]*\.ctl)$/, what: "Open vSwitch's control sockets", reachedFrom: /^\/run\/openvswitch$/ },
  { file: /^\/home\/[^/]+\/\./, what: "users' dotfiles (shell start-up files, ssh keys, autostart)", reachedFrom: /^\/home(\/[^/]+)?$/ },
];

/** Suffixes that reach beyond the directory itself ("/" alone names just the directory). */
export const RECURSIVE_SUFFIXES: ReadonlySet<string> = new Set(["/**", "{,/**}", "/*"]);

export function isUnder(candidate: string, location: string): boolean {
  return candidate === location || candidate.startsWith(location === "/" ? "/" : location + "/");
}

const restrictedByLayout = new WeakMap<Layout, readonly string[]>();

/**
 * The restricted locations on the host `layout` describes, in FORBIDDEN's order. An own location
 * a host location already covers is left out (the host location names it in messages). Computed
 * once per layout: the pre-read check runs for every layer of a backing chain.
 */
export function restrictedLocations(layout: Layout): readonly string[] {
  let locations = restrictedByLayout.get(layout);
  if (locations === undefined) {
    const host = FORBIDDEN.filter((entry): entry is string => entry !== OWN_LOCATIONS);
    const own = layout.ownLocations.filter((location) => !host.some((h) => isUnder(location, h)));
    locations = FORBIDDEN.flatMap((entry) => (entry === OWN_LOCATIONS ? [...new Set(own)] : [entry]));
    restrictedByLayout.set(layout, locations);
  }
  return locations;
}

/**
 * Why the restricted locations refuse (path, perms, suffix), whatever element asks; undefined when
 * they do not. Pure. sysfs is refused here like any restricted location: the only sysfs files a
 * guest gets are the ones provenance.ts grants to the element that resolved their device.
 */
export function locationRefusal(path: string, perms: string, suffix: string, layout: Layout): string | undefined {
  const recursive = RECURSIVE_SUFFIXES.has(suffix);
  const restricted = restrictedLocations(layout);

  if (recursive) {
    if (path === "/") return "cannot grant the whole filesystem";
    // A recursive grant on a parent of a forbidden location would reach into it.
    const covered = restricted.find((location) => isUnder(location, path) && location !== path);
    if (covered !== undefined) return `recursive access would include the restricted location ${covered}`;
  }

  const readOnly = [...perms].every((p) => READ_ONLY_PERMS.has(p));
  if (readOnly && (ROOT_BOOT_LINK.test(path) || READ_ONLY_ALLOWED.some((location) => isUnder(path, location)))) {
    return undefined;
  }

  const forbidden = restricted.find((location) => isUnder(path, location));
  if (forbidden !== undefined) {
    const exception = READ_ONLY_ALLOWED.find((location) => isUnder(path, location));
    return exception !== undefined
      ? `only read access is allowed under ${exception} (asked for "${perms}")`
      : `restricted location ${forbidden} is never granted to guests`;
  }
  const named = FORBIDDEN_PATTERNS.find((p) => p.file.test(path) || (recursive && p.reachedFrom.test(path)));
  if (named !== undefined) return `${named.what} are never granted to guests`;
  return undefined;
}

/**
 * Throws PathError when `rule` (already canonical) would give the guest a restricted location.
 * The reason names the rule's source so the admin sees which XML element asked for it.
 */
export function checkRestricted(rule: Rule, layout: Layout): void {
  const why = locationRefusal(rule.path, rule.perms, rule.suffix, layout);
  if (why !== undefined) throw new PathError(rule.path, `${rule.source}: ${why}`);
}
