/**
 * One virt-aa-helper call (docs/helper.md): libvirt's AppArmor driver runs
 * `/usr/lib/libvirt/virt-aa-helper` (our launcher, hooks/virt-aa-helper) and waits for it.
 *
 * - Exit codes are 0 and 1 only: libvirt takes any non-zero exit as "cannot update/load the
 *   AppArmor profile" and fails the operation (a start, a hotplug, a block job step).
 * - stdout stays empty except for `-h`; a failure is one stderr line (errors.ts formatLine),
 *   which libvirt puts into its error message.
 * - stdin (the live domain XML, formatted with secrets: VIR_DOMAIN_DEF_FORMAT_SECURE) is read only
 *   for -c/-r and never written anywhere: not to the log, not to stderr, not to a file.
 * - One summary line per call in the hook's log, like every hook call.
 */
import { ConfigError, DEFAULT_CONFIG, loadConfig, type Config } from "../config.js";
import { errorLine, errorReason, formatLine, PathError, type Warning } from "../errors.js";
import type { HookContext, Outcome } from "../hook/context.js";
import { HookLog } from "../hook/log.js";
import { readStdin } from "../hook/stdin.js";
import { Layout } from "../layout.js";
import type { HelperInvocation } from "./args.js";

export const EXIT_OK = 0;
export const EXIT_FAIL = 1;

/** libvirt's helper reads at most MAX_FILE_LEN (10 MiB); our domain parser's own limit is 16 MiB. */
const MAX_INPUT_BYTES = 16 * 1024 * 1024 + 1;

export async function runHelper(inv: HelperInvocation): Promise<number> {
  const started = process.hrtime.bigint();
  const { args } = inv;
  const op = `helper -${args.mode}${args.file ? (args.file.append ? " -F" : " -f") : ""}${args.dryRun ? " -d" : ""}`;
  let layout = new Layout(inv.root);
  const input = args.mode === "c" || args.mode === "r" ? await readStdin(MAX_INPUT_BYTES) : undefined;

  let config: Config | undefined;
  let log = new HookLog(layout.host(DEFAULT_CONFIG.logFile), DEFAULT_CONFIG.logLevel);
  const warnings: Warning[] = [];
  // The guest's name once known (the XML, or our record); until then the profile name.
  const ctx: HookContext = { layout, config: DEFAULT_CONFIG, guest: args.profileName, op, warnings };
  let result = "ok";
  let failure: unknown;
  let failed = false;
  try {
    config = loadConfig(layout);
    layout = Layout.from(inv.root, config);
    log = new HookLog(layout.logFile === "" ? undefined : layout.host(layout.logFile), config.logLevel);
    ctx.layout = layout;
    ctx.config = config;
    if (input?.truncated) throw new PathError("XML", `the domain XML on stdin is larger than ${MAX_INPUT_BYTES - 1} bytes`);
    result = (await perform(ctx, inv, input?.data ?? Buffer.alloc(0))).summary;
  } catch (err) {
    failure = err;
    failed = true;
  }

  for (const w of warnings) log.warning(ctx.guest, op, w);
  const shown = warnings.filter((w) => w.stderr);
  if (shown.length > 0) {
    process.stderr.write(
      (shown.length === 1
        ? formatLine("warning", ctx.guest, shown[0]!.path, shown[0]!.reason)
        : formatLine("warning", ctx.guest, "-", shown.map((w) => (w.path === "-" ? w.reason : `${w.path}: ${w.reason}`)).join("; "))) + "\n",
    );
  }

  let exit = EXIT_OK;
  if (failed) {
    result = `error: ${errorReason(failure)}`;
    if (failure instanceof ConfigError) result += " (config)";
    process.stderr.write(errorLine(ctx.guest, failure) + "\n");
    exit = EXIT_FAIL;
  }
  log.summary(ctx.guest, op, exit, Number(process.hrtime.bigint() - started) / 1e6, args.file ? `${args.file.path}: ${result}` : result);
  return exit;
}

async function perform(ctx: HookContext, inv: HelperInvocation, xml: Buffer): Promise<Outcome> {
  const { args } = inv;
  const ops = await import("./operations.js");
  if (ctx.config.mode === "off") {
    // mode = off: virt-aa-hook stays out of the guest's confinement; libvirt's own helper (the one
    // the installer diverted) does what libvirt asked, exactly as before virt-aa-hook.
    const { delegate } = await import("./delegate.js");
    return delegate(ctx, inv, xml);
  }
  if (args.dryRun) {
    const { dryRun } = await import("./dry-run.js");
    return dryRun(ctx, args, xml);
  }
  switch (args.mode) {
    case "c":
    case "r":
      if (args.file?.append) return ops.appendFile(ctx, args, xml, args.file.path);
      return ops.regenerate(ctx, args, xml);
    case "D":
      return ops.deleteProfile(ctx, args);
    case "R":
      return ops.removeProfile(ctx, args);
    case "a":
      return ops.loadProfile(ctx, args);
  }
}
