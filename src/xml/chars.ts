/**
 * XML 1.0's `Char` production: the code points a document may contain, raw or as a character
 * reference. Every reader of XML here refuses everything else (`&#0;`, `&#x1b;`, lone surrogates,
 * U+FFFE/U+FFFF), so they all agree on what is XML.
 */
export function isXmlChar(code: number): boolean {
  return (
    code === 0x9 ||
    code === 0xa ||
    code === 0xd ||
    (code >= 0x20 && code <= 0xd7ff) ||
    (code >= 0xe000 && code <= 0xfffd) ||
    (code >= 0x10000 && code <= 0x10ffff)
  );
}

/**
 * The characters XML 1.0 forbids even as literals: C0 controls other than tab/LF/CR, U+FFFE/U+FFFF,
 * and unpaired surrogates (a JS string can carry them; valid UTF-8 cannot).
 */
const ILLEGAL_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The first literal character XML forbids: its offset and "U+XXXX", or undefined. */
export function firstIllegalChar(text: string): { index: number; codePoint: string } | undefined {
  const illegal = ILLEGAL_CHAR.exec(text);
  if (!illegal) return undefined;
  return { index: illegal.index, codePoint: `U+${illegal[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}` };
}

/** XML 1.0's `Name` production (§2.3), beyond ASCII. */
const NAME = /^[:A-Z_a-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF\u200C-\u200D\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\u{10000}-\u{EFFFF}][:A-Z_a-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF\u200C-\u200D\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\u{10000}-\u{EFFFF}\-.0-9\u00B7\u0300-\u036F\u203F-\u2040]*$/u;

/** An element or attribute name as XML (and libxml2) reads it; ASCII names are checked without the regular expression. */
export function isXmlName(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    const letter = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c === 0x3a;
    if (letter) continue;
    if (i > 0 && ((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e)) continue;
    return c >= 0x80 && NAME.test(name);
  }
  return true;
}
