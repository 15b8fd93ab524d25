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

export async function delegate(ctx: HookContext, inv: HelperInvocation, xml: Buffer): Promise<Outcome> {
  // Where the installer diverted libvirt's helper (attach = "helper"; src/install).
  const diverted = ctx.layout.libvirtHelperReal;
  const real = ctx.layout.host(diverted);
  const r = spawnSync(real, inv.argv, {
    input: xml,
    // libvirt gives its helper nothing but LIBVIRT_LOG_OUTPUTS; the helper sets its own PATH.
    env: {},
    stdio: ["pipe", "inherit", "inherit"],
    timeout: ctx.config.parserTimeout * 1000 * 2,
  });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new PathError(diverted, `mode = "off" hands this call to libvirt's own virt-aa-helper, which is missing`);
    throw new HostError(`cannot run ${diverted}: ${r.error.message}`);
  }
  if (r.status !== 0) throw new HostError(`mode = "off": libvirt's own virt-aa-helper failed (exit ${r.status ?? r.signal})`);
  return { summary: `mode off: handed to ${diverted}`, warnings: ctx.warnings };
}
