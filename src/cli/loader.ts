/**
 * The hook's loader, built to dist/loader.cjs beside the bundle (build.mjs). hooks/qemu runs
 * `node loader.cjs BUNDLE hook --root ROOT -- NAME OP SUBOP EXTRA`; the loader compiles BUNDLE with
 * the V8 code cache `npm run build` made for this exact bundle, this node and this kind of
 * operation, which saves most of the compiling on every call (docs/performance.md), then runs it
 * as node would have run `node BUNDLE hook ...`.
 *
 * The cache is BUNDLE.<build>-<node version>-<arch>.<kind>.v8cache beside the bundle's real path:
 * <build> from the bundle's last line (the sha256 of the rest, written by build.mjs, so no call
 * hashes the bundle), <kind> from the operation table (src/hook/operations.ts). Without a matching
 * cache, or if anything in it fails, the bundle is compiled as usual (V8 also refuses a cache made
 * by another V8 or for another text length). The loader writes a cache only when the build asks it
 * to (VIRT_AA_HOOK_WRITE_CODE_CACHE=1): a cache is as trusted as the bundle, never made by a hook.
 *
 * Kept to node builtins and the operation table: everything here runs before the bundle, on every
 * call. Named imports only, so the CJS build requires the builtins without copying them.
 */
import { readFileSync, realpathSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import { Script } from "node:vm";
import { codeCacheKindOf } from "../hook/operations.js";

type ModuleFunction = (exports: unknown, require: NodeJS.Require, module: { exports: unknown }, filename: string, dirname: string) => void;

const BUILD_LINE = /\/\/# virt-aa-hook-build ([0-9a-f]{64})\n$/;

// The bundle sees the argv it would have had as `node BUNDLE ...`: argv[1] is the bundle.
process.argv.splice(1, 1);
const bundle = resolve(process.argv[1] ?? "");
const compiled = compileWithCodeCache(bundle, process.argv.slice(2));
if (compiled) {
  const mod = { exports: {} };
  compiled.call(mod.exports, mod.exports, createRequire(bundle), mod, bundle, dirname(bundle));
} else {
  require(bundle);
}

/** The bundle as a module function compiled with its code cache, or undefined to load it plainly. */
function compileWithCodeCache(file: string, args: string[]): ModuleFunction | undefined {
  try {
    const source = readFileSync(file, "utf8");
    // `hook [--root DIR] -- NAME OP ...`: the operation follows the name after "--".
    // `virt-aa-helper ...` (src/helper): its calls sync a profile as prepare does, so prepare's cache.
    const op = args[0] === "virt-aa-helper" ? "prepare" : (args[args.indexOf("--") + 2] ?? "");
    const build = BUILD_LINE.exec(source.slice(-100));
    const cache = build && `${realpathSync(file)}.${build[1]!.slice(0, 24)}-${process.version}-${process.arch}.${codeCacheKindOf(op)}.v8cache`;
    let cachedData: Buffer | undefined;
    try {
      if (cache) cachedData = readFileSync(cache);
    } catch {
      // No cache for this bundle, node or kind: a normal compile.
    }
    const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, cachedData });
    if (cache && process.env.VIRT_AA_HOOK_WRITE_CODE_CACHE === "1") {
      process.on("exit", () => {
        writeFileSync(`${cache}.${process.pid}.tmp`, script.createCachedData());
        renameSync(`${cache}.${process.pid}.tmp`, cache);
      });
    }
    return script.runInThisContext() as ModuleFunction;
  } catch {
    return undefined;
  }
}
