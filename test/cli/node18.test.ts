import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// The installed files run on Node 18.19 (Debian 12, Ubuntu 24.04; docs/node.md). The real proof is
// the node 18 run of the hook and CLI suites (test/run.mjs, .ci/node18.sh); this catches the usual
// newer APIs in the built files (npm run build first) on machines without that node, and names them.
const NEWER_THAN_18 = [
  "process.getBuiltinModule", // 20.16
  ".toSorted(", ".toReversed(", ".toSpliced(", // 20
  "Object.groupBy(", "Map.groupBy(", "Promise.withResolvers(", // 21
  "import.meta.dirname", "import.meta.filename", // 20.11
  "globSync(", // 22
  "Array.fromAsync(", // 22
  ".isWellFormed(", ".toWellFormed(", // 20
  "AbortSignal.any(", // 20.3
  "styleText(", // 20.12
  "loadEnvFile(", // 20.12
  "matchesGlob(", // 22.5
  "Symbol.dispose", "Symbol.asyncDispose", // 20.4 (partly), 22
  "enableCompileCache(", // 22.1
  '"v")', // RegExp v flag, 20 (esbuild turns a /.../v literal into new RegExp(..., "v"))
];

function newerApis(text: string): string[] {
  return NEWER_THAN_18.filter((api) => text.includes(api));
}

describe("the built files use no API newer than Node 18.19", () => {
  it("the scan finds one (negative control)", () => {
    expect(newerApis('x.toSorted(); process.getBuiltinModule("node:fs"); new RegExp("^\\\\p{RGI_Emoji}$", "v")')).toEqual([
      "process.getBuiltinModule",
      ".toSorted(",
      '"v")',
    ]);
  });

  it.each([["virt-aa-hook.cjs"], ["virt-aa-hook-execa.cjs"], ["loader.cjs"]])("dist/%s", (file) => {
    expect(newerApis(fs.readFileSync(path.join("dist", file), "utf8"))).toEqual([]);
  });
});
