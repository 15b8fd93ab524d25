/**
 * Host paths of what the installer puts on a host (and doctor checks), spelled once. Paths the
 * hook itself uses (config, state directory, AppArmor directory, template) come from Layout.
 * All are host paths: map them with `layout.host()`.
 */
import { DEFAULT_WRAPPER_DIR } from "../attach/index.js";
import { DERIVED_TEMPLATE } from "../config.js";

/** Where the bundle, the launcher and the wrapper live. */
export const LIB_DIR = "/usr/lib/virt-aa-hook";
export const BUNDLE = `${LIB_DIR}/virt-aa-hook.cjs`;
export const LAUNCHER = `${LIB_DIR}/qemu-hook`;
export const WRAPPER = `${LIB_DIR}/qemu-wrapper`;
/** The wrapper's links, one per emulator name (attach = "wrapper"). */
export const WRAPPER_BIN = DEFAULT_WRAPPER_DIR;

export const HOOKS_DIR = "/etc/libvirt/hooks";
/** libvirt >= 6.5 runs every executable in qemu.d/ after the main hook. */
export const HOOK_D_LINK = `${HOOKS_DIR}/qemu.d/virt-aa-hook`;
export const HOOK_MAIN = `${HOOKS_DIR}/qemu`;
/** libvirt < 6.5: a foreign main hook is moved here and run by our chain script. */
export const CHAINED = `${HOOKS_DIR}/qemu.virt-aa-hook-chained`;

export const QEMU_CONF = "/etc/libvirt/qemu.conf";
export const DOMAINS_DIR = "/etc/libvirt/qemu";

export const HOOK_PROFILE = "/etc/apparmor.d/usr.lib.virt-aa-hook.qemu-hook";
export const LIBVIRTD_PROFILE = "/etc/apparmor.d/usr.sbin.libvirtd";
export const LIBVIRTD_LOCAL = "/etc/apparmor.d/local/usr.sbin.libvirtd";
export const LIBVIRT_ABSTRACTION = "/etc/apparmor.d/abstractions/libvirt-qemu";
export const LIBVIRT_TEMPLATE = "/etc/apparmor.d/libvirt/TEMPLATE.qemu";
export const OUR_ABSTRACTION = "/etc/apparmor.d/abstractions/virt-aa-hook-qemu";
export const OUR_TEMPLATE = DERIVED_TEMPLATE;

/** The admin command on PATH. */
export const COMMAND = "/usr/sbin/virt-aa-hook";
export const SYSTEMD_DIR = "/etc/systemd/system";
export const LIBVIRTD_DROPIN = `${SYSTEMD_DIR}/libvirtd.service.d/virt-aa-hook.conf`;

/** Under the state directory (Layout.stateDir): what uninstall works from. */
export const MANIFEST = "install-manifest";
export const BACKUP = "backup";
export const PRISTINE = "pristine";

/** libvirt's daemon pid files, first found wins (--reload). */
export const LIBVIRTD_PIDFILES = ["/run/libvirtd.pid", "/var/run/libvirtd.pid", "/run/virtqemud.pid"];
/** The daemons asked for libvirt's version, first answer wins. */
export const LIBVIRT_DAEMONS = ["/usr/sbin/libvirtd", "/usr/sbin/virtqemud"];
/** What the hook makes at run time at its default places: removed by uninstall. */
export const RUNTIME_DIRS = ["/var/cache/apparmor/virt-aa-hook", "/run/virt-aa-hook"];
/** The marks around our block in libvirtd's local override. */
export const BEGIN_MARK = "# BEGIN virt-aa-hook";
export const END_MARK = "# END virt-aa-hook";
