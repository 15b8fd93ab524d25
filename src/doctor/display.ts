/**
 * Domain names are chosen by whoever defines the domain: anything libvirt accepts, including
 * control characters, bidirectional overrides (U+202E turns "exe.txt" into "txt.exe" on screen)
 * and invisible format characters. What status and doctor print makes each of them visible, and
 * what they offer to copy and paste into a shell is quoted so the shell reads exactly the name.
 */

/** Control (Cc), format (Cf: bidi controls, zero-width), line/paragraph separators, and "\". */
const INVISIBLE = /[\p{Cc}\p{Cf}\u2028\u2029\\]/gu;

function escapeChar(c: string): string {
  if (c === "\\") return "\\\\";
  const cp = c.codePointAt(0)!;
  return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, "0")}` : `\\u{${cp.toString(16)}}`;
}

/** The name as shown to a human: every invisible or direction-changing character escaped. */
export function displayName(name: string): string {
  return name.replace(INVISIBLE, escapeChar);
}

/**
 * The name as one shell word (bash, dash's `$'…'` aside: plain names and single quotes work in
 * any POSIX shell). Names with invisible characters use bash's `$'…'` with escapes, so what is
 * pasted is both visible and exactly the name.
 */
export function shellQuote(name: string): string {
  if (/^[A-Za-z0-9_.+,:@%=/-]+$/.test(name) && !name.startsWith("-")) return name;
  if (!/[\p{Cc}\p{Cf}\u2028\u2029]/u.test(name)) return `'${name.replace(/'/g, `'\\''`)}'`;
  const body = name.replace(/[\p{Cc}\p{Cf}\u2028\u2029\\']/gu, (c) => {
    if (c === "\\") return "\\\\";
    if (c === "'") return "\\'";
    const cp = c.codePointAt(0)!;
    return cp <= 0xff ? `\\x${cp.toString(16).padStart(2, "0")}` : cp <= 0xffff ? `\\u${cp.toString(16).padStart(4, "0")}` : `\\U${cp.toString(16).padStart(8, "0")}`;
  });
  return `$'${body}'`;
}
