import { GuestError, HostError, oneLine } from "../errors.js";

/**
 * An operation that cannot go on: names the host path at fault so the line libvirt shows reads
 * `virt-aa-hook: error: <guest>: <path>: <reason>`.
 */
export class HookFailure extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = "HookFailure";
  }
}

/** The one stderr line for any error thrown by an operation. */
export function errorLine(guest: string, err: unknown): string {
  if (err instanceof GuestError) return err.toLine();
  if (err instanceof HookFailure) return new GuestError(guest, err.path, err.reason).toLine();
  if (err instanceof HostError) return new GuestError(guest, "-", err.message).toLine();
  const msg = err instanceof Error ? `internal error: ${err.message}` : `internal error: ${String(err)}`;
  return `virt-aa-hook: error: ${oneLine(guest)}: -: ${oneLine(msg)}`;
}

/** Just the reason, for the log file. */
export function errorReason(err: unknown): string {
  if (err instanceof GuestError) return `${err.path}: ${err.reason}`;
  if (err instanceof HookFailure) return `${err.path}: ${err.reason}`;
  return err instanceof Error ? err.message : String(err);
}
