import { ConfigError, DEFAULT_CONFIG, loadConfig, type Config } from "../config.js";
import { errorLine, errorReason, formatLine } from "../errors.js";
import { Layout } from "../layout.js";
import type { HookInvocation } from "./args.js";
import type { HookContext } from "./context.js";
import { HookLog } from "./log.js";
import { operationOf } from "./operations.js";
import { readStdin } from "./stdin.js";

/** Input beyond this is not a domain XML (the domain parser's own limit is 16 MiB). */
const MAX_INPUT_BYTES = 16 * 1024 * 1024 + 1;

/**
 * Exit codes. libvirt treats any non-zero exit of prepare/start/started as "do not run the guest",
 * of reconnect as "kill the running guest", and ignores it for stopped/release.
 */
export const EXIT_OK = 0;
export const EXIT_FAIL = 1;

/** What libvirt's operation means for us. */
type Kind = "prepare" | "start" | "started" | "stopped" | "release" | "reconnect" | "passthrough";

function kindOf(op: string): Kind {
  // Not in the table: migrate and restore (stdout would replace the XML, so print nothing; the
  // profile is made by the prepare that follows), attach (obsolete), operations newer than us.
  return operationOf(op) ?? "passthrough";
}

/** Operations whose failure must not make things worse: log and exit 0. */
function mustNotFail(kind: Kind, config: Config | undefined): boolean {
  if (kind === "reconnect") return (config ?? DEFAULT_CONFIG).reconnectFailure !== "fail";
  return kind === "stopped" || kind === "release" || kind === "passthrough";
}

/**
 * One hook call: read the XML, do the one action of the operation, log one summary line, and
 * return the exit code. Nothing is ever written to stdout (libvirt reads it for migrate/restore).
 * Every error, expected or not, ends here as one stderr line.
 */
export async function runHook(inv: HookInvocation): Promise<number> {
  // process.hrtime, not performance.now(): the global `performance` loads perf_hooks (11 internal
  // modules, ~1 ms of every call) on first use.
  const started = process.hrtime.bigint();
  const kind = kindOf(inv.op);
  const layout = new Layout(inv.root);
  const input = await readStdin(MAX_INPUT_BYTES);

  let config: Config | undefined;
  let log = new HookLog(layout.host(DEFAULT_CONFIG.logFile), DEFAULT_CONFIG.logLevel);
  let result = "ok";
  let exit = EXIT_OK;
  try {
    config = loadConfig(layout);
    log = new HookLog(config.logFile === "" ? undefined : layout.host(config.logFile), config.logLevel);
    const ctx: HookContext = { layout, config, guest: inv.guest, op: inv.op, log };
    result = await perform(kind, ctx, input.data);
  } catch (err) {
    result = `error: ${errorReason(err)}`;
    if (mustNotFail(kind, config)) {
      // Still said on stderr (libvirtd logs it), as a warning: the guest is not affected.
      process.stderr.write(errorLine(inv.guest, err, "warning") + "\n");
      result = `ignored ${result}`;
    } else {
      process.stderr.write(errorLine(inv.guest, err) + "\n");
      exit = EXIT_FAIL;
    }
    if (err instanceof ConfigError) result += " (config)";
  }
  log.summary(inv.guest, inv.op, exit, Number(process.hrtime.bigint() - started) / 1e6, result);
  return exit;
}

async function perform(kind: Kind, ctx: HookContext, xml: Buffer): Promise<string> {
  if (kind === "passthrough") return "nothing to do";
  if (kind === "stopped") return "nothing to do";
  if (kind === "release") {
    // Cleaning up is right even with mode = off: it only removes what we made.
    const { releaseGuest } = await import("./release.js");
    const r = await releaseGuest(ctx, xml);
    for (const p of r.problems) ctx.log.detail("warn", ctx.guest, ctx.op, p);
    if (r.problems.length > 0) process.stderr.write(formatLine("warning", ctx.guest, "-", r.problems.join("; ")) + "\n");
    return r.summary;
  }
  if (ctx.config.mode === "off") return "mode off";
  if (kind === "started") {
    const { checkStarted } = await import("./started.js");
    return checkStarted(ctx, xml);
  }
  // A domain left to libvirt's own AppArmor driver: its files are libvirt's (attach/ownership.ts).
  const left = await (await import("./release.js")).leaveToLibvirt(ctx, xml);
  if (left !== undefined) return left;
  const { syncProfile } = await import("./sync.js");
  const policy = kind === "prepare" ? "always" : kind === "start" ? "if-changed" : "if-not-loaded";
  const r = await syncProfile(ctx, xml, policy);
  return `${r.profileName}: ${r.summary}`;
}
