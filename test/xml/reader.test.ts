import { describe, expect, it } from "vitest";
import { isXmlName } from "../../src/xml/chars.js";
import { decodeAttribute, decodeText, escapeText, scanXml, XmlError } from "../../src/xml/reader.js";
import { readWellFormedXml } from "../../src/xml/well-formed.js";

function scanError(xml: string): string {
  try {
    scanXml(xml);
  } catch (err) {
    if (err instanceof XmlError) return err.reason;
    throw err;
  }
  throw new Error("scanned without complaint");
}

describe("scanXml", () => {
  it("reports each element's spans in the original text, its path, raw attributes and character data", () => {
    const xml = "<a x='1 &amp; 2'>t<!-- c --><b/>u<c y=\"&lt;\">v<![CDATA[<w>]]></c></a>";
    const { roots, elements } = scanXml(xml);
    expect(roots.map((e) => e.name)).toEqual(["a"]);
    expect(elements.map((e) => [e.path, e.start, e.openEnd, e.closeStart, e.end, e.selfClosing])).toEqual([
      ["a", 0, 17, 65, 69, false],
      ["a/b", 28, 32, 32, 32, true],
      ["a/c", 33, 45, 61, 65, false],
    ]);
    const [a, , c] = elements;
    expect(a!.attributes).toEqual(["x", "1 &amp; 2"]);
    expect(a!.attribute("x")).toBe("1 & 2");
    expect(a!.content).toEqual(["t", "u"]);
    expect(a!.text()).toBeUndefined();
    expect(c!.rawText()).toBe("v");
    expect(c!.hasCdata()).toBe(true);
    expect(c!.text()).toBe("v<w>");
    expect(xml.slice(c!.openEnd, c!.closeStart)).toBe("v<![CDATA[<w>]]>");
    expect(a!.childrenNamed("c")).toEqual([c]);
    expect(a!.childrenNamed("z")).toEqual([]);
  });

  it("splits names only at XML whitespace, as libxml2 does", () => {
    const { elements } = scanXml("<a\u1680b c\u1680d='1'/>");
    expect(elements.map((e) => [e.name, e.attributes])).toEqual([["a\u1680b", ["c\u1680d", "1"]]]);
  });

  it.each([
    ["<a><!-- x", "unterminated comment at offset 7"],
    ["<a><![CDATA[x", "unterminated CDATA section at offset 12"],
    ["<a><?pi", "unterminated processing instruction at offset 5"],
    ["<!DOCTYPE a><a/>", "DOCTYPE and other declarations are not accepted"],
    ["<a></b>", "end tag </b> at offset 3 does not close <a>"],
    ["</a>", "end tag </a> at offset 0 does not close <nothing>"],
    ["<a><b></a>", "end tag </a> at offset 6 does not close <b>"],
    ["<a>", "element <a> is not closed"],
    ["< a/>", "empty element name at offset 0"],
    ["<\u3000a/>", 'invalid element name "\u3000a" at offset 0'],
    ["<a x='1'", "unterminated start tag <a> at offset 0"],
    ["<a x/>", "malformed attribute in <a> at offset 3"],
    ["<a x='1'y='2'/>", "malformed attribute in <a> at offset 8"],
    ["<a x=1/>", "unquoted attribute x in <a> at offset 3"],
    ["<a x='1/>", "unterminated attribute x in <a> at offset 3"],
    ["<a x='1' x='2'/>", "attribute x repeated in <a> at offset 9"],
    ["<![CDATA[x]]><a/>", "CDATA section outside the root element at offset 0"],
  ])("refuses %j", (xml, reason) => {
    expect(scanError(xml)).toBe(reason);
  });
});

describe("the one entity decoder", () => {
  it("decodes the five predefined entities and character references", () => {
    expect(decodeText("a&amp;b&lt;&gt;&quot;&apos;&#233;&#x263A;")).toBe("a&b<>\"'é☺");
    expect(decodeText("plain")).toBe("plain");
  });

  it.each([
    ["a & b", 'malformed entity reference "& b"'],
    ["&nbsp;", 'unknown entity "&nbsp;"'],
    ["&#;", 'unknown entity "&#;"'],
    ["&#0;", 'character reference "&#0;" is not allowed in XML'],
    ["&#x1b;", 'character reference "&#x1b;" is not allowed in XML'],
    ["&#xFFFE;", 'character reference "&#xFFFE;" is not allowed in XML'],
    ["&#xD800;", 'character reference "&#xD800;" is not allowed in XML'],
    ["&#x110000;", 'character reference "&#x110000;" is not allowed in XML'],
  ])("refuses %j", (raw, reason) => {
    expect(() => decodeText(raw)).toThrow(new XmlError(reason));
  });

  it("normalises literal whitespace in attribute values, not referenced whitespace", () => {
    expect(decodeAttribute("a\tb\nc\r\nd\re&#10;f")).toBe("a b c d e\nf");
  });

  it("escapes what it decodes", () => {
    expect(decodeText(escapeText("a<&>b"))).toBe("a<&>b");
  });
});

describe("isXmlName", () => {
  it("follows XML's Name production", () => {
    for (const good of ["a", "qemu:commandline", "_x", "a-b.c9", "é", "a\u1680b", "x\u00b7"]) expect(isXmlName(good), good).toBe(true);
    for (const bad of ["", "9a", "-a", ".a", "a b", "a\u3000", "\u00b7x", "a/b", "a=b"]) expect(isXmlName(bad), bad).toBe(false);
  });
});

describe("readWellFormedXml", () => {
  it("reports the validator's verdict, then scans", () => {
    expect(() => readWellFormedXml("<a>")).toThrow(new XmlError("malformed XML at line 1, column 1: Unclosed tag 'a'."));
    expect(() => readWellFormedXml("")).toThrow(new XmlError("malformed XML at line 1: Start tag expected."));
    expect(() => readWellFormedXml("<a><b></readonly/></b></a>")).toThrow(new XmlError("malformed XML: end tag </readonly/> at offset 6 does not close <b>"));
    expect(readWellFormedXml("<a><b/></a>").elements.map((e) => e.path)).toEqual(["a", "a/b"]);
  });
});
