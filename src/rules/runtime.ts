import type { Domain } from "../domain/model.js";
import { PathError } from "../errors.js";
import { hugetlbfsMounts } from "../host/mounts.js";
import { ruleOf, type RuleFamily } from "./context.js";
import type { OriginRule } from "../ir.js";
import { isFileNameComponent } from "../names.js";

const rule = ruleOf("runtime");

/**
 * Per-guest paths libvirt computes from the name and the runtime id (qemu_domain.c,
 * qemu_process.c), in the directories qemu.conf puts them (ctx.qemu) or libvirt's fixed ones
 * (the layout):
 *
 * - `/var/log/libvirt/qemu/<name>.log` (`w`) only with qemu.conf `stdio_handler = "file"`: then
 *   libvirtd opens the log and hands it to QEMU as stdout/stderr, and the kernel checks that
 *   inherited descriptor against the profile. With "logd" (libvirt's default) QEMU's stdout/stderr
 *   is virtlogd's pipe (qemu_logcontext.c / qemu_domain.c qemuDomainLogContextNew: virLogManager
 *   DomainOpenLogFile returns the pipe's write end) and QEMU never opens the file.
 * - `/run/libvirt/qemu/<name>.pid` (`rwk`: QEMU writes and locks its `-pidfile`). It depends on
 *   the name only, so it is granted even for XML without an id (stopped/release).
 * - `/var/lib/libvirt/qemu/save/<name>.save` (`r`) when it exists: the managed save image a
 *   restoring start hands QEMU.
 * - With an id: the private dir `domain-<id>-<shortname>` (monitor socket, master key, TPM/dbus
 *   helpers' files; recursive `rwk`), the channel dir for auto-named unix channels (recursive
 *   `rw`), the per-guest hugepage dir under each hugetlbfs mount (qemu.conf `hugetlbfs_mount`,
 *   else the detected mounts) when `<hugepages/>` is set, and the file-backed RAM dir below
 *   qemu.conf's `memory_backing_dir` when `<source type='file'/>` is set (both recursive `rw`;
 *   qemu_conf.c qemuGetDomainHugepagePath: `<mount>/libvirt/qemu/<id>-<short name>`;
 *   qemuGetMemoryBackingDomainPath: `<cfg dir>/<id>-<short name>`, where the cfg dir is
 *   `<memory_backing_dir>/libvirt/qemu` when qemu.conf sets it, else /var/lib/libvirt/qemu/ram:
 *   QemuConf.memoryBackingDir already holds that).
 */
export const runtimeRules: RuleFamily = (ctx) => {
  const { domain, layout } = ctx;
  const name = checkedName(domain.name);
  const out: OriginRule[] = [];
  if (ctx.qemu.stdioHandler === "file") out.push(rule(`${layout.libvirtLogDir}/${name}.log`, "w", "log"));
  out.push(rule(`${layout.libvirtRunDir}/${name}.pid`, "rwk", "pidfile"));
  // A start from `virsh managedsave` (and a `virsh restore` of libvirt's own save path) hands QEMU
  // the open save image; the kernel checks that fd against the profile (file_perm in seclabel
  // mode, file_inherit at the wrapper's exec), so QEMU needs to read it. Only when it exists at
  // prepare, so an ordinary start's profile does not change; the image is the guest's own memory.
  const managedSave = `${layout.libvirtLibDir}/save/${name}.save`;
  if (ctx.fs.stat(managedSave)?.isFile()) out.push(rule(managedSave, "r", "managed save image"));
  if (domain.id === undefined) return out;

  const short = shortName(domain.id, name);
  out.push(
    rule(`${layout.libvirtLibDir}/domain-${short}`, "rwk", "private dir", "{,/**}"),
    rule(`${layout.libvirtChannelTargetDir}/domain-${short}`, "rw", "channel dir", "{,/**}"),
  );
  if (domain.memoryBacking.hugepages) {
    for (const mount of hugetlbfsMounts(ctx.fs, ctx.qemu.hugetlbfsMount)) {
      out.push(rule(`${mount}/libvirt/qemu/${short}`, "rw", "hugepages", "{,/**}"));
    }
  }
  if (domain.memoryBacking.sourceType === "file") {
    out.push(rule(`${ctx.qemu.memoryBackingDir}/${short}`, "rw", "memory backing", "{,/**}"));
  }
  return out;
};

/** The name becomes a file name here: it must stay one path component. */
function checkedName(name: string): string {
  if (!isFileNameComponent(name)) {
    throw new PathError(name, "<name>: domain name cannot be used as a file name");
  }
  return name;
}

/** libvirt's VIR_DOMAIN_SHORT_NAME_MAX. */
const SHORT_NAME_CHARS = 20;

/**
 * libvirt's virDomainDefGetShortName: `<id>-<first 20 characters of the name>`, with no other
 * change to the name. libvirt 9.0 cuts at 20 wide characters (mbstowcs), i.e. Unicode code points
 * in the UTF-8 locale libvirtd runs in, never in the middle of a character: a UTF-16 `slice` would
 * split an emoji, a byte count would split CJK. (Only if libvirtd ran in a non-UTF-8 locale would
 * it fall back to the first 20 bytes, even mid-character; Debian's libvirtd gets the system
 * UTF-8 locale. Both behaviours were checked by calling libvirt 9.0's own function.)
 */
export function shortName(id: number, name: string): string {
  return `${id}-${Array.from(name).slice(0, SHORT_NAME_CHARS).join("")}`;
}

/** Convenience for other families (e.g. swtpm paths): the domain's short name, when it has an id. */
export function domainShortName(domain: Domain): string | undefined {
  return domain.id === undefined ? undefined : shortName(domain.id, domain.name);
}
