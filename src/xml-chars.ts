/**
 * XML 1.0's `Char` production: the code points a document may contain, raw or as a character
 * reference. The domain parser and attach's scanner both refuse everything else (`&#0;`, `&#x1b;`,
 * lone surrogates, U+FFFE/U+FFFF), so the two readers of a domain XML agree on what is XML.
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
