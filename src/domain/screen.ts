/**
 * Hostile-input screening, done before the XML reader sees a byte. Every check is a single
 * linear pass (or cheaper) and the size check comes first, so even a 50 MB attack is turned
 * away in microseconds.
 */
import { PathError } from "../errors.js";
import { MAX_DEPTH, MAX_MARKUP_ITEMS, MAX_XML_BYTES } from "./limits.js";
import { firstIllegalChar } from "../xml/chars.js";

const DOCUMENT = "XML";

/** libvirt never emits a DTD; refusing one outright removes entity expansion and external entities. */
const DTD = /<!\s*(DOCTYPE|ENTITY)/i;

const DECLARED_ENCODING = /^<\?xml[^>]*?\sencoding\s*=\s*["']([^"']*)["']/;

/**
 * Decodes and checks the raw hook input; returns the text to parse, with the BOM removed and line
 * ends normalised to LF as XML 1.0 §2.11 requires (so values match what libvirt's libxml2 sees).
 * Throws PathError("XML", ...) on anything a well-formed libvirt document cannot contain.
 */
export function screenXml(input: string | Buffer): string {
  const size = typeof input === "string" ? input.length : input.byteLength;
  if (size > MAX_XML_BYTES) {
    throw new PathError(DOCUMENT, `document is ${size} bytes, more than the limit of ${MAX_XML_BYTES}`);
  }
  let text = typeof input === "string" ? input : decodeUtf8(input);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.includes("\r")) text = text.replace(/\r\n?/g, "\n");

  const illegal = firstIllegalChar(text);
  if (illegal) {
    throw new PathError(DOCUMENT, `character ${illegal.codePoint} is not allowed in XML (${position(text, illegal.index)})`);
  }
  const dtd = DTD.exec(text);
  if (dtd) {
    throw new PathError(DOCUMENT, `<!${dtd[1]}> declarations are not allowed (${position(text, dtd.index)})`);
  }
  const encoding = DECLARED_ENCODING.exec(text)?.[1];
  if (encoding !== undefined && !/^utf-?8$/i.test(encoding)) {
    throw new PathError(DOCUMENT, `encoding "${encoding}" is not supported (expected UTF-8)`);
  }
  checkStructure(text);
  return text;
}

function decodeUtf8(input: Buffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(input);
  } catch {
    throw new PathError(DOCUMENT, "document is not valid UTF-8");
  }
}

/**
 * One pass over the markup: nesting depth and element/attribute count, so the validator and the
 * reader never see a document whose tree could exhaust memory or make every walk up it long.
 * Only bounds are checked here; well-formedness is the validator's job, except for the few
 * constructs this scan must understand to stay in step (comments, CDATA, PIs, quoted values).
 */
function checkStructure(text: string): void {
  let depth = 0;
  let items = 0;
  let i = 0;
  const fail = (at: number, reason: string): never => {
    throw new PathError(DOCUMENT, `${reason} (${position(text, at)})`);
  };
  while ((i = text.indexOf("<", i)) !== -1) {
    const next = text.charCodeAt(i + 1);
    if (next === 0x21 /* ! */) {
      if (text.startsWith("<!--", i)) i = skipPast(text, i, "<!--", "-->", "unterminated comment", fail);
      else if (text.startsWith("<![CDATA[", i)) i = skipPast(text, i, "<![CDATA[", "]]>", "unterminated CDATA section", fail);
      else fail(i, "markup declarations are not allowed");
      continue;
    }
    if (next === 0x3f /* ? */) {
      i = skipPast(text, i, "<?", "?>", "unterminated processing instruction", fail);
      continue;
    }
    if (next === 0x2f /* / */) {
      depth--;
      i = skipPast(text, i, "</", ">", "unterminated end tag", fail);
      continue;
    }
    // A start tag: find its end, stepping over quoted attribute values (which may hold '>').
    items++;
    let quote = 0;
    let j = i + 1;
    for (; j < text.length; j++) {
      const c = text.charCodeAt(j);
      if (quote !== 0) {
        if (c === quote) quote = 0;
        else if (c === 0x3c /* < */) fail(j, "'<' is not allowed in an attribute value");
      } else if (c === 0x22 || c === 0x27) {
        quote = c;
        items++;
      } else if (c === 0x3e /* > */) {
        break;
      } else if (c === 0x3c) {
        fail(j, "'<' inside a tag");
      }
    }
    if (j >= text.length) fail(i, "unterminated start tag");
    if (text.charCodeAt(j - 1) !== 0x2f /* self-closing '/>' */ && ++depth > MAX_DEPTH) {
      fail(i, `elements are nested more than ${MAX_DEPTH} levels deep`);
    }
    if (items > MAX_MARKUP_ITEMS) fail(i, `more than ${MAX_MARKUP_ITEMS} elements and attributes`);
    i = j + 1;
  }
}

function skipPast(
  text: string,
  from: number,
  open: string,
  end: string,
  reason: string,
  fail: (at: number, reason: string) => never,
): number {
  const at = text.indexOf(end, from + open.length);
  return at === -1 ? fail(from, reason) : at + end.length;
}

/** "line L, column C" (1-based), computed only when reporting an error. */
export function position(text: string, index: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < index; i = text.indexOf("\n", i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `line ${line}, column ${index - lineStart + 1}`;
}
