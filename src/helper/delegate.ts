/**
 * `mode = "off"`: virt-aa-hook stays out of guests' confinement, so libvirt's own virt-aa-helper
 * (diverted by the installer to `<path>.real`) does what libvirt asked, with the same arguments
 * and the same stdin, and its verdict is ours. Its stdout and stderr go straight to libvirt; the
 * XML goes only to its stdin.
 */
import { spawnSync } from "node:child_process";
import { HostError, PathError } from "../errors.js";
import type { HookContext, Outcome } from "../hook/context.js";
import type { HelperInvocation } from "./args.js";

/**
 * Where the installer diverts libvirt's helper (attach = "helper"; src/install). The install
 * branch spells it in src/layout.ts as `libvirtHelperReal`: use that once both are merged.
 */
export const LIBVIRT_HELPER_REAL = "/usr/lib/libvirt/virt-aa-helper.real";

export async function delegate(ctx: HookContext, inv: HelperInvocation, xml: Buffer): Promise<Outcome> {
  const real = ctx.layout.host(LIBVIRT_HELPER_REAL);
  const r = spawnSync(real, inv.argv, {
    input: xml,
    // libvirt gives its helper nothing but LIBVIRT_LOG_OUTPUTS; the helper sets its own PATH.
    env: {},
    stdio: ["pipe", "inherit", "inherit"],
    timeout: ctx.config.parserTimeout * 1000 * 2,
  });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new PathError(LIBVIRT_HELPER_REAL, `mode = "off" hands this call to libvirt's own virt-aa-helper, which is missing`);
    throw new HostError(`cannot run ${LIBVIRT_HELPER_REAL}: ${r.error.message}`);
  }
  if (r.status !== 0) throw new HostError(`mode = "off": libvirt's own virt-aa-helper failed (exit ${r.status ?? r.signal})`);
  return { summary: `mode off: handed to ${LIBVIRT_HELPER_REAL}`, warnings: ctx.warnings };
}
