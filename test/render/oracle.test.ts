/**
 * The oracle must be able to say "no": the same paths written WITHOUT escaping compile to
 * expressions that the helpers recognise as patterns matching other files. If these pass, a
 * broken escaper would fail escape-parser.test.ts.
 */
import { describe, expect, it } from "vitest";
import { exprLiteral, exprMatches, exprToRegExp, parseRuleExprs, ruleExprs } from "../helpers/apparmor.js";

async function rawExprs(rules: string[], preamble = ""): Promise<string[]> {
  const baseline = await ruleExprs(`profile t {\n}\n`);
  const exprs = await ruleExprs(`${preamble}profile t {\n${rules.map((r) => `  ${r}\n`).join("")}}\n`);
  return exprs.filter((e) => !baseline.includes(e));
}

describe("unescaped paths are caught by the oracle", () => {
  it.each([
    ['"/srv/web[1].img" r,', "/srv/web[1].img", "/srv/web1.img"],
    ['"/srv/{a,b}.img" r,', "/srv/{a,b}.img", "/srv/a.img"],
    ['"/srv/*" r,', "/srv/*", "/srv/other.img"],
    ['"/srv/a?b" r,', "/srv/a?b", "/srv/axb"],
  ])("%s is a pattern that matches %s's neighbour %s", async (ruleText, _literal, neighbour) => {
    const [expr, ...rest] = await rawExprs([ruleText]);
    expect(rest).toEqual([]);
    expect(exprLiteral(expr!)).toBeNull();
    expect(exprMatches(expr!, neighbour)).toBe(true);
  });

  it("an unescaped @{HOME} expands to home directories", async () => {
    const exprs = await rawExprs(['"@{HOME}/x" r,'], "#include <tunables/global>\n");
    expect(exprs.some((e) => exprMatches(e, "/root/x"))).toBe(true);
    expect(exprs.some((e) => exprMatches(e, "/home/alice/x"))).toBe(true);
  });

  it("an unescaped quote injects a rule for /etc/shadow", async () => {
    // What a naive renderer writes for the path `/a" r, /etc/shadow r, "/b`.
    const exprs = await rawExprs(['"/a" r, /etc/shadow r, "/b" r,']);
    expect(exprs.some((e) => exprMatches(e, "/etc/shadow"))).toBe(true);
  });
});

describe("expression helpers", () => {
  it("parse rule lines, taking the last '  ->  ' as the separator", () => {
    const dump = [
      "aare: /srv/  ->  x   ->   /srv/  ->  x",
      "rule: /srv/  ->  x  ->  /srv/\\ \\ ->\\ \\ x (0x3800e/0)< 0x3800e>",
      "",
      "rule: /srv/d  ->  /srv/d deny (0x2800a/2800a)< 0x2800a>",
    ].join("\n");
    expect(parseRuleExprs(dump)).toEqual(["/srv/  ->  x", "/srv/d"]);
  });

  it("translate the parser's regex grammar", () => {
    expect(exprToRegExp("/a/[^/\\x00][^\\x00]*").test("/a/b/c")).toBe(true);
    expect(exprToRegExp("/a/[^/\\x00][^\\x00]*").test("/a/")).toBe(false);
    expect(exprToRegExp("/a(|/[^\\x00]*)").test("/a")).toBe(true);
    expect(exprToRegExp("/a(|/[^\\x00]*)").test("/ab")).toBe(false);
    expect(exprToRegExp("/[0-9]+x").test("/123x")).toBe(true);
    expect(exprToRegExp("/[]a]").test("/]")).toBe(true);
    expect(exprToRegExp("/\\d65\\x42\\103.").test("/ABCz")).toBe(true);
    expect(exprToRegExp("/a\\\\1").test("/a\\1")).toBe(true);
    expect(exprToRegExp("/a\\1").test("/a\u0001")).toBe(true);
    expect(exprLiteral("/a\\{b\\}?,^-]")).toBe("/a{b}?,^-]");
    expect(exprLiteral("/a.b")).toBeNull();
    expect(() => exprToRegExp("/a\\q")).toThrow("unsupported escape \\q");
    expect(() => exprToRegExp("/a(b")).toThrow("unclosed (");
    expect(() => exprToRegExp("/a[b")).toThrow("unclosed [");
  });
});
