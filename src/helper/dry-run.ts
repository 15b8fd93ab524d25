/**
 * `-d` (libvirt never sends it): say what the call would do, change nothing. For -c/-r, the
 * `.files` the XML (and the record's runtime grants after this call's change) would give, on
 * stderr as libvirt's helper prints it. Never the XML itself.
 */
import { HostFs } from "../hostfs.js";
import { qemuConfOf, type HookContext, type Outcome } from "../hook/context.js";
import type { RuntimeGrant } from "../ir.js";
import { guestPaths } from "../store/guest-files.js";
import { readState } from "../store/state.js";
import { accessFor } from "./access.js";
import type { HelperArgs } from "./args.js";
import { domainFor, LIBVIRT_GRANT_SOURCE } from "./operations.js";

export async function dryRun(ctx: HookContext, args: HelperArgs, xml: Buffer): Promise<Outcome> {
  const paths = guestPaths(ctx.layout, args.uuid);
  if (args.mode !== "c" && args.mode !== "r") {
    const what = { a: `load ${paths.hostProfile}`, R: `unload ${paths.profileName}`, D: `unload ${paths.profileName}, remove ${paths.hostFiles} and the record` }[args.mode];
    process.stderr.write(`virt-aa-helper (dry run): would ${what}\n`);
    return { summary: `dry run: would ${what}`, warnings: ctx.warnings };
  }
  const domain = domainFor(args, xml);
  ctx.guest = domain.name;
  let grants: RuntimeGrant[] = readState(paths.state)?.grants ?? [];
  if (args.file === undefined || !args.file.append) grants = grants.filter((g) => g.by !== "libvirt");
  if (args.file !== undefined && args.file.path.startsWith("/")) {
    const access = accessFor(new HostFs(ctx.layout), domain, args.file.path);
    grants = [...grants, { path: args.file.path, write: access.write, by: "libvirt", source: LIBVIRT_GRANT_SOURCE }];
  }
  const { buildProfile } = await import("../pipeline.js");
  const built = buildProfile(domain, { layout: ctx.layout, grants, qemu: qemuConfOf(ctx) });
  process.stderr.write(`virt-aa-helper (dry run): ${paths.hostFiles}:\n${built.filesText}`);
  return { summary: "dry run", warnings: ctx.warnings };
}
