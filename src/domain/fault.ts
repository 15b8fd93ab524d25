/**
 * A rejection found while reading the XML, before the caller knows (or while it still attaches)
 * the guest's name. `parseDomain` turns it into a GuestError. Internal to src/domain.
 */
export class XmlFault extends Error {
  constructor(
    /** The element at fault ("<uuid>", "devices/disk[2]/source") or "XML" for the whole document. */
    public readonly where: string,
    public readonly reason: string,
  ) {
    super(`${where}: ${reason}`);
    this.name = "XmlFault";
  }
}

/** A value that failed its syntax check; the element reading it adds where it was. */
export class InvalidValue extends Error {
  constructor(public readonly reason: string) {
    super(reason);
    this.name = "InvalidValue";
  }
}

/** Shortens a hostile value for an error message; oneLine() later makes control characters visible. */
export { preview } from "../xml/reader.js";
