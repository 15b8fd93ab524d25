/**
 * The escaping proof: render paths through the real renderer, compile them with the real parser
 * (`-D rule-exprs`), and check the regular expression each rule compiled to. A literal path must
 * compile to a purely literal expression equal to that path (so it matches that path and nothing
 * else); an intended suffix must keep its glob meaning after the escaped part.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { PathError } from "../../src/errors.js";
import { escapeLiteral, renderFiles, renderRule } from "../../src/render/index.js";
import type { GlobSuffix, Rule } from "../../src/ir.js";
import { exprLiteral, exprMatches, pathBytes, ruleExprs } from "../helpers/apparmor.js";

const FILES = "rules.files";

/** Expressions of the file rules in `filesText`, without the ones every profile has. */
async function fileRuleExprs(filesText: string, preamble = ""): Promise<string[]> {
  const wrap = (files: string) => ruleExprs(`${preamble}profile t {\n  #include <${FILES}>\n}\n`, { [FILES]: files });
  const baseline = await wrap("");
  const exprs = await wrap(filesText);
  for (const b of baseline) exprs.splice(exprs.indexOf(b), 1);
  return exprs;
}

const rule = (path: string, suffix: GlobSuffix = "", perms = "r"): Rule => ({ path, suffix, perms, source: "test" });

/** path → the exact expression the parser must print for it, and paths it must not match. */
const LITERALS: { path: string; expr: string; misses: string[] }[] = [
  { path: "/srv/web[1].img", expr: "/srv/web\\[1\\]\\.img", misses: ["/srv/web1.img", "/srv/web[1]", "/srv/webx.img"] },
  { path: "/srv/{a,b}.img", expr: "/srv/\\{a,b\\}\\.img", misses: ["/srv/a.img", "/srv/b.img", "/srv/{a.img"] },
  { path: "/srv/*", expr: "/srv/\\*", misses: ["/srv/a", "/srv/x.img", "/srv/", "/srv/**"] },
  { path: "/srv/**", expr: "/srv/\\*\\*", misses: ["/srv/a/b", "/srv/*"] },
  { path: "/srv/a?b", expr: "/srv/a?b", misses: ["/srv/axb", "/srv/ab"] },
  { path: "/srv/[!a-z]", expr: "/srv/\\[!a-z\\]", misses: ["/srv/b", "/srv/!"] },
  { path: "/srv/a^b", expr: "/srv/a\\^b", misses: ["/srv/ab", "/srv/a\\^b"] },
  { path: "/srv/a,b", expr: "/srv/a,b", misses: ["/srv/a", "/srv/b"] },
  { path: '/srv/a"b', expr: '/srv/a"b', misses: ["/srv/ab", '/srv/a\\"b'] },
  { path: "/srv/a\\b", expr: "/srv/a\\\\b", misses: ["/srv/ab", "/srv/a\\\\b", "/srv/a\bb"] },
  { path: "/srv/a\\", expr: "/srv/a\\\\", misses: ["/srv/a"] },
  { path: "/srv/\\*", expr: "/srv/\\\\\\*", misses: ["/srv/\\x", "/srv/*"] },
  { path: "/srv/\\x41\\n", expr: "/srv/\\\\x41\\\\n", misses: ["/srv/A\n", "/srv/x41n"] },
  { path: "/srv/\\1", expr: "/srv/\\\\1", misses: ["/srv/\u0001", "/srv/1"] },
  { path: '/srv/"5', expr: '/srv/"5', misses: ["/srv/5", "/srv/%"] },
  { path: "/srv/@{HOME}/x", expr: "/srv/@\\{HOME\\}/x", misses: ["/srv/root/x", "/srv/home/alice/x", "/srv/@/x"] },
  { path: "/srv/@{}", expr: "/srv/@\\{\\}", misses: ["/srv/@"] },
  { path: "/srv/}{", expr: "/srv/\\}\\{", misses: ["/srv/"] },
  { path: "/srv/x y#z", expr: "/srv/x y#z", misses: ["/srv/x", "/srv/xy#z", "/srv/x y"] },
  { path: "/srv/#", expr: "/srv/#", misses: ["/srv/"] },
  { path: "/srv/$a.+|()-'", expr: "/srv/\\$a\\.\\+\\|\\(\\)-'", misses: ["/srv/$aa", "/srv/$a.+|()-"] },
  { path: "/srv/  ->  x", expr: "/srv/  ->  x", misses: ["/srv/ -> x"] },
  {
    path: "/var/lib/libvirt/images/ünïcødé 雪.img",
    expr: pathBytes("/var/lib/libvirt/images/ünïcødé 雪\\.img"),
    misses: ["/var/lib/libvirt/images/unicode .img", "/var/lib/libvirt/images/ünïcødé 雪"],
  },
];

/** Paths no test rule may ever match. */
const NEVER = ["/etc/shadow", "/srv/other.img", "/srv/a.img", "/srv/b.img", "/srv/web1.img", "/srv", "/srv/", "/root/x"];

describe("escaping proven by the parser", () => {
  let exprs: string[];
  beforeAll(async () => {
    const text = renderFiles({ name: "t", uuid: "-" }, LITERALS.map((c) => rule(c.path)));
    // tunables/global defines @{HOME}: the test would notice if it were expanded.
    exprs = await fileRuleExprs(text, "#include <tunables/global>\n");
  });

  it("yields one expression per rule", () => {
    expect(exprs).toHaveLength(LITERALS.length);
  });

  it.each(LITERALS)("$path compiles to exactly itself", ({ path, expr, misses }) => {
    const matching = exprs.filter((e) => exprMatches(e, path));
    expect(matching).toEqual([expr]);
    expect(exprLiteral(expr)).toBe(path);
    for (const miss of misses) expect(exprMatches(expr, miss), `${JSON.stringify(miss)} must not match`).toBe(false);
    for (const never of NEVER) {
      expect(exprs.filter((e) => exprMatches(e, never)), `${JSON.stringify(never)} must not match`).toEqual([]);
    }
  });
});

describe("intended suffixes keep their glob meaning after an escaped part", () => {
  const dir = "/srv/we[b]{1,2} *";
  const escapedDir = "/srv/we\\[b\\]\\{1,2\\} \\*";
  const cases: { suffix: GlobSuffix; expr: string; match: string[]; miss: string[] }[] = [
    {
      suffix: "/**",
      expr: `${escapedDir}/[^/\\x00][^\\x00]*`,
      match: [`${dir}/x`, `${dir}/x/y/z`, `${dir}/.hidden`],
      miss: [dir, `${dir}/`, `${dir}x/y`, "/srv/web1 x/y", "/srv/we[b]1 */x"],
    },
    {
      suffix: "{,/**}",
      expr: `${escapedDir}(|/[^\\x00]*)`,
      match: [dir, `${dir}/`, `${dir}/x`, `${dir}/x/y`],
      miss: [`${dir}x`, `${dir}x/y`, "/srv/web1 x", "/srv/we[b]{1,2} "],
    },
    {
      suffix: "/*",
      expr: `${escapedDir}/[^/\\x00][^/\\x00]*`,
      match: [`${dir}/x`, `${dir}/x.img`],
      miss: [dir, `${dir}/`, `${dir}/x/y`, `${dir}x`],
    },
    { suffix: "/", expr: `${escapedDir}/`, match: [`${dir}/`], miss: [dir, `${dir}/x`] },
  ];

  it.each(cases)("suffix $suffix", async ({ suffix, expr, match, miss }) => {
    const got = await fileRuleExprs(renderRule(rule(dir, suffix)) + "\n");
    expect(got).toEqual([expr]);
    for (const p of match) expect(exprMatches(expr, p), `${JSON.stringify(p)} must match`).toBe(true);
    for (const p of [...miss, ...NEVER]) expect(exprMatches(expr, p), `${JSON.stringify(p)} must not match`).toBe(false);
  });
});

describe("hostile text cannot inject rules", () => {
  it.each(['/a", /etc/shadow r, "/b', '/a" r, /etc/shadow r, "/b', '/a\\" r, /etc/shadow r, "/b'])(
    "%s compiles to that one literal path",
    async (hostile) => {
      const exprs = await fileRuleExprs(renderRule(rule(hostile)) + "\n");
      expect(exprs.map(exprLiteral)).toEqual([hostile]);
      expect(exprs.some((e) => exprMatches(e, "/etc/shadow"))).toBe(false);
    },
  );

  it("a path with a newline or NUL is rejected before any text exists", () => {
    for (const p of ["/a\n/etc/shadow r,", "/a\0/etc/shadow", "/a\r\n  /etc/** rw,"]) {
      expect(() => renderFiles({ name: "t", uuid: "-" }, [rule(p)])).toThrow(PathError);
    }
  });

  it("guest name and rule source with line breaks stay inside their comments", async () => {
    const inject = "x\n  /etc/shadow r,\n  /etc/** rw,\n#include <abstractions/base>\n";
    const text = renderFiles({ name: inject, uuid: inject }, [{ path: "/srv/ok", suffix: "", perms: "r", source: inject }]);
    const exprs = await fileRuleExprs(text);
    expect(exprs.map(exprLiteral)).toEqual(["/srv/ok"]);
    expect(exprs.some((e) => exprMatches(e, "/etc/shadow"))).toBe(false);
  });
});

describe("property: any printable path either throws PathError or compiles to exactly itself", () => {
  // Glob, quote, escape and variable syntax, digits after backslashes, non-ASCII, the odd control
  // character, and anything else fast-check comes up with (including lone surrogates).
  const special = [..."*?[]{}^,\"\\@#$ .+|()-!~'%&=<>:;`0123xd"];
  const unit = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...special) },
    { weight: 3, arbitrary: fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 1 }) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
    { weight: 1, arbitrary: fc.constantFrom("\n", "\r", "\t", "\0", "\x7f", "\x1b", "é", "雪", "😀") },
  );
  const segment = fc.string({ unit, minLength: 1, maxLength: 10 }).map((s) => s.replaceAll("/", "_"));
  const pathArb = fc.array(segment, { minLength: 1, maxLength: 4 }).map((segs) => "/" + segs.join("/"));
  const samples = fc.sample(pathArb, { seed: 0x5eed, numRuns: 600 });

  it("holds for 600 generated paths (one parser run)", async () => {
    const accepted = new Set<string>();
    let rejected = 0;
    for (const p of samples) {
      try {
        escapeLiteral(p);
        accepted.add(p);
      } catch (err) {
        expect(err).toBeInstanceOf(PathError);
        expect(/[\u0000-\u001f\u007f]|\p{Cs}/u.test(p), `${JSON.stringify(p)} was rejected`).toBe(true);
        rejected++;
      }
    }
    // The generator must exercise both outcomes, or this test proves little.
    expect(rejected).toBeGreaterThan(20);
    expect(accepted.size).toBeGreaterThan(300);

    const text = renderFiles({ name: "t", uuid: "-" }, [...accepted].map((p) => rule(p)));
    const exprs = await fileRuleExprs(text);
    const literals = exprs.map(exprLiteral);
    expect(literals.filter((l) => l === null)).toEqual([]);
    expect(new Set(literals)).toEqual(accepted);
    expect(exprs).toHaveLength(accepted.size);
  });
});
