/**
 * The one XML reader: a scanner that turns a document into a tree of elements, each knowing where
 * it sits in the original text (so attach/ can change one element and leave every other byte as it
 * was), with attribute values and character data kept as written and decoded on demand by the one
 * entity decoder below. The domain model (src/domain/tree.ts), adopt's edits (src/attach) and pool
 * definitions (src/rules/volumes.ts) all read XML through it.
 *
 * The scanner understands just enough XML never to be fooled by markup inside comments, CDATA,
 * processing instructions or quoted attribute values. DOCTYPE (and with it every entity
 * declaration) is refused: libvirt never writes one, and hostile XML must not get entity
 * expansion. Full well-formedness is checked by well-formed.ts where a reader needs it.
 */
import { isXmlChar, isXmlName } from "./chars.js";

/** A problem with the XML text; the reader's caller says which document and turns it into its own error. */
export class XmlError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "XmlError";
  }
}

export class XmlNode {
  readonly children: XmlNode[] = [];
  /** Attribute names and values as written (not decoded), alternating: name, value, name, value. */
  readonly attributes: string[] = [];
  /** Character data as written, in order, comments and processing instructions left out; a CDATA section is kept whole, `<![CDATA[` ... `]]>` included. */
  readonly content: string[] = [];
  /** Offset just after the start tag's ">" (for a self-closing element, equals `end`). */
  openEnd = 0;
  /** Offset of "<" of the end tag (for a self-closing element, equals `end`). */
  closeStart = 0;
  /** Offset just after the element's last ">". */
  end = 0;
  selfClosing = false;
  private byName: Map<string, XmlNode[]> | undefined;

  constructor(
    /** Qualified name as written ("emulator", "qemu:commandline"). */
    readonly name: string,
    readonly parent: XmlNode | undefined,
    /** Offset of "<" of the start tag. */
    readonly start: number,
  ) {}

  /** Names from the root down to this element, joined by "/" ("domain/devices/emulator"). */
  get path(): string {
    let path = this.name;
    for (let e = this.parent; e; e = e.parent) path = `${e.name}/${path}`;
    return path;
  }

  /** The child elements named `name`, in document order. */
  childrenNamed(name: string): XmlNode[] {
    if (this.byName === undefined) {
      this.byName = new Map();
      for (const child of this.children) {
        const same = this.byName.get(child.name);
        if (same) same.push(child);
        else this.byName.set(child.name, [child]);
      }
    }
    return this.byName.get(name) ?? [];
  }

  /** An attribute's value as written, or undefined when absent. */
  rawAttribute(name: string): string | undefined {
    const a = this.attributes;
    for (let i = 0; i < a.length; i += 2) if (a[i] === name) return a[i + 1];
    return undefined;
  }

  /** An attribute's value, normalised and decoded as XML requires, or undefined when absent. */
  attribute(name: string): string | undefined {
    const raw = this.rawAttribute(name);
    return raw === undefined ? undefined : decodeAttribute(raw);
  }

  hasCdata(): boolean {
    return this.content.some(isCdata);
  }

  /** The character data outside CDATA sections, as written, in one string. */
  rawText(): string {
    const c = this.content;
    if (c.length === 1 && !isCdata(c[0]!)) return c[0]!;
    let text = "";
    for (const part of c) if (!isCdata(part)) text += part;
    return text;
  }

  /** Decoded text of an element without child elements (CDATA taken literally); undefined when it has child elements. */
  text(): string | undefined {
    if (this.children.length > 0) return undefined;
    let text = "";
    let raw = "";
    for (const part of this.content) {
      if (isCdata(part)) {
        text += decodeText(raw) + part.slice(CDATA_OPEN.length, -CDATA_CLOSE.length);
        raw = "";
      } else {
        raw += part;
      }
    }
    return text + decodeText(raw);
  }
}

const CDATA_OPEN = "<![CDATA[";
const CDATA_CLOSE = "]]>";

/** Character data never holds a "<", so a part that starts with one is a CDATA section. */
function isCdata(part: string): boolean {
  return part.charCodeAt(0) === 0x3c;
}

/** The document's top-level elements (one for a document that is well-formed) and every element in document order. */
export interface XmlDocument {
  roots: XmlNode[];
  elements: XmlNode[];
}

/** Scans `xml` into its elements; throws XmlError at the first thing it cannot read. Offsets are into `xml` itself. */
export function scanXml(xml: string): XmlDocument {
  const roots: XmlNode[] = [];
  const elements: XmlNode[] = [];
  let open: XmlNode | undefined;
  let i = 0;
  const need = (token: string, from: number, what: string): number => {
    const at = xml.indexOf(token, from);
    if (at < 0) throw new XmlError(`unterminated ${what} at offset ${from}`);
    return at;
  };
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    if (open && lt !== i) open.content.push(lt < 0 ? xml.slice(i) : xml.slice(i, lt));
    if (lt < 0) break;
    const next = xml.charCodeAt(lt + 1);
    if (next === 0x21 /* ! */) {
      if (xml.startsWith("<!--", lt)) {
        i = need("-->", lt + 4, "comment") + 3;
      } else if (xml.startsWith(CDATA_OPEN, lt)) {
        i = need(CDATA_CLOSE, lt + 9, "CDATA section") + 3;
        if (!open) throw new XmlError(`CDATA section outside the root element at offset ${lt}`);
        open.content.push(xml.slice(lt, i));
      } else {
        throw new XmlError("DOCTYPE and other declarations are not accepted");
      }
    } else if (next === 0x3f /* ? */) {
      i = need("?>", lt + 2, "processing instruction") + 2;
    } else if (next === 0x2f /* / */) {
      const gt = need(">", lt + 2, "end tag");
      const name = trimSpace(xml.slice(lt + 2, gt));
      if (!open || open.name !== name) {
        throw new XmlError(`end tag </${name}> at offset ${lt} does not close <${open?.name ?? "nothing"}>`);
      }
      open.closeStart = lt;
      open.end = gt + 1;
      open = open.parent;
      i = gt + 1;
    } else {
      const element = scanStartTag(xml, lt, open);
      elements.push(element);
      if (open) open.children.push(element);
      else roots.push(element);
      if (!element.selfClosing) open = element;
      i = element.openEnd;
    }
  }
  if (open) throw new XmlError(`element <${open.name}> is not closed`);
  return { roots, elements };
}

/**
 * XML's whitespace (§2.3 `S`): space, tab, LF, CR, and nothing else. JavaScript's `\s` also
 * matches U+00A0, U+1680, U+3000 and others, some of which XML allows inside names
 * (`x\u1680file` is one attribute name to libvirt, not "file"), so names are split here
 * exactly as libxml2 splits them.
 */
function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

/** Whitespace, "/", ">" or "=": where a name ends. */
function endsName(code: number): boolean {
  return isSpace(code) || code === 0x2f || code === 0x3e || code === 0x3d;
}

/** `text` without XML whitespace at either end. */
function trimSpace(text: string): string {
  let from = 0;
  let to = text.length;
  while (from < to && isSpace(text.charCodeAt(from))) from++;
  while (to > from && isSpace(text.charCodeAt(to - 1))) to--;
  return text.slice(from, to);
}

function scanStartTag(xml: string, lt: number, parent: XmlNode | undefined): XmlNode {
  const length = xml.length;
  let j = lt + 1;
  while (j < length && !endsName(xml.charCodeAt(j))) j++;
  const name = xml.slice(lt + 1, j);
  if (name === "") throw new XmlError(`empty element name at offset ${lt}`);
  if (!isXmlName(name)) throw new XmlError(`invalid element name "${preview(name, 32)}" at offset ${lt}`);
  const element = new XmlNode(name, parent, lt);
  const attributes = element.attributes;
  for (;;) {
    const spaced = j;
    while (j < length && isSpace(xml.charCodeAt(j))) j++;
    if (j >= length) throw new XmlError(`unterminated start tag <${name}> at offset ${lt}`);
    const c = xml.charCodeAt(j);
    if (c === 0x3e /* > */ || (c === 0x2f /* / */ && xml.charCodeAt(j + 1) === 0x3e)) break;
    const nameStart = j;
    // XML needs whitespace before each attribute; without it the name would start with whatever followed the last value.
    if (attributes.length > 0 && j === spaced) throw new XmlError(`malformed attribute in <${name}> at offset ${nameStart}`);
    while (j < length && !endsName(xml.charCodeAt(j))) j++;
    const attr = xml.slice(nameStart, j);
    while (j < length && isSpace(xml.charCodeAt(j))) j++;
    if (!isXmlName(attr) || xml.charCodeAt(j) !== 0x3d /* = */) throw new XmlError(`malformed attribute in <${name}> at offset ${nameStart}`);
    j++;
    while (j < length && isSpace(xml.charCodeAt(j))) j++;
    const q = xml[j];
    if (q !== '"' && q !== "'") throw new XmlError(`unquoted attribute ${attr} in <${name}> at offset ${nameStart}`);
    const close = xml.indexOf(q, j + 1);
    if (close < 0) throw new XmlError(`unterminated attribute ${attr} in <${name}> at offset ${nameStart}`);
    if (element.rawAttribute(attr) !== undefined) throw new XmlError(`attribute ${attr} repeated in <${name}> at offset ${nameStart}`);
    attributes.push(attr, xml.slice(j + 1, close));
    j = close + 1;
  }
  element.selfClosing = xml.charCodeAt(j) === 0x2f;
  const end = element.selfClosing ? j + 2 : j + 1;
  element.openEnd = end;
  if (element.selfClosing) {
    element.closeStart = end;
    element.end = end;
  }
  return element;
}

const PREDEFINED: Record<string, string> = { lt: "<", gt: ">", amp: "&", apos: "'", quot: '"' };

/** Shortens a hostile value for an error message (control characters are made visible where the line is printed). */
export function preview(value: string, max = 64): string {
  return value.length <= max ? value : `${value.slice(0, max)}...`;
}

/**
 * The one entity decoder: the five predefined entities and `&#N;` / `&#xH;` character references.
 * There is no DTD (the scanner refuses one), so nothing else can be declared and nothing expands.
 * A reference to a character XML forbids (`&#0;`, `&#x1b;`, `&#xFFFE;`, a surrogate, beyond
 * U+10FFFF) is refused: libvirt never writes one, and decoded it would put an escape sequence or
 * NUL into a name that the hook and admin commands print or pass on.
 */
export function decodeText(raw: string): string {
  if (!raw.includes("&")) return raw;
  return raw.replace(/&([^&;]*)(;?)/g, (_match, body: string, semicolon: string) => {
    if (semicolon === "") throw new XmlError(`malformed entity reference "&${preview(body, 16)}"`);
    if (Object.hasOwn(PREDEFINED, body)) return PREDEFINED[body]!;
    const numeric = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(body);
    if (!numeric) throw new XmlError(`unknown entity "&${preview(body, 16)};"`);
    const code = numeric[1] !== undefined ? parseInt(numeric[1], 16) : parseInt(numeric[2]!, 10);
    if (!isXmlChar(code)) throw new XmlError(`character reference "&${body};" is not allowed in XML`);
    return String.fromCodePoint(code);
  });
}

/** An attribute value as XML reads it (§3.3.3): a literal line end or tab becomes a space (a reference to one does not), then references are decoded. */
export function decodeAttribute(raw: string): string {
  return decodeText(raw.replace(/\r\n|[\t\n\r]/g, " "));
}

/** Text escaped for character data. */
export function escapeText(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
