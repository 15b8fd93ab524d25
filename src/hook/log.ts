import fs from "node:fs";
import path from "node:path";
import type { Warning } from "../errors.js";
import { isoTimestamp } from "./timestamp.js";

export type LogLevel = "error" | "warn" | "info" | "debug";
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/**
 * The hook's log file (default /var/log/libvirt/virt-aa-hook.log). Every hook call appends exactly
 * one summary line, whatever the log level (system tests and admins read wall times from it):
 *
 *   2025-01-02T03:04:05.678Z virt-aa-hook[1234]: guest="vm1" op="prepare" exit=0 ms=87 result="ok"
 *
 * Detail lines (warnings, parser runs) are written only at or above the configured level. Each
 * line is one append(2) write, so concurrent hooks never interleave within a line. Logging never
 * fails an operation: an unwritable log is ignored.
 */
export class HookLog {
  constructor(
    /** Real path; undefined disables logging. */
    private readonly file: string | undefined,
    private readonly level: LogLevel = "info",
  ) {}

  detail(level: LogLevel, guest: string, op: string, message: string): void {
    if (RANK[level] > RANK[this.level]) return;
    this.append(`${stamp()} ${level}: guest=${q(guest)} op=${op} ${q(message)}`);
  }

  /** A warning an operation returned: `<path>: <reason>`, or the reason alone when the path is "-". */
  warning(guest: string, op: string, w: Warning): void {
    this.detail(w.level ?? "warn", guest, op, w.path === "-" ? w.reason : `${w.path}: ${w.reason}`);
  }

  summary(guest: string, op: string, exit: number, ms: number, result: string): void {
    this.append(`${stamp()} guest=${q(guest)} op=${q(op)} exit=${exit} ms=${Math.round(ms)} result=${q(result)}`);
  }

  private append(line: string): void {
    if (!this.file) return;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o755 });
      fs.appendFileSync(this.file, line + "\n", { mode: 0o640 });
    } catch {
      // The hook's job is the profile, not the log.
    }
  }
}

function stamp(): string {
  return `${isoTimestamp(Date.now())} virt-aa-hook[${process.pid}]:`;
}

/** Quote for the log: JSON string syntax keeps hostile names on one line and unambiguous. */
function q(s: string): string {
  return JSON.stringify(s);
}
