/**
 * The one XML parse, and a small read-only cursor over its result that knows where it is (for
 * error messages) and enforces the value rules every reader needs: entity decoding, length
 * limits, at-most-one for single elements.
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { InvalidValue, XmlFault, preview } from "./fault.js";
import { MAX_DEPTH, MAX_VALUE_CHARS } from "./limits.js";
import { isXmlChar } from "../xml-chars.js";

const ATTR = "@_";
const TEXT = "#text";
const CDATA = "#cdata";

/** The parser's output for one element: attributes under "@_name", text under "#text", children as arrays. */
type RawNode = Record<string, unknown>;

// Built once: the hook parses one document per process, `explain` and tests parse many.
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: ATTR,
  // Values stay strings exactly as written: a guest named "1e3" or a path "0x10" is text.
  parseTagValue: false,
  parseAttributeValue: false,
  // Entities are decoded by decodeValue() below, only the five predefined ones and character
  // references: there is no DTD (screenXml refuses one), so nothing can expand.
  processEntities: false,
  htmlEntities: false,
  // Keep whitespace: libvirt does not trim paths, so neither do we.
  trimValues: false,
  // Every element is an array and every element an object: one uniform shape, duplicates visible.
  isArray: (_tag, _path, _leaf, isAttribute) => !isAttribute,
  alwaysCreateTextNode: true,
  cdataPropName: CDATA,
  ignoreDeclaration: true,
  ignorePiTags: true,
  removeNSPrefix: false,
  allowBooleanAttributes: false,
  maxNestedTags: MAX_DEPTH + 1,
  // Free-form application data: not parsed into objects, so its element names cannot matter.
  stopNodes: ["domain.metadata"],
});

/** Parses screened text (see screen.ts) into the root element; malformed XML becomes an XmlFault. */
export function parseTree(text: string): XmlElement {
  const verdict = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (verdict !== true) {
    const { msg, line, col } = verdict.err;
    const at = col === undefined ? `line ${line}` : `line ${line}, column ${col}`;
    throw new XmlFault("XML", `malformed XML at ${at}: ${msg}`);
  }
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch (err) {
    throw new XmlFault("XML", `malformed XML: ${err instanceof Error ? err.message : String(err)}`);
  }
  const roots = Object.keys(doc as RawNode).filter((key) => key !== TEXT);
  if (roots.length !== 1) throw new XmlFault("XML", `expected one root element, found ${roots.length}`);
  const tag = roots[0]!;
  const nodes = (doc as RawNode)[tag] as RawNode[];
  if (nodes.length !== 1) throw new XmlFault("XML", `expected one root element, found ${nodes.length}`);
  return new XmlElement(nodes[0]!, tag, undefined, 0, 1);
}

export class XmlElement {
  constructor(
    private readonly node: RawNode,
    readonly tag: string,
    private readonly parent: XmlElement | undefined,
    /** 0-based position among same-named siblings */
    readonly index: number,
    private readonly siblings: number,
  ) {}

  /** "<uuid>" for the root's children, "devices/disk[2]/source" deeper; the index only when ambiguous. */
  get where(): string {
    return describe(this.steps(), this.tag);
  }

  fail(reason: string): never {
    throw new XmlFault(this.where, reason);
  }

  children(tag: string): XmlElement[] {
    const raw = Object.hasOwn(this.node, tag) ? this.node[tag] : undefined;
    if (!Array.isArray(raw)) return [];
    return raw.map((child: RawNode, i) => new XmlElement(child, tag, this, i, raw.length));
  }

  /** The single child `<tag>`, or undefined; more than one is rejected (no guessing which one libvirt used). */
  child(tag: string): XmlElement | undefined {
    const all = this.children(tag);
    if (all.length > 1) this.childFail(tag, `duplicate element: found ${all.length}, expected at most one`);
    return all[0];
  }

  /** Exactly one child `<tag>`. */
  one(tag: string): XmlElement {
    const all = this.children(tag);
    if (all.length === 0) this.childFail(tag, "missing element");
    if (all.length > 1) this.childFail(tag, `duplicate element: found ${all.length}, expected exactly one`);
    return all[0]!;
  }

  has(tag: string): boolean {
    return this.child(tag) !== undefined;
  }

  /** Decoded attribute value, or undefined when absent. */
  attr(name: string): string | undefined {
    const raw = this.node[ATTR + name];
    if (typeof raw !== "string" || !Object.hasOwn(this.node, ATTR + name)) return undefined;
    // XML attribute-value normalisation (§3.3.3): literal whitespace becomes a space, references do not.
    return this.checked(decodeValue(raw.replace(/[\t\n]/g, " "), this), `attribute "${name}"`);
  }

  requireAttr(name: string): string {
    return this.attr(name) ?? this.fail(`missing attribute "${name}"`);
  }

  /** Decoded text content (comments dropped, as libxml2's node content does). */
  text(): string {
    if (Object.hasOwn(this.node, CDATA)) this.fail("CDATA sections are not supported here");
    const raw = this.node[TEXT];
    return this.checked(decodeValue(typeof raw === "string" ? raw : "", this), "text");
  }

  /** True for `<tag/>`: no attributes, no child elements, no text but whitespace. */
  isEmpty(): boolean {
    return Object.keys(this.node).every((key) => key === TEXT && /^\s*$/.test(String(this.node[key])));
  }

  /** Runs a value parser, reporting its complaint at this element. */
  convert<T>(what: string, value: string, parse: (value: string) => T): T {
    try {
      return parse(value);
    } catch (err) {
      if (err instanceof InvalidValue) this.fail(`${what}: ${err.reason}`);
      throw err;
    }
  }

  private checked(value: string, what: string): string {
    if (value.length > MAX_VALUE_CHARS) this.fail(`${what} is ${value.length} characters, more than ${MAX_VALUE_CHARS}`);
    return value;
  }

  private childFail(tag: string, reason: string): never {
    throw new XmlFault(describe([...this.steps(), tag], tag), reason);
  }

  /** Path below the root element, outermost first. */
  private steps(): string[] {
    const steps: string[] = [];
    for (let e: XmlElement | undefined = this; e?.parent; e = e.parent) {
      steps.push(e.siblings > 1 ? `${e.tag}[${e.index + 1}]` : e.tag);
    }
    return steps.reverse();
  }
}

function describe(steps: string[], tag: string): string {
  return steps.length <= 1 ? `<${steps[0] ?? tag}>` : steps.join("/");
}

const PREDEFINED: Record<string, string> = { lt: "<", gt: ">", amp: "&", apos: "'", quot: '"' };

/** Replaces `&name;` (the five XML predefined entities) and `&#N;` / `&#xH;` character references. */
function decodeValue(raw: string, at: XmlElement): string {
  if (!raw.includes("&")) return raw;
  return raw.replace(/&([^&;]*)(;?)/g, (_match, body: string, semicolon: string) => {
    if (semicolon === "") at.fail(`malformed entity reference "&${preview(body, 16)}"`);
    if (Object.hasOwn(PREDEFINED, body)) return PREDEFINED[body]!;
    const numeric = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(body);
    if (!numeric) at.fail(`unknown entity "&${preview(body, 16)};"`);
    const code = numeric[1] !== undefined ? parseInt(numeric[1], 16) : parseInt(numeric[2]!, 10);
    if (!isXmlChar(code)) at.fail(`character reference "&${body};" is not allowed in XML`);
    return String.fromCodePoint(code);
  });
}
