/**
 * The errors an operation ends with, and the one line each becomes on stderr:
 *   virt-aa-hook: error: <guest>: <path>: <reason>
 * `guest` is the domain name when known (else "-"), `path` the host path or XML element at fault
 * (else "-"). `formatLine` is the only place that line is assembled.
 */

/**
 * A rejected path or element. Raised below the stage that knows the guest's name (images, policy,
 * rules, hook steps); whoever knows the guest names it when the line is written (`errorLine`), or
 * wraps it in a GuestError (the pipeline).
 */
export class PathError extends Error {
  constructor(
    public readonly path: string,
    public readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = "PathError";
  }
}

/** A PathError whose guest is known. */
export class GuestError extends PathError {
  constructor(
    public readonly guest: string,
    path: string,
    reason: string,
  ) {
    super(path, reason);
    this.message = `${guest}: ${path}: ${reason}`;
    this.name = "GuestError";
  }

  /** The one line printed on stderr. */
  toLine(level: Level = "error"): string {
    return formatLine(level, this.guest, this.path, this.reason);
  }
}

/** A fault in something the guest does not control (parser, template, config, disk full). */
export class HostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HostError";
  }
}

/**
 * Something an operation tolerated or worked around. Operations return them (hook/context.ts
 * Outcome); only the hook's entry point reports them: each as a log line (`<path>: <reason>`, or
 * just the reason when the path is "-"), and those with `stderr` together as one `warning:` line.
 */
export interface Warning {
  /** Host path (or XML element) it is about; "-" when none, or when the reason names it itself. */
  path: string;
  reason: string;
  /** Also said on stderr (libvirtd logs it with the guest), not only in the hook's log. */
  stderr?: boolean;
  /** Log level; default "warn" ("info": a routine clean-up worth one line; "debug": how a load was done). */
  level?: "warn" | "info" | "debug";
}

export type Level = "error" | "warning";

/**
 * The one stderr line: `<guest>, <path>, <reason>` for an operation on a guest; an admin
 * command's own errors name fewer fields (`virt-aa-hook: error: adopt: <reason>`). Control
 * characters are made visible so it stays one line.
 */
export function formatLine(level: Level, ...fields: [string, ...string[]]): string {
  return `virt-aa-hook: ${level}: ${fields.map(oneLine).join(": ")}`;
}

/** The stderr line for any error an operation on `guest` ended with. */
export function errorLine(guest: string, err: unknown, level: Level = "error"): string {
  if (err instanceof GuestError) return err.toLine(level);
  if (err instanceof PathError) return formatLine(level, guest, err.path, err.reason);
  if (err instanceof HostError) return formatLine(level, guest, "-", err.message);
  return formatLine(level, guest, "-", `internal error: ${err instanceof Error ? err.message : String(err)}`);
}

/** Just the reason (with its path), for the log file. */
export function errorReason(err: unknown): string {
  if (err instanceof PathError) return `${err.path}: ${err.reason}`;
  return err instanceof Error ? err.message : String(err);
}

export function oneLine(s: string): string {
  // JSON-style escapes for control characters keep the message on one line and unambiguous.
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * Ends an admin command with `code`. Commands throw it instead of setting an exit code; the CLI's
 * entry point catches it once, prints `line` (already formatted, e.g. by formatLine) if given, and
 * exits with `code`.
 */
export class ExitError extends Error {
  constructor(
    public readonly code: number,
    public readonly line?: string,
  ) {
    super(line ?? `exit ${code}`);
    this.name = "ExitError";
  }
}
