import { PathError } from "../errors.js";
import { ruleOf, type RuleFamily } from "./context.js";
import type { OriginRule } from "../ir.js";

const rule = ruleOf("firmware");

/**
 * Firmware and direct-boot files from `<os>` and `<sysinfo type='fwcfg'>`.
 *
 * - loader `type='rom'` (`-bios`, or a firmware descriptor's "memory" mapping), and a loader
 *   without a type, which libvirt makes a ROM (domain_postparse.c virDomainDefPostParseOs: "By
 *   default, loader is type of 'rom'"; the XML libvirt hands the hook always spells the type):
 *   `r` whatever `readonly=` says. QEMU loads a ROM image into guest memory once at start
 *   (hw/core/loader.c rom_add_file: open O_RDONLY, read), never writes or locks it; libvirt passes
 *   it as `-bios` (qemu_command.c qemuBuildDomainLoaderCommandLine) and ignores readonly= for it.
 * - loader `type='pflash'`: `rk` when `readonly='yes'` (a code image QEMU maps read-only), else
 *   `rwk` (a writable pflash); `k` because QEMU's block layer locks pflash images like disks.
 * - nvram: the per-guest variable store, `rwk`; its `<source>` backing layers (libvirt 8.5+) `rk`.
 * - nvram template: no rule. libvirtd itself copies the template into the nvram path before QEMU
 *   starts (qemuPrepareNVRAM opens it with virFileOpenAs in the daemon); QEMU never opens the
 *   template, so granting it would only widen the profile. The same holds for the templates of
 *   qemu.conf's `nvram` list; its loaders are firmware QEMU reads, which the policy lets a guest
 *   read wherever the admin keeps them (policy/provenance.ts, HostView.firmwareLoaders).
 * - kernel, initrd, dtb, ACPI tables, shim, fw_cfg blobs: QEMU reads them once at start, `r`.
 *
 * Relative paths are refused, naming the element. libvirt does not resolve a bare file name such
 * as `<loader>CODE.fd</loader>`: firmware autoselection (qemu_firmware.c qemuFirmwareFillDomain)
 * replaces the loader only when none is given, and a given loader is matched against the
 * descriptors' absolute file names by string equality (qemuFirmwareMatchesPaths), so a relative
 * name reaches QEMU as is and is opened relative to QEMU's working directory (or, for `-bios`,
 * looked up in QEMU's data directories: qemu_find_file), which no profile can predict. The same
 * holds in libvirt 9.0 and 10+.
 */
export const firmwareRules: RuleFamily = (ctx) => {
  const { os, fwcfgFiles } = ctx.domain;
  const out: OriginRule[] = [];

  if (os.loader) {
    const perms = (os.loader.type ?? "rom") === "rom" ? "r" : os.loader.readonly ? "rk" : "rwk";
    out.push(rule(absoluteIn("loader", os.loader.path), perms, "loader"));
  }

  if (os.nvram?.path !== undefined) out.push(rule(absoluteIn("nvram", os.nvram.path), "rwk", "nvram"));
  const nvramLayers = os.nvram?.backingStore ?? [];
  if (nvramLayers.length > ctx.maxBackingDepth) {
    throw new PathError("nvram", `backing chain is deeper than ${ctx.maxBackingDepth} layers`);
  }
  for (const [i, layer] of nvramLayers.entries()) {
    if (layer.type === "network") break; // below a network layer nothing is a host file
    const source = `nvram backing ${i + 1}`;
    if (layer.path !== undefined) out.push(rule(absoluteIn(source, layer.path), "rk", source));
  }

  const readOnce: [string | undefined, string][] = [
    [os.kernel, "kernel"],
    [os.initrd, "initrd"],
    [os.dtb, "dtb"],
    ...os.acpiTables.map((p, i): [string, string] => [p, `acpi table ${i}`]),
    [os.shim, "shim"],
    ...fwcfgFiles.map((p, i): [string, string] => [p, `fwcfg ${i}`]),
  ];
  for (const [path, source] of readOnce) {
    if (path !== undefined) out.push(rule(absoluteIn(source, path), "r", source));
  }
  return out;
};

/** `path`, checked to be absolute; else PathError naming the element ("loader: path is not absolute"). */
function absoluteIn(element: string, path: string): string {
  if (!path.startsWith("/")) throw new PathError(path, `${element}: path is not absolute`);
  return path;
}
