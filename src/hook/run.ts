import fs from "node:fs";
import { ConfigError, DEFAULT_CONFIG, loadConfig, type Config } from "../config.js";
import { errorLine, errorReason, formatLine, type Warning } from "../errors.js";
import { Layout } from "../layout.js";
import type { HookInvocation } from "./args.js";
import type { HookContext, Outcome } from "./context.js";
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
type Kind = "prepare" | "start" | "started" | "stopped" | "release" | "reconnect" | "incoming" | "passthrough";

function kindOf(op: string): Kind {
  // migrate and restore: libvirt reads stdout as a replacement XML (hook/incoming.ts); the profile
  // is made by the prepare that follows. Not in the operation table (operations.ts): their calls
  // are rare and compile with the code cache of the operations that pass through.
  if (op === "migrate" || op === "restore") return "incoming";
  // attach (obsolete), operations newer than us.
  return operationOf(op) ?? "passthrough";
}

/** Operations whose failure must not make things worse: log and exit 0. */
function mustNotFail(kind: Kind, config: Config | undefined): boolean {
  if (kind === "reconnect") return (config ?? DEFAULT_CONFIG).reconnectFailure !== "fail";
  return kind === "stopped" || kind === "release" || kind === "passthrough";
}

/**
 * One hook call: read the XML, do the one action of the operation, log one summary line, and
 * return the exit code. stdout is libvirt's replacement XML for migrate/restore: only the XML an
 * incoming domain was adopted to is ever written there (hook/incoming.ts), nothing else.
 * This is the only place that writes stderr and the log: the operation's warnings (one log line
 * each, those meant for stderr as one line), then every error, expected or not, as one line.
 */
export async function runHook(inv: HookInvocation): Promise<number> {
  // process.hrtime, not performance.now(): the global `performance` loads perf_hooks (11 internal
  // modules, ~1 ms of every call) on first use.
  const started = process.hrtime.bigint();
  const kind = kindOf(inv.op);
  // The default locations until the config is read: the config may move the log and more.
  let layout = new Layout(inv.root);
  const input = await readStdin(MAX_INPUT_BYTES);

  let config: Config | undefined;
  let log = new HookLog(layout.host(DEFAULT_CONFIG.logFile), DEFAULT_CONFIG.logLevel);
  // Filled as the operation goes, so that what it noted before a failure is reported too.
  const warnings: Warning[] = [];
  let result = "ok";
  let failure: { err: unknown } | undefined;
  try {
    config = loadConfig(layout);
    layout = Layout.from(inv.root, config);
    log = new HookLog(layout.logFile === "" ? undefined : layout.host(layout.logFile), config.logLevel);
    const ctx: HookContext = { layout, config, guest: inv.guest, op: inv.op, warnings };
    const outcome = await perform(kind, ctx, input);
    // Inside the try: a replacement libvirt did not get whole must not end in exit 0.
    if (outcome.replacementXml !== undefined) writeStdout(outcome.replacementXml);
    result = outcome.summary;
  } catch (err) {
    failure = { err };
  }

  for (const w of warnings) log.warning(inv.guest, inv.op, w);
  const shown = warnings.filter((w) => w.stderr);
  if (shown.length > 0) process.stderr.write(warningLine(inv.guest, shown) + "\n");

  let exit = EXIT_OK;
  if (failure !== undefined) {
    const { err } = failure;
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

/**
 * The stderr warnings of one call as one line: a single warning with its path; several (release
 * problems) at "-", their reasons joined with "; " (each prefixed with its own path, if any).
 */
function warningLine(guest: string, warnings: readonly Warning[]): string {
  if (warnings.length === 1) return formatLine("warning", guest, warnings[0]!.path, warnings[0]!.reason);
  return formatLine("warning", guest, "-", warnings.map((w) => (w.path === "-" ? w.reason : `${w.path}: ${w.reason}`)).join("; "));
}

/** All of `text` to stdout (a pipe from libvirtd), synchronously, before the hook exits. */
function writeStdout(text: string): void {
  const buf = Buffer.from(text, "utf8");
  for (let at = 0; at < buf.length; ) {
    try {
      at += fs.writeSync(1, buf, at, buf.length - at);
    } catch (err) {
      // A non-blocking pipe that is full: wait for libvirt to read (it reads until EOF).
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

async function perform(kind: Kind, ctx: HookContext, input: { data: Buffer; truncated: boolean }): Promise<Outcome> {
  const xml = input.data;
  const done = (summary: string): Outcome => ({ summary, warnings: ctx.warnings });
  if (kind === "passthrough") return done("nothing to do");
  if (kind === "stopped") return done("nothing to do");
  if (kind === "release") {
    // Cleaning up is right even with mode = off: it only removes what we made.
    const { releaseGuest } = await import("./release.js");
    return releaseGuest(ctx, xml);
  }
  // attach = none (the default): nothing of ours attaches QEMU, so there is nothing to adopt, and
  // the call stays what it was before migrate/restore did anything, an ignored operation.
  const attach = ctx.config.attach;
  if (kind === "incoming" && attach === "none") return done("nothing to do");
  if (ctx.config.mode === "off") return done("mode off");
  if (kind === "incoming" && attach !== "none") {
    // Like every operation: its module is loaded only by the calls that run it.
    const { adoptIncoming } = await import("./incoming.js");
    return adoptIncoming(ctx, attach, xml, input.truncated);
  }
  if (kind === "started") {
    const { checkStarted } = await import("./started.js");
    return checkStarted(ctx, xml);
  }
  // A domain left to libvirt's own AppArmor driver: its files are libvirt's (attach/ownership.ts).
  const left = await (await import("./leave.js")).leaveToLibvirt(ctx, xml);
  if (left !== undefined) return left;
  const { syncProfile } = await import("./sync.js");
  const policy = kind === "prepare" ? "always" : kind === "start" ? "if-changed" : "if-not-loaded";
  // A start begins with the XML's rules only: grants a record still has from an earlier run that
  // never reached `release` (host crash) belong to that run's devices, not to this one.
  const r = await syncProfile(ctx, xml, policy, kind === "prepare" ? { drop: () => true } : undefined);
  return done(`${r.profileName}: ${r.summary}`);
}
