/**
 * The domain XML as a tree (the one XML reader, src/xml/reader.ts, after the well-formedness
 * check), and a small read-only cursor over it that knows where it is (for error messages) and
 * enforces the value rules every reader needs: entity decoding, length limits, at-most-one for
 * single elements.
 */
import { PathError } from "../errors.js";
import { InvalidValue } from "./fault.js";
import { MAX_VALUE_CHARS } from "./limits.js";
import { decodeAttribute, decodeText, XmlError, type XmlDocument, type XmlNode } from "../xml/reader.js";
import { readWellFormedXml } from "../xml/well-formed.js";

/** Parses screened text (see screen.ts) into the root element; malformed XML becomes a PathError. */
export function parseTree(text: string): XmlElement {
  let doc: XmlDocument;
  try {
    doc = readWellFormedXml(text);
  } catch (err) {
    if (err instanceof XmlError) throw new PathError("XML", err.reason);
    throw err;
  }
  refuseReservedNames(doc);
  if (doc.roots.length !== 1) throw new PathError("XML", `expected one root element, found ${doc.roots.length}`);
  return new XmlElement(doc.roots[0]!, undefined, 0, 1);
}

/**
 * Elements named like these JavaScript properties were refused when the tree was fast-xml-parser's
 * object tree (prototype pollution), except inside the root's <metadata>, which it kept as text.
 * libvirt has no such element; the rejection is kept so that what the hook accepts did not change.
 */
const RESERVED_NAMES = new Set(["__proto__", "constructor", "prototype"]);

function refuseReservedNames(doc: XmlDocument): void {
  for (const node of doc.elements) {
    if (RESERVED_NAMES.has(node.name) && !inRootMetadata(node)) {
      throw new PathError("XML", `malformed XML: [SECURITY] Invalid name: "${node.name}" is a reserved JavaScript keyword that could cause prototype pollution`);
    }
  }
}

function inRootMetadata(node: XmlNode): boolean {
  let top = node;
  while (top.parent?.parent) top = top.parent;
  return top !== node && top.name === "metadata" && top.parent?.name === "domain";
}

export class XmlElement {
  constructor(
    private readonly node: XmlNode,
    private readonly parent: XmlElement | undefined,
    /** 0-based position among same-named siblings */
    readonly index: number,
    private readonly siblings: number,
  ) {}

  get tag(): string {
    return this.node.name;
  }

  /** "<uuid>" for the root's children, "devices/disk[2]/source" deeper; the index only when ambiguous. */
  get where(): string {
    return describe(this.steps(), this.tag);
  }

  fail(reason: string): never {
    throw new PathError(this.where, reason);
  }

  children(tag: string): XmlElement[] {
    const all = this.node.childrenNamed(tag);
    return all.map((child, i) => new XmlElement(child, this, i, all.length));
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

  /** Every child element, whatever its name, in document order. */
  elements(): XmlElement[] {
    const counts = new Map<string, number>();
    for (const child of this.node.children) counts.set(child.name, (counts.get(child.name) ?? 0) + 1);
    const seen = new Map<string, number>();
    return this.node.children.map((child) => {
      const i = seen.get(child.name) ?? 0;
      seen.set(child.name, i + 1);
      return new XmlElement(child, this, i, counts.get(child.name)!);
    });
  }

  /** The tag without its prefix ("allow" for "vah:allow"). */
  get localName(): string {
    const colon = this.tag.indexOf(":");
    return colon < 0 ? this.tag : this.tag.slice(colon + 1);
  }

  /**
   * The namespace URI of this element, as XML Namespaces resolves it: the prefix's (or, without a
   * prefix, the default) declaration in scope, nearest first; undefined for no namespace (an
   * undeclared prefix too: well-formed.ts does not check namespaces, and such an element is in no
   * namespace we know). Matched by URI, never by prefix: libvirt may rewrite the prefix.
   */
  get namespace(): string | undefined {
    const colon = this.tag.indexOf(":");
    const declaration = colon < 0 ? "xmlns" : `xmlns:${this.tag.slice(0, colon)}`;
    for (let n: XmlNode | undefined = this.node; n; n = n.parent) {
      const raw = n.rawAttribute(declaration);
      if (raw === undefined) continue;
      const uri = this.decoded(decodeAttribute, raw);
      return uri === "" ? undefined : uri;
    }
    return undefined;
  }

  /** Names of the attributes as written, namespace declarations (`xmlns`, `xmlns:*`) left out. */
  attributeNames(): string[] {
    const a = this.node.attributes;
    const names: string[] = [];
    for (let i = 0; i < a.length; i += 2) if (a[i] !== "xmlns" && !a[i]!.startsWith("xmlns:")) names.push(a[i]!);
    return names;
  }

  has(tag: string): boolean {
    return this.child(tag) !== undefined;
  }

  /** Decoded attribute value, or undefined when absent. */
  attr(name: string): string | undefined {
    const raw = this.node.rawAttribute(name);
    if (raw === undefined) return undefined;
    return this.checked(this.decoded(decodeAttribute, raw), `attribute "${name}"`);
  }

  requireAttr(name: string): string {
    return this.attr(name) ?? this.fail(`missing attribute "${name}"`);
  }

  /** Decoded text content (comments dropped, as libxml2's node content does). */
  text(): string {
    if (this.node.hasCdata()) this.fail("CDATA sections are not supported here");
    return this.checked(this.decoded(decodeText, this.node.rawText()), "text");
  }

  /** True for `<tag/>`: no attributes, no child elements, no text but whitespace. */
  isEmpty(): boolean {
    const n = this.node;
    return n.attributes.length === 0 && n.children.length === 0 && !n.hasCdata() && /^\s*$/.test(n.rawText());
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

  private decoded(decode: (raw: string) => string, raw: string): string {
    try {
      return decode(raw);
    } catch (err) {
      if (err instanceof XmlError) this.fail(err.reason);
      throw err;
    }
  }

  private checked(value: string, what: string): string {
    if (value.length > MAX_VALUE_CHARS) this.fail(`${what} is ${value.length} characters, more than ${MAX_VALUE_CHARS}`);
    return value;
  }

  private childFail(tag: string, reason: string): never {
    throw new PathError(describe([...this.steps(), tag], tag), reason);
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
