/**
 * The well-formedness gate for XML that must be fully valid before it is read (domain XML, pool
 * definitions): fast-xml-parser's validator, then the one scanner (reader.ts). The validator stays
 * because its verdict (and wording) is what the domain reader has always enforced, and dropping it
 * for the scanner alone would need a proof that nothing malformed then gets through
 * (docs/performance.md, "Measured and not adopted"). Kept apart from reader.ts so that code which
 * only scans (attach/) does not load the validator.
 */
import { XMLValidator } from "fast-xml-parser";
import { scanXml, XmlError, type XmlDocument } from "./reader.js";

/** Scans well-formed XML; anything else is an XmlError("malformed XML at line L, column C: <what is wrong>"). */
export function readWellFormedXml(text: string): XmlDocument {
  const verdict = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (verdict !== true) {
    const { msg, line, col } = verdict.err;
    const at = col === undefined ? `line ${line}` : `line ${line}, column ${col}`;
    throw new XmlError(`malformed XML at ${at}: ${msg}`);
  }
  try {
    return scanXml(text);
  } catch (err) {
    if (err instanceof XmlError) throw new XmlError(`malformed XML: ${err.reason}`);
    throw err;
  }
}
