import { PathError } from "../errors.js";
import { absolute } from "./absolute.js";
import { ruleOf, type RuleFamily } from "./context.js";
import type { OriginRule } from "../ir.js";

const rule = ruleOf("firmware");

/**
 * Firmware and direct-boot files from `<os>` and `<sysinfo type='fwcfg'>`.
 *
 * - loader: `rk` when `readonly='yes'` (a pflash code image QEMU maps read-only), else `rwk`
 *   (a writable pflash); `k` because QEMU's block layer locks pflash images like disks.
 * - nvram: the per-guest variable store, `rwk`; its `<source>` backing layers (libvirt 8.5+) `rk`.
 * - nvram template: no rule. libvirtd itself copies the template into the nvram path before QEMU
 *   starts (qemuPrepareNVRAM opens it with virFileOpenAs in the daemon); QEMU never opens the
 *   template, so granting it would only widen the profile.
 * - kernel, initrd, dtb, ACPI tables, shim, fw_cfg blobs: QEMU reads them once at start, `r`.
 */
export const firmwareRules: RuleFamily = (ctx) => {
  const { os, fwcfgFiles } = ctx.domain;
  const out: OriginRule[] = [];

  if (os.loader) out.push(rule(absolute(os.loader.path, "loader"), os.loader.readonly ? "rk" : "rwk", "loader"));

  if (os.nvram?.path !== undefined) out.push(rule(absolute(os.nvram.path, "nvram"), "rwk", "nvram"));
  const nvramLayers = os.nvram?.backingStore ?? [];
  if (nvramLayers.length > ctx.maxBackingDepth) {
    throw new PathError("nvram", `backing chain is deeper than ${ctx.maxBackingDepth} layers`);
  }
  for (const [i, layer] of nvramLayers.entries()) {
    if (layer.type === "network") break; // below a network layer nothing is a host file
    if (layer.path !== undefined) out.push(rule(absolute(layer.path, `nvram backing ${i + 1}`), "rk", `nvram backing ${i + 1}`));
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
    if (path !== undefined) out.push(rule(absolute(path, source), "r", source));
  }
  return out;
};
