import type { Filesystem } from "../domain/model.js";
import { absolute } from "./absolute.js";
import { ruleOf, type RuleFamily } from "./context.js";
import type { OriginRule } from "../ir.js";

const rule = ruleOf("filesystem");

/**
 * `<filesystem>` devices.
 *
 * - 9p (`type='mount'`, driver path/handle or none): QEMU itself serves the directory tree, so it
 *   needs the directory and everything below it: `rwl` (the guest's link(2) becomes QEMU's
 *   linkat() in the share, as in libvirt's virt-aa-helper.c get_files since libvirt 10; 9.0 grants `rw`),
 *   or `r` when read-only. No `k`: 9p does not lock host files on QEMU's behalf. What `l` means
 *   (apparmor.d(5), "Link rules"): `<share>/** rwl` is `link subset <share>/** -> /**`, i.e. QEMU may
 *   create a hard link in the share to ANY file the profile grants with at least the link path's
 *   permissions (`rw`): its own disks, NVRAM, pstore, files in its private dir (master-key.aes),
 *   on the same filesystem and within the kernel's protected_hardlinks rules. It reaches no file
 *   the profile does not already grant `rw` (`ln /etc/passwd share/x` is denied), but such a link
 *   outlives the guest, keeps the data reachable through the share after the grant is gone, and
 *   the exclusive-write check (hook/exclusive.ts, by path) cannot see it (docs/threat-model.md).
 * - virtiofs: virtiofsd serves the tree, not QEMU. When libvirt starts virtiofsd it hands QEMU a
 *   connected socket, so there is nothing to allow; an externally started virtiofsd is reached
 *   through `<source socket>`, which QEMU connects to (`rw`).
 * - type file/block (loop/nbd drivers): the image file is opened like a disk (`rwk`, `rk` read-only).
 * - ram, bind, template, volume: no host file that QEMU opens.
 */
export const filesystemRules: RuleFamily = (ctx) =>
  ctx.domain.devices.filesystems.flatMap((fs, index) => rulesForFilesystem(fs, `filesystem ${fs.target ?? index}`));

const NINE_P_DRIVERS = new Set([undefined, "path", "handle"]);

function rulesForFilesystem(fs: Filesystem, element: string): OriginRule[] {
  if (fs.driver === "virtiofs") {
    return fs.socket !== undefined ? [rule(absolute(fs.socket, element), "rw", element)] : [];
  }
  if (fs.source === undefined) return [];
  switch (fs.type) {
    case "mount":
      if (!NINE_P_DRIVERS.has(fs.driver)) return [];
      return [rule(absolute(fs.source, element), fs.readonly ? "r" : "rwl", element, "{,/**}")];
    case "file":
    case "block":
      return [rule(absolute(fs.source, element), fs.readonly ? "rk" : "rwk", element)];
    default:
      return [];
  }
}
