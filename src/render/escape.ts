import { PathError } from "../errors.js";

/**
 * The one escaping function for literal paths in profile text.
 *
 * `escapeLiteral(path)` returns the BODY of an AppArmor quoted string, WITHOUT the surrounding
 * double quotes: the caller writes `"` + escapeLiteral(path) + suffix + `"`, so an intended glob
 * suffix can be appended after the literal part and keep its meaning.
 *
 * What makes each character literal was established with the real parser (3.0.8,
 * `apparmor_parser -QK -D rule-exprs`) and its source (processunquoted, convert_aaregex_to_pcre,
 * the regex lexer); test/render/escape-parser.test.ts proves every entry against the parser:
 *
 *   `\`                      → `\134`  octal; unescaped it would start an escape sequence
 *   `"`                      → `\042`  octal; unescaped it would end the quoted string
 *   `* ? [ ] { } ^ ,`        → `\*` `\?` `\[` `\]` `\{` `\}` `\^` `\,`  glob syntax even inside quotes
 *   U+0000–U+001F, U+007F    → PathError "control character in path" (a newline would end the
 *                              rule, NUL ends the C string, the rest are never legitimate)
 *   lone UTF-16 surrogate    → PathError "invalid Unicode in path" (it cannot be written as UTF-8,
 *                              so the rule would name a different file)
 *   everything else          → itself, including space, `#` (no comment inside quotes), `@`
 *                              (`@{VAR}` needs a raw `{`, which is always escaped), `$ . + | ( ) -`
 *                              (the parser escapes these itself) and non-ASCII text (written as
 *                              UTF-8; the parser matches it byte for byte)
 *
 * The empty string is rejected too: it names no file.
 */
export function escapeLiteral(path: string): string {
  if (path.length === 0) throw new PathError(path, "empty path");
  if (CONTROL_CHAR.test(path)) throw new PathError(path, "control character in path");
  if (LONE_SURROGATE.test(path)) throw new PathError(path, "invalid Unicode in path");
  let body = "";
  for (const ch of path) body += ESCAPES.get(ch) ?? ch;
  return body;
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHAR = /[\u0000-\u001f\u007f]/;
// With the `u` flag a well-formed surrogate pair is one code point, so this finds only lone halves.
const LONE_SURROGATE = /\p{Cs}/u;

const ESCAPES: ReadonlyMap<string, string> = new Map([
  ["\\", "\\134"],
  ['"', "\\042"],
  ...["*", "?", "[", "]", "{", "}", "^", ","].map((c): [string, string] => [c, `\\${c}`]),
]);
