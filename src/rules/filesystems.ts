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
 *   or `r` when read-only. No `k`: 9p does not lock host files on QEMU's behalf. AppArmor checks a
 *   hard link against both ends, so `l` on the share reaches only files inside the share.
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
    return fs.socket !== undefined ? [rule(absolute(fs.socket), "rw", element)] : [];
  }
  if (fs.source === undefined) return [];
  switch (fs.type) {
    case "mount":
      if (!NINE_P_DRIVERS.has(fs.driver)) return [];
      return [rule(absolute(fs.source), fs.readonly ? "r" : "rwl", element, "{,/**}")];
    case "file":
    case "block":
      return [rule(absolute(fs.source), fs.readonly ? "rk" : "rwk", element)];
    default:
      return [];
  }
}
