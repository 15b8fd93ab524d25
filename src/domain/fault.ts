/**
 * What src/domain throws while reading the XML is a PathError (src/errors.ts) naming the element at
 * fault ("<uuid>", "devices/disk[2]/source") or "XML" for the whole document; `parseDomain` adds
 * the guest's name (GuestError). The value readers throw InvalidValue, which the element reading the
 * value turns into that PathError.
 */

/** A value that failed its syntax check; the element reading it adds where it was. */
export class InvalidValue extends Error {
  constructor(public readonly reason: string) {
    super(reason);
    this.name = "InvalidValue";
  }
}

/** Shortens a hostile value for an error message; oneLine() later makes control characters visible. */
export { preview } from "../xml/reader.js";
