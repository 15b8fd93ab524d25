/**
 * virt-aa-hook(8) says what --help says: the page packaging/deb/manpage.mjs writes from the built
 * bundle holds, verbatim once roff's escapes are read back, the top-level --help and the --help of
 * every command the top-level help lists (a command whose --help fails is left out and named at
 * build time). Runs without the system opt-in: it only runs the bundle.
 */
import path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { commandsOf, helpOf, manPage, roffText, unroff } from "../../packaging/deb/manpage.mjs";

const BUNDLE = path.resolve("dist/virt-aa-hook.cjs");
const NODE = process.execPath;
// About 30 bundle starts (the page, then each --help again here): slow on a loaded 2-core machine.
vi.setConfig({ testTimeout: 240_000 });

/** The .nf ... .fi blocks of a page, read back: [top-level help, then one per command section]. */
function verbatimBlocks(page: string): { section: string; text: string }[] {
  const out: { section: string; text: string }[] = [];
  let section = "";
  const lines = page.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l.startsWith(".SS ")) section = unroff(l.slice(4));
    if (l !== ".nf") continue;
    const end = lines.indexOf(".fi", i);
    out.push({ section, text: unroff(lines.slice(i + 1, end).join("\n")) });
    i = end;
  }
  return out;
}

describe("virt-aa-hook(8)", () => {
  it("holds the top-level --help and every command's --help, verbatim", () => {
    const { page, skipped } = manPage({ node: NODE, bundle: BUNDLE, version: "0.1.0", date: "2026-12-05" });
    const top = helpOf(NODE, BUNDLE, ["--help"]);
    expect(top.status).toBe(0);
    const commands = commandsOf(top.stdout);
    expect(commands).toContain("status");
    expect(commands).toContain("doctor");
    // What the page must hold, asked of the bundle here (not taken from the generator).
    const expected = [{ section: "", text: top.stdout.replace(/\n+$/, "") }];
    const failing: string[] = [];
    for (const c of commands) {
      const h = helpOf(NODE, BUNDLE, [c, "--help"]);
      if (h.status === 0) expected.push({ section: c, text: h.stdout.replace(/\n+$/, "") });
      else failing.push(c);
    }
    expect(verbatimBlocks(page)).toEqual(expected);
    expect(failing).toEqual([]);
    expect(skipped).toEqual([]);
    // Every section header is a command's name, and nothing else is in a verbatim block.
    expect([...page.matchAll(/^\.SS (.*)$/gm)].map((m) => unroff(m[1]!))).toEqual(expected.slice(1).map((e) => e.section));
  });

  it("escapes what roff would read as a request or an escape (negative control: unescaped text would not round-trip)", () => {
    const tricky = ".starts with a dot\n'and a quote\nback\\slash and a-minus";
    expect(unroff(roffText(tricky))).toBe(tricky);
    expect(roffText(tricky).split("\n").every((l) => !/^[.']/.test(l))).toBe(true);
    expect(unroff(tricky)).not.toBe(roffText(tricky));
  });
});
