import fs from "node:fs";
import { detectEnvironment } from "../apparmor/index.js";
import type { HookContext, Outcome } from "./context.js";
import { PathError } from "../errors.js";
import { parsePid, readProcessLabel } from "../host/qemu-process.js";
import { isFileNameComponent } from "../names.js";
import { identifyGuest } from "./identify.js";
import { parseDomain, type Domain } from "../domain/index.js";
import { effectiveMode } from "../store/plan.js";

/**
 * `started`: QEMU runs. Check that it runs in `libvirt-<uuid>`, reading its label from
 * /proc/<pid>/attr/apparmor/current (older kernels: /proc/<pid>/attr/current), pid from
 * /run/libvirt/qemu/<name>.pid. What a mismatch does is `started_check`: enforce fails the start
 * (libvirt then tears QEMU down), warn logs it, off skips the check.
 *
 * The expected mode is the one prepare loaded: the domain's own `<vah:mode>` (its metadata, in the
 * XML libvirt passes on stdin) where it has one, else the config's `mode` (store/plan.ts
 * effectiveMode). A domain whose complain the config forbids was refused at prepare; should it get
 * here anyway, only enforce is accepted.
 */
export function checkStarted(ctx: HookContext, xml: Buffer): Outcome {
  const { layout, config } = ctx;
  const done = (summary: string): Outcome => ({ summary, warnings: ctx.warnings });
  if (config.startedCheck === "off") return done("check off");
  const env = detectEnvironment(layout);
  if (!env.target) return done("not checked: AppArmor is not enabled");
  let domain: Domain | undefined;
  try {
    domain = parseDomain(xml);
  } catch {
    domain = undefined; // the records may still know the guest by name (identifyGuest)
  }
  const id = domain ?? identifyGuest(ctx, xml);
  if (!id) throw new PathError("-", "cannot check the confinement of QEMU: the domain XML names no valid guest");
  const expected = layout.profileName(id.uuid);
  let mode: string;
  try {
    mode = effectiveMode(config, domain?.settings?.mode).mode;
  } catch {
    mode = "enforce";
  }

  const problem = findProblem(ctx, `${expected} (${mode === "complain" ? "complain" : "enforce"})`);
  if (!problem) return done(`QEMU runs in ${expected}`);
  if (config.startedCheck === "enforce") throw new PathError(problem.path, problem.reason);
  ctx.warnings.push({ ...problem, stderr: true });
  return done(`warning: ${problem.reason}`);
}

/** `wanted`: the exact label QEMU must carry, "libvirt-<uuid> (enforce)" (or "(complain)"). */
function findProblem(ctx: HookContext, wanted: string): { path: string; reason: string } | undefined {
  const { layout } = ctx;
  if (!isFileNameComponent(ctx.guest)) return { path: "-", reason: "cannot find QEMU's pid file: the guest name is not a file name" };
  const pidFile = layout.libvirtPidFile(ctx.guest);
  let pidText: string;
  try {
    pidText = fs.readFileSync(layout.host(pidFile), "utf8").trim();
  } catch (err) {
    return { path: pidFile, reason: `cannot read QEMU's pid file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  const pid = parsePid(pidText);
  if (pid === undefined) return { path: pidFile, reason: `cannot read QEMU's pid file: not a pid: ${JSON.stringify(pidText.slice(0, 32))}` };

  const read = readProcessLabel(layout, pid);
  if (read === undefined) return { path: layout.apparmorLabelFiles(pid)[1]!, reason: `cannot read the AppArmor label of QEMU (pid ${pid})` };
  // "libvirt-<uuid> (enforce)"; anything else is not confined as configured: "unconfined",
  // "libvirt-<uuid> (complain)" under mode = "enforce" (denials only logged), "(unconfined)"
  // (a profile loaded with flags=(unconfined)), another profile.
  if (read.label === wanted) return undefined;
  return { path: read.file, reason: `QEMU (pid ${pid}) runs as ${JSON.stringify(read.label)}, not in its profile ${wanted}` };
}
