/**
 * Checking profile text with the real AppArmor parser. Shared by every test that produces
 * profile text: compile it, or get the regular expression each rule compiled to and ask whether
 * a path matches it.
 *
 * The parser runs with `-Q` (no kernel load), `-K` (no cache read or write) and pinned features
 * (`-M`), so nothing on the machine changes. Include directories: a fresh temp dir holding the
 * caller's `files` first, then the system's /etc/apparmor.d (tunables, abstractions). The first
 * directory wins, so `files` may also shadow a system include on purpose.
 *
 * Uses node:child_process rather than execa so the helper stays independent of src/.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { renderProfile } from "../../src/render/index.js";

export const PARSER = "/usr/sbin/apparmor_parser";
export const FEATURES = "/usr/share/apparmor-features/features";
export const SYSTEM_INCLUDE_DIR = "/etc/apparmor.d";
export const TEMPLATE_QEMU = "/etc/apparmor.d/libvirt/TEMPLATE.qemu";

export interface CompileResult {
  ok: boolean;
  /** The parser's stderr (UTF-8). With -D rule-exprs it holds the expression dump. */
  stderr: string;
}

/** Compile `profileText` with the real parser; `files` are extra include files (relative paths). */
export async function compileProfile(profileText: string, files: Record<string, string> = {}): Promise<CompileResult> {
  const { ok, stderr } = await runParser([], profileText, files);
  return { ok, stderr: stderr.toString("utf8") };
}

/**
 * The per-guest profile from the REAL /etc/apparmor.d/libvirt/TEMPLATE.qemu (through
 * renderProfile) plus `filesText` as its `libvirt/libvirt-<uuid>.files`, compiled.
 */
export async function compileGuest(uuid: string, filesText: string): Promise<CompileResult> {
  const { profile, files } = guestSources(uuid, filesText);
  return compileProfile(profile, files);
}

/** Like compileGuest, but returns the compiled expressions (see ruleExprs). */
export async function guestRuleExprs(uuid: string, filesText: string): Promise<string[]> {
  const { profile, files } = guestSources(uuid, filesText);
  return ruleExprs(profile, files);
}

/** The profile text and include files compileGuest hands to the parser. */
export function guestSources(uuid: string, filesText: string): { profile: string; files: Record<string, string> } {
  const profileName = `libvirt-${uuid}`;
  const include = `libvirt/${profileName}.files`;
  const template = readFileSync(TEMPLATE_QEMU, "utf8");
  return { profile: renderProfile(template, profileName, include), files: { [include]: filesText } };
}

/**
 * Compile with `-D rule-exprs` and return the expression of every rule the parser built, in the
 * parser's order (not the profile's). Throws with the parser's message when compiling fails.
 *
 * Each expression is the text the parser's regex engine parsed (the left side of its
 * `rule: <expr>  ->  <tree>` line), as a BYTE string: one JS char per byte (latin1), because
 * the parser matches bytes and non-ASCII path text is UTF-8 there. Pass expressions to
 * exprToRegExp / exprMatches / exprLiteral, which take care of the byte view of a path.
 */
export async function ruleExprs(profileText: string, files: Record<string, string> = {}): Promise<string[]> {
  const { ok, stderr } = await runParser(["-D", "rule-exprs"], profileText, files);
  if (!ok) throw new Error(`apparmor_parser failed:\n${stderr.toString("utf8")}`);
  return parseRuleExprs(stderr.toString("latin1"));
}

/**
 * Expressions from `-D rule-exprs` output (latin1-decoded). A line looks like
 *   rule: /srv/web\[1\]\.img  ->  /srv/web\[1\]\.img (0x10004/0)< 0x10004>
 * The tree dump on the right prints spaces as `\ `, so it never holds two raw spaces: the LAST
 * `  ->  ` on the line is the separator even when the expression itself contains one.
 */
export function parseRuleExprs(dump: string): string[] {
  const exprs: string[] = [];
  for (const line of dump.split("\n")) {
    if (!line.startsWith("rule: ")) continue;
    const sep = line.lastIndexOf("  ->  ");
    if (sep < "rule: ".length) throw new Error(`unexpected rule-exprs line: ${line}`);
    exprs.push(line.slice("rule: ".length, sep));
  }
  return exprs;
}

/** A path as the parser sees it: its UTF-8 bytes, one JS char per byte. */
export function pathBytes(p: string): string {
  return Buffer.from(p, "utf8").toString("latin1");
}

/** Does the compiled expression match this (UTF-8) path exactly, as the kernel's DFA would? */
export function exprMatches(expr: string, p: string): boolean {
  return exprToRegExp(expr).test(pathBytes(p));
}

/**
 * The single path an expression stands for when it is purely literal (only plain or escaped
 * characters, no operator), decoded back from UTF-8; null when it contains any regex operator.
 * "Literal and equal to the path" is the strongest form of "matches exactly that path".
 */
export function exprLiteral(expr: string): string | null {
  let bytes = "";
  for (const t of lexExpr(expr)) {
    if (t.kind === "char") bytes += String.fromCharCode(t.byte);
    // Outside a character class the parser's grammar reads these three as plain characters.
    else if (t.op === "^" || t.op === "-" || t.op === "]") bytes += t.op;
    else return null;
  }
  return Buffer.from(bytes, "latin1").toString("utf8");
}

/**
 * A JS RegExp (over byte strings, see pathBytes) equivalent to a parser expression, anchored at
 * both ends like the DFA. Follows the parser's regex lexer and grammar (libapparmor_re/parse.y):
 * operators `* + . | ^ - [ ] ( )`; `\` escapes are octal (up to 3 digits), `\x` hex (up to 2),
 * `\d` decimal (up to 3), `\a \e \f \n \r \t`, `\\`, `\"`, and `\` before one of
 * `*+.|^$-[](){}`; `?`, `{`, `}`, `,` and `$` are plain characters; quantifiers are `*` and `+`
 * only. Anything outside that grammar throws, so a surprise fails the test instead of guessing.
 */
export function exprToRegExp(expr: string): RegExp {
  const parser = new ExprParser(lexExpr(expr), expr);
  return new RegExp(`^(?:${parser.parseAll()})$`);
}

type Token = { kind: "char"; byte: number } | { kind: "op"; op: string };

const OPERATORS = "*+.|^-[]()";
const ESCAPABLE = "*+.|^$-[](){}";
const SIMPLE_ESCAPES: Record<string, number> = { a: 7, e: 27, f: 12, n: 10, r: 13, t: 9, "\\": 92, '"': 34 };

function lexExpr(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const digits = (re: RegExp, max: number, base: number): number | undefined => {
    let value: number | undefined;
    for (let n = 0; n < max && i < expr.length && re.test(expr[i]!); n++) {
      const next = (value ?? 0) * base + parseInt(expr[i]!, base);
      if (next > 255) break;
      value = next;
      i++;
    }
    return value;
  };
  while (i < expr.length) {
    const c = expr[i++]!;
    if (c !== "\\") {
      tokens.push(OPERATORS.includes(c) ? { kind: "op", op: c } : { kind: "char", byte: c.charCodeAt(0) });
      continue;
    }
    const e = expr[i];
    if (e === undefined) throw new Error(`trailing backslash in expression ${JSON.stringify(expr)}`);
    let byte: number | undefined;
    if (/[0-7]/.test(e)) byte = digits(/[0-7]/, 3, 8);
    else if (e === "x" || e === "d") {
      i++;
      byte = e === "x" ? digits(/[0-9a-fA-F]/, 2, 16) : digits(/[0-9]/, 3, 10);
    } else if (e in SIMPLE_ESCAPES) {
      i++;
      byte = SIMPLE_ESCAPES[e];
    } else if (ESCAPABLE.includes(e)) {
      i++;
      byte = e.charCodeAt(0);
    }
    if (byte === undefined) throw new Error(`unsupported escape \\${e} in expression ${JSON.stringify(expr)}`);
    tokens.push({ kind: "char", byte });
  }
  return tokens;
}

const hex = (byte: number): string => `\\x${byte.toString(16).padStart(2, "0")}`;

/** Recursive descent over the parser's grammar, emitting JS regex source. */
class ExprParser {
  private pos = 0;
  constructor(
    private readonly tokens: Token[],
    private readonly text: string,
  ) {}

  parseAll(): string {
    const src = this.alternation();
    if (this.pos !== this.tokens.length) this.fail("unexpected token");
    return src;
  }

  private peekOp(): string | undefined {
    const t = this.tokens[this.pos];
    return t?.kind === "op" ? t.op : undefined;
  }

  private fail(why: string): never {
    throw new Error(`${why} at token ${this.pos} of expression ${JSON.stringify(this.text)}`);
  }

  private alternation(): string {
    const branches = [this.terms()];
    while (this.peekOp() === "|") {
      this.pos++;
      branches.push(this.terms());
    }
    return branches.join("|");
  }

  private terms(): string {
    let src = "";
    while (this.pos < this.tokens.length && this.peekOp() !== "|" && this.peekOp() !== ")") {
      const term = this.term();
      const q = this.peekOp();
      if (q === "*" || q === "+") {
        this.pos++;
        src += `(?:${term})${q}`;
      } else {
        src += term;
      }
    }
    return src;
  }

  private term(): string {
    const t = this.tokens[this.pos++]!;
    if (t.kind === "char") return hex(t.byte);
    switch (t.op) {
      case ".":
        return "[\\x00-\\xff]";
      case "^":
      case "-":
      case "]":
        return hex(t.op.charCodeAt(0));
      case "(": {
        const inner = this.alternation();
        if (this.peekOp() !== ")") this.fail("unclosed (");
        this.pos++;
        return `(?:${inner})`;
      }
      case "[":
        return this.charset();
      default:
        return this.fail(`operator ${t.op} where a term was expected`);
    }
  }

  /** After `[`: `[^...]` negates; a leading `]` or `-` is literal; `a-b` is a range. */
  private charset(): string {
    let negate = false;
    if (this.peekOp() === "^") {
      negate = true;
      this.pos++;
    }
    const items: string[] = [];
    let first = true;
    for (;;) {
      const t = this.tokens[this.pos];
      if (t === undefined) this.fail("unclosed [");
      if (t.kind === "op" && t.op === "]" && !first) {
        this.pos++;
        break;
      }
      if (t.kind === "op" && t.op === "-" && !first) this.fail("dangling - in character class");
      this.pos++;
      const from = t.kind === "char" ? t.byte : t.op.charCodeAt(0);
      first = false;
      const dash = this.tokens[this.pos];
      const to = this.tokens[this.pos + 1];
      if (dash?.kind === "op" && dash.op === "-" && to !== undefined && !(to.kind === "op" && to.op === "]")) {
        this.pos += 2;
        const end = to.kind === "char" ? to.byte : to.op.charCodeAt(0);
        items.push(`${hex(Math.min(from, end))}-${hex(Math.max(from, end))}`);
      } else {
        items.push(hex(from));
      }
    }
    return `[${negate ? "^" : ""}${items.join("")}]`;
  }
}

/** Runs the parser on `profileText` with `files` in a fresh include dir; never throws on a parse error. */
async function runParser(
  extraArgs: string[],
  profileText: string,
  files: Record<string, string>,
): Promise<{ ok: boolean; stderr: Buffer }> {
  const dir = await mkdtemp(path.join(tmpdir(), "virt-aa-hook-parser-"));
  try {
    const includeDir = path.join(dir, "include");
    await mkdir(includeDir);
    for (const [rel, text] of Object.entries(files)) {
      const target = path.resolve(includeDir, rel);
      if (path.isAbsolute(rel) || !target.startsWith(includeDir + path.sep)) {
        throw new Error(`include file name must be relative and inside the include dir: ${rel}`);
      }
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, text);
    }
    const profilePath = path.join(dir, "profile");
    await writeFile(profilePath, profileText);
    const args = ["-QK", "-M", FEATURES, "-I", includeDir, "-I", SYSTEM_INCLUDE_DIR, ...extraArgs, profilePath];
    return await new Promise((resolve, reject) => {
      execFile(
        PARSER,
        args,
        {
          encoding: "buffer",
          env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
          maxBuffer: 256 * 1024 * 1024,
          timeout: 120_000,
        },
        (err, _stdout, stderr) => {
          if (err && typeof err.code !== "number") reject(err); // could not run, or timed out
          else resolve({ ok: !err, stderr });
        },
      );
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
