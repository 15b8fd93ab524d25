import { absolute } from "./absolute.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";

const rule = ruleOf("pstore");

/**
 * `<pstore backend='acpi-erst'>` (libvirt 8.9+; in virt-aa-helper since libvirt 10): QEMU keeps
 * the guest's ACPI error records in `<path>`, a file it maps as a shared memory backend
 * (qemu_command.c qemuBuildPstoreCommandLine: `memory-backend-file,mem-path=<path>,share=on`),
 * creating it when missing. `rw` on that file only, as virt-aa-helper.c get_files grants
 * (`def->pstore->path`, "rw"): no lock (QEMU takes none on a memory backend), no directory.
 * The path is the XML's; the policy judges it like a disk image's (restricted places, libvirt's
 * managed roots, devices: none), and the exclusive-write check keeps two running guests off one file.
 */
export const pstoreRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.pstores.map((pstore, i) => rule(absolute(pstore.path), "rw", `pstore ${i} ${pstore.backend}`));
