/**
 * A minimal XML scanner that reports where each element sits in the original text, so attach/
 * can change one element of a domain XML and leave every other byte as it was. It understands
 * just enough XML to never be fooled by markup inside comments, CDATA, processing instructions or
 * quoted attribute values. DOCTYPE (and with it every entity declaration) is refused: domain XML
 * never has one, and hostile XML must not get entity expansion.
 */

import { isXmlChar } from "../xml-chars.js";

export interface ElementSpan {
  /** Qualified name as written ("emulator", "qemu:commandline"). */
  name: string;
  /** Names from the root down to this element, joined by "/" ("domain/devices/emulator"). */
  path: string;
  /** Offset of "<" of the start tag. */
  start: number;
  /** Offset just after the start tag's ">" (for a self-closing element, equals `end`). */
  openEnd: number;
  /** Offset of "<" of the end tag (for a self-closing element, equals `end`). */
  closeStart: number;
  /** Offset just after the element's last ">". */
  end: number;
  selfClosing: boolean;
  /** Attribute values, entity-decoded. */
  attrs: Record<string, string>;
}

export class XmlScanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "XmlScanError";
  }
}

const NAME_END = /[\s/>=]/;

/** Characters XML 1.0 forbids even as literals (as domain/screen.ts). */
const ILLEGAL_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function scanElements(xml: string): ElementSpan[] {
  const illegal = ILLEGAL_CHAR.exec(xml);
  if (illegal) {
    const code = illegal[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
    throw new XmlScanError(`character U+${code} is not allowed in XML (offset ${illegal.index})`);
  }
  const out: ElementSpan[] = [];
  const stack: ElementSpan[] = [];
  let i = 0;
  const need = (token: string, from: number, what: string): number => {
    const at = xml.indexOf(token, from);
    if (at < 0) throw new XmlScanError(`unterminated ${what} at offset ${from}`);
    return at;
  };
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    if (lt < 0) break;
    if (xml.startsWith("<!--", lt)) {
      i = need("-->", lt + 4, "comment") + 3;
    } else if (xml.startsWith("<![CDATA[", lt)) {
      i = need("]]>", lt + 9, "CDATA section") + 3;
    } else if (xml.startsWith("<?", lt)) {
      i = need("?>", lt + 2, "processing instruction") + 2;
    } else if (xml.startsWith("<!", lt)) {
      throw new XmlScanError("DOCTYPE and other declarations are not accepted in domain XML");
    } else if (xml.startsWith("</", lt)) {
      const gt = need(">", lt + 2, "end tag");
      const name = xml.slice(lt + 2, gt).trim();
      const open = stack.pop();
      if (!open || open.name !== name) {
        throw new XmlScanError(`end tag </${name}> at offset ${lt} does not close <${open?.name ?? "nothing"}>`);
      }
      open.closeStart = lt;
      open.end = gt + 1;
      i = gt + 1;
    } else {
      i = scanStartTag(xml, lt, stack, out);
    }
  }
  if (stack.length > 0) throw new XmlScanError(`element <${stack[stack.length - 1]!.name}> is not closed`);
  return out;
}

function scanStartTag(xml: string, lt: number, stack: ElementSpan[], out: ElementSpan[]): number {
  let j = lt + 1;
  while (j < xml.length && !NAME_END.test(xml[j]!)) j++;
  const name = xml.slice(lt + 1, j);
  if (name === "") throw new XmlScanError(`empty element name at offset ${lt}`);
  const attrs: Record<string, string> = {};
  for (;;) {
    while (j < xml.length && /\s/.test(xml[j]!)) j++;
    if (j >= xml.length) throw new XmlScanError(`unterminated start tag <${name}> at offset ${lt}`);
    if (xml.startsWith("/>", j) || xml[j] === ">") break;
    const nameStart = j;
    while (j < xml.length && !NAME_END.test(xml[j]!)) j++;
    const attr = xml.slice(nameStart, j);
    while (j < xml.length && /\s/.test(xml[j]!)) j++;
    if (attr === "" || xml[j] !== "=") throw new XmlScanError(`malformed attribute in <${name}> at offset ${nameStart}`);
    j++;
    while (j < xml.length && /\s/.test(xml[j]!)) j++;
    const q = xml[j];
    if (q !== '"' && q !== "'") throw new XmlScanError(`unquoted attribute ${attr} in <${name}> at offset ${nameStart}`);
    const close = xml.indexOf(q, j + 1);
    if (close < 0) throw new XmlScanError(`unterminated attribute ${attr} in <${name}> at offset ${nameStart}`);
    attrs[attr] = decodeEntities(xml.slice(j + 1, close));
    j = close + 1;
  }
  const parent = stack[stack.length - 1];
  const selfClosing = xml[j] === "/";
  const end = selfClosing ? j + 2 : j + 1;
  const span: ElementSpan = {
    name,
    path: parent ? `${parent.path}/${name}` : name,
    start: lt,
    openEnd: end,
    closeStart: end,
    end,
    selfClosing,
    attrs,
  };
  out.push(span);
  if (!selfClosing) stack.push(span);
  return end;
}

const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/**
 * The five predefined entities and character references. A reference to a character XML 1.0
 * forbids (`&#0;`, `&#x1b;`, `&#xFFFE;`, a surrogate, beyond U+10FFFF) is refused, as the domain
 * parser refuses it: libvirt never writes one, and decoded it would put an escape sequence or NUL
 * into a name that admin commands print or pass on.
 */
export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith("#")) {
      const code = ref.startsWith("#x") ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      if (!isXmlChar(code)) throw new XmlScanError(`character reference ${whole} is not allowed in XML`);
      return String.fromCodePoint(code);
    }
    const named = NAMED[ref];
    if (named === undefined) throw new XmlScanError(`unknown entity ${whole}`);
    return named;
  });
}

export function escapeText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Text content of an element that has no child elements (CDATA allowed); undefined otherwise. */
export function textOf(xml: string, span: ElementSpan): string | undefined {
  if (span.selfClosing) return "";
  const inner = xml.slice(span.openEnd, span.closeStart);
  let text = "";
  let i = 0;
  while (i < inner.length) {
    const lt = inner.indexOf("<", i);
    const chunk = lt < 0 ? inner.slice(i) : inner.slice(i, lt);
    text += decodeEntities(chunk);
    if (lt < 0) break;
    if (inner.startsWith("<![CDATA[", lt)) {
      const e = inner.indexOf("]]>", lt);
      text += inner.slice(lt + 9, e);
      i = e + 3;
    } else if (inner.startsWith("<!--", lt)) {
      i = inner.indexOf("-->", lt) + 3;
    } else {
      return undefined;
    }
  }
  return text;
}
