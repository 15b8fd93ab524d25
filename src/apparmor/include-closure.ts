import fs from "node:fs";
import path from "node:path";
import { sha256 } from "../store/guest-files.js";

/**
 * Everything apparmor_parser reads to compile one profile file, walked the way the parser walks
 * it, so the compiled-policy store (compiled-store.ts) can key a compile by its inputs. Facts
 * about each file (content hash, its include directives, a directory's entries) are remembered
 * with the file's stat signature; a later walk stats every path again and reads only what
 * changed (the hot path of an unchanged `prepare`: one stat per include, no read).
 *
 * How the parser resolves an include (apparmor 3.0.8, parser/parser_lex.l include_filename and
 * parser/parser_include.c search_path):
 * - `#include <name>` / `include <name>` / `include if exists <name>` (and `<"name">`): searched
 *   in every `-I` directory in order, then the base (`--base`; parse_default_paths); the first
 *   candidate that opens wins; a candidate already included is skipped (g_includecache).
 * - `#include "name"` and a bare `#include name`: opened as given, relative to the parser's
 *   working directory (the hook's: it sets none). The walk follows only an absolute one; a
 *   relative one makes the closure unsure (never resolved against whoever's cwd).
 * - a directory: every entry is included (include_dir_cb; not recursive). An absent target is an
 *   error, or nothing with `if exists`.
 * - `abi <name>,` reads a features file found the same way (parser_yacc.y abi_features).
 *
 * The walk reads directives as the parser's lexer does (not in comments or quoted strings), never
 * scans the guest's `.files` (its text comes from the untrusted XML), and reads only regular files
 * up to MAX_FILE_BYTES, opened without blocking. It errs on the side of reading more only within
 * that: a directory's every regular file counts (the parser skips dot files, README and
 * package-manager leftovers), and what it cannot follow for sure (an escaped name) makes the
 * closure "unsure": the caller then does not use the store. Reading too much only costs a miss.
 */

/** What an include or abi directive asks for. */
export interface IncludeDirective {
  name: string;
  /** `<name>`: searched in the include path; else relative to the working directory. */
  search: boolean;
  /** `abi`: a features file, not scanned for includes. */
  abi?: true;
}

/** What is remembered about one path, valid while its stat signature is the same. */
export interface PathFacts {
  sig: string;
  /** Regular file: sha256 of its content and its directives. */
  sha256?: string;
  includes?: IncludeDirective[];
  /** Directory: its entry names, sorted. */
  names?: string[];
}

/** Facts by real path. */
export type FactCache = Record<string, PathFacts>;

export interface ClosureInput {
  /** Real path of the profile file given to the parser. */
  profile: string;
  /** Include path in the parser's order (`-I` dirs, then the base). */
  searchDirs: string[];
  /** Extra inputs the parser reads whole (features file, parser.conf, what it names). */
  extraTrees: string[];
  /** How a real path is named in the key (a staging directory is named as where it is committed). */
  keyPath: (real: string) => string;
  /** Facts from an earlier walk; never changed (the result carries the new ones). */
  cache: FactCache;
  /**
   * Files hashed as content only, never scanned for directives: the guest's `.files`, which the
   * hook writes (render/files.ts: comments and quoted rules, no include) from untrusted XML text.
   */
  contentOnly?: (real: string) => boolean;
  /** How recent a change makes a remembered fact untrusted (RACY_NS; a test may set 0n). */
  racyNs?: bigint;
}

export interface Closure {
  /** One line per input, in the parser's order: the key material. */
  material: string[];
  /** Facts of every path this walk touched (to remember for the next one). */
  cache: FactCache;
  /** Set when the walk could not follow the parser for sure: do not key on it. */
  unsure?: string;
}

/** Bounds: a closure beyond them is not keyed (the parser path is used). */
const MAX_PATHS = 4000;
/** A larger policy file is not keyed (the parser path is used): the walk never holds more. */
export const MAX_FILE_BYTES = 1024 * 1024;
/**
 * A remembered fact whose file changed this recently is not trusted: file timestamps come from a
 * coarse clock, so a same-size rewrite within one tick keeps the stat signature (git's "racily
 * clean" rule). Such a file is read and hashed again.
 */
const RACY_NS = 2_000_000_000n;

/** Was the file with signature `sig` changed (mtime or ctime) within RACY_NS of now? */
function racy(sig: string, window: bigint): boolean {
  if (window <= 0n) return false;
  const parts = sig.split(":");
  const now = BigInt(Date.now()) * 1_000_000n;
  for (const i of [3, 4]) {
    const t = parts[i];
    if (t === undefined || !/^\d+$/.test(t) || now - BigInt(t) < window) return true;
  }
  return false;
}

/** dev:ino:size:mtime-ns:ctime-ns:type of `p` (following links), undefined when absent. */
export function statSignature(p: string): { sig: string; kind: "file" | "dir" | "other" } | undefined {
  let st: fs.BigIntStats | undefined;
  try {
    st = fs.statSync(p, { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined; // ENOTDIR, EACCES, ELOOP: the parser cannot open it either
  }
  if (st === undefined) return undefined;
  const kind = st.isFile() ? "file" : st.isDirectory() ? "dir" : "other";
  return { sig: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${kind}`, kind };
}

class Unsure extends Error {}

export function walkClosure(input: ClosureInput): Closure {
  const material: string[] = [];
  const cache: FactCache = {};
  const included = new Set<string>();
  let paths = 0;

  const facts = (real: string, sig: string, make: () => PathFacts): PathFacts => {
    if (++paths > MAX_PATHS) throw new Unsure(`more than ${MAX_PATHS} include paths`);
    const old = input.cache[real];
    const f = old !== undefined && old.sig === sig && !racy(sig, input.racyNs ?? RACY_NS) ? old : make();
    cache[real] = f;
    return f;
  };
  const fileFacts = (real: string, sig: string, scan: boolean): PathFacts =>
    facts(real, sig, () => {
      const buf = readBounded(real);
      const f: PathFacts = { sig, sha256: sha256(buf) };
      if (scan) f.includes = scanDirectives(buf.toString("latin1"));
      return f;
    });
  const dirFacts = (real: string, sig: string): PathFacts => facts(real, sig, () => ({ sig, names: fs.readdirSync(real).sort() }));

  /** A profile or include file: its content, then what it includes. */
  const visitFile = (real: string, sig: string, scan: boolean): void => {
    const f = fileFacts(real, sig, scan && input.contentOnly?.(real) !== true);
    material.push(`F ${input.keyPath(real)} ${f.sha256}`);
    for (const d of f.includes ?? []) resolve(d);
  };
  const visit = (real: string, s: { sig: string; kind: string }, abi: boolean): void => {
    if (s.kind === "file") return visitFile(real, s.sig, !abi);
    if (s.kind !== "dir") {
      material.push(`O ${input.keyPath(real)}`);
      return;
    }
    const d = dirFacts(real, s.sig);
    material.push(`D ${input.keyPath(real)} ${JSON.stringify(d.names)}`);
    for (const name of d.names ?? []) {
      const entry = `${real}/${name}`;
      if (included.has(entry)) continue;
      const es = statSignature(entry);
      if (es === undefined || es.kind !== "file") {
        material.push(`S ${input.keyPath(entry)} ${es?.kind ?? "gone"}`);
        continue;
      }
      included.add(entry);
      visitFile(entry, es.sig, !abi);
    }
  };
  const resolve = (d: IncludeDirective): void => {
    if (/\\/.test(d.name)) throw new Unsure(`an include name with an escape: ${JSON.stringify(d.name)}`);
    const tag = d.abi ? "abi" : "include";
    if (!d.search) {
      // The parser opens a quoted or bare name relative to its working directory; the walk never
      // follows a relative one (the cwd is whoever ran us): such a closure is not keyed.
      if (!d.name.startsWith("/")) throw new Unsure(`a relative include name: ${JSON.stringify(d.name)}`);
      const real = path.resolve(d.name);
      if (included.has(real)) return;
      const s = statSignature(real);
      if (s === undefined) {
        material.push(`A ${tag} "${d.name}"`);
        return;
      }
      included.add(real);
      visit(real, s, d.abi === true);
      return;
    }
    for (const dir of input.searchDirs) {
      const real = `${dir}/${d.name}`;
      if (included.has(real)) return;
      const s = statSignature(real);
      if (s === undefined) continue;
      included.add(real);
      material.push(`R ${tag} <${d.name}> ${input.keyPath(real)}`);
      visit(real, s, d.abi === true);
      return;
    }
    material.push(`A ${tag} <${d.name}>`);
  };

  try {
    const root = statSignature(input.profile);
    if (root?.kind !== "file") throw new Unsure(`${input.profile} is not a file`);
    visitFile(input.profile, root.sig, true);
    for (const tree of input.extraTrees) walkTree(tree, (real, s) => {
      const at = input.keyPath(real);
      if (s === undefined) material.push(`X ${at} absent`);
      else if (s.kind === "file") material.push(`X ${at} ${fileFacts(real, s.sig, false).sha256}`);
      else if (s.kind === "dir") {
        const names = dirFacts(real, s.sig).names ?? [];
        material.push(`X ${at} ${JSON.stringify(names)}`);
        return names;
      } else material.push(`X ${at} ${s.kind}`);
      return [];
    });
  } catch (err) {
    if (err instanceof Unsure) return { material, cache, unsure: err.message };
    const e = err as NodeJS.ErrnoException;
    return { material, cache, unsure: `cannot read an include: ${e.code ?? e.message}` };
  }
  return { material, cache };
}

/** A features file or directory tree, depth-first; `each` returns a directory's entries to descend into. */
function walkTree(root: string, each: (real: string, s: ReturnType<typeof statSignature>) => string[]): void {
  const stack = [root];
  while (stack.length > 0) {
    const real = stack.pop()!;
    const names = each(real, statSignature(real));
    for (const n of [...names].reverse()) stack.push(`${real}/${n}`);
  }
}

/**
 * The content of a regular file of at most MAX_FILE_BYTES. Opened without blocking (a FIFO or a
 * device never hangs the hook) and checked on the descriptor before any read; anything else makes
 * the closure unsure (the parser path is used).
 */
export function readBounded(real: string): Buffer {
  const fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Unsure(`${real} is not a regular file`);
    if (st.size > MAX_FILE_BYTES) throw new Unsure(`${real} is larger than ${MAX_FILE_BYTES} bytes`);
    const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
    let n = 0;
    for (;;) {
      const got = fs.readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > MAX_FILE_BYTES) throw new Unsure(`${real} is larger than ${MAX_FILE_BYTES} bytes`);
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

// At a directive's start: `#include` (no blank needed), `include` + blank, optionally `if exists`;
// then <name>, <"name">, "name" or a bare name (parser_lex.l INCLUDE / INCLUDE_EXISTS states).
// `abi` + blank likewise.
const DIRECTIVE =
  /(#include|include(?=[ \t])|abi(?=[ \t]))(?:[ \t]+if[ \t]+exists(?=[ \t]))?[ \t]*(<"(?:[^"\\]|\\.)*">|<[^">\t\r\n]+>|"(?:[^"\\]|\\.)*"|[^ \t\r\n"!,<>]+)/y;

/**
 * Every include and abi directive in a policy text, read the way the parser's lexer reads it:
 * `#` starts a comment to the end of the line unless it is `#include`; a quoted string (with `\`
 * escapes) is a path, never a directive. A directive starts a word of code: at a line's start
 * (after blanks) or after a blank, `{` or `,` (erring towards more: a missed include would key a
 * compile without one of its inputs).
 */
export function scanDirectives(text: string): IncludeDirective[] {
  const out: IncludeDirective[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      i++;
      continue;
    }
    const prev = i === 0 ? "\n" : text[i - 1]!;
    const wordStart = /[\s{,]/.test(prev);
    if (wordStart && (c === "#" || c === "i" || c === "a")) {
      DIRECTIVE.lastIndex = i;
      const m = DIRECTIVE.exec(text);
      if (m !== null) {
        const d = directive(m[1]!, m[2]!);
        if (d !== undefined) out.push(d);
        i = DIRECTIVE.lastIndex;
        continue;
      }
    }
    if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    i++;
  }
  return out;
}

function directive(word: string, raw: string): IncludeDirective | undefined {
  let target = raw;
  const search = target.startsWith("<");
  if (search) target = target.slice(1, -1);
  if (target.startsWith('"')) target = target.slice(1, -1);
  const name = target.trim();
  if (name === "") return undefined;
  return { name, search, ...(word === "abi" ? { abi: true as const } : {}) };
}
