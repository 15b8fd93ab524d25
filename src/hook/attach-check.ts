import { adoptionProblem, hasOurStaticLabel, type AttachPaths } from "../attach/index.js";
import type { Config } from "../config.js";
import type { Domain } from "../domain/model.js";
import { GuestError } from "../errors.js";

/**
 * `require_attach = "yes"`: at `prepare` and `start`, a domain that does not use the configured
 * attach method would run its QEMU outside `libvirt-<uuid>` (unconfined), so it is refused, with
 * the command that fixes it. `attach = "none"` has nothing to require.
 *
 * helper: a domain libvirt does not label dynamically gets no virt-aa-helper call. One with
 * `<seclabel type='none'/>`, another static AppArmor label or our wrapper as `<emulator>` is
 * refused; one with our static label (adopted for seclabel) is not: libvirt still makes the
 * transition to libvirt-<uuid>, whose profile the hook writes and loads at prepare (only grants
 * after start, such as hotplug, are missing: doctor warns).
 */
export function checkAttach(config: Pick<Config, "attach" | "requireAttach">, layout: AttachPaths, domain: Domain): void {
  if (!config.requireAttach || config.attach === "none") return;
  const fix = `run: virt-aa-hook adopt ${shellWord(domain.name)}`;
  if (config.attach === "seclabel") {
    // Besides our label missing: <seclabel type='none'/> (no model, or model='apparmor') turns
    // the AppArmor driver off for this domain whatever else it says.
    const off = domain.seclabels.find((s) => s.type === "none" && (s.model === undefined || s.model === "apparmor"));
    if (off) throw new GuestError(domain.name, "<seclabel>", `type='none' turns AppArmor off for this guest and require_attach is yes; ${fix}`);
  }
  const problem = adoptionProblem(domain, config.attach, layout);
  if (problem === undefined) return;
  if (config.attach === "helper" && hasOurStaticLabel(domain)) return;
  const where = config.attach === "wrapper" || (config.attach === "helper" && problem.startsWith("<emulator>")) ? "<emulator>" : "<seclabel>";
  throw new GuestError(domain.name, where, `${problem} (attach = "${config.attach}", require_attach = "yes"); ${fix}`);
}

/** A name as one shell word: bare when it is plainly safe, else single-quoted. */
export function shellWord(s: string): string {
  if (/^[A-Za-z0-9_.+:@%=-]+$/.test(s) && !s.startsWith("-")) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
