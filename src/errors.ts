/**
 * Errors that reject a guest. Every one renders as the single line the admin (and libvirt's
 * "Hook script execution failed" message) shows:
 *   virt-aa-hook: error: <guest>: <path>: <reason>
 * `guest` is the domain name when known (else "-"), `path` the host path or XML element at fault
 * (else "-").
 */
export class GuestError extends Error {
  constructor(
    public readonly guest: string,
    public readonly path: string,
    public readonly reason: string,
  ) {
    super(`${guest}: ${path}: ${reason}`);
    this.name = "GuestError";
  }

  /** The one line printed on stderr. Control characters are made visible so it stays one line. */
  toLine(): string {
    return `virt-aa-hook: error: ${oneLine(this.guest)}: ${oneLine(this.path)}: ${oneLine(this.reason)}`;
  }
}

/** A fault in something the guest does not control (parser, template, config, disk full). */
export class HostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HostError";
  }
}

export function oneLine(s: string): string {
  // JSON-style escapes for control characters keep the message on one line and unambiguous.
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * A rejected path, raised below the stage that knows the guest's name (images, policy, rules).
 * The pipeline turns it into a GuestError by adding the guest.
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
