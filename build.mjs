// Builds the single-file bundle that the hook and the CLI run, dist/virt-aa-hook.cjs, and the
// hook's loader beside it, dist/loader.cjs (src/cli/loader.ts). CommonJS because the installed hook
// has no package.json beside it: node would read a `.js` under a `"type": "module"` package as ESM
// (docs/architecture.md).
//
// Then it makes the V8 code caches the loader compiles the bundle with (docs/performance.md):
// it runs the real launcher once per kind of operation in a throwaway root, with
// VIRT_AA_HOOK_WRITE_CODE_CACHE=1, so each cache holds the code that kind of call runs. The kinds
// and the calls come from the operation table, src/hook/operations.ts. The caches are only valid
// for this exact bundle and this node (version and arch are in their names); a missing or
// mismatched cache only means a normal compile. Failing to make them is a warning, not an error.
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { build, transform } from "esbuild";

const BUNDLE = "dist/virt-aa-hook.cjs";
const LOADER = "dist/loader.cjs";
/** execa, for admin-side programs only, in a file of its own: the hook never reads it. */
const EXECA = "dist/virt-aa-hook-execa.cjs";
/** The oldest node the installed files run on (package.json "engines" is the build's own). */
const NODE_TARGET = "node18.19";

// The operation table, loaded from its TypeScript source (it imports nothing).
const { CODE_CACHE_KINDS, OPERATIONS } = await import(
  `data:text/javascript,${encodeURIComponent((await transform(fs.readFileSync("src/hook/operations.ts", "utf8"), { loader: "ts", format: "esm" })).code)}`
);

const built = await build({
  entryPoints: ["src/cli/main.ts"],
  outfile: BUNDLE,
  write: false,
  bundle: true,
  platform: "node",
  // The installed bundle runs on the distributions' node: Debian 12 ships 18.19+ (18.20.4 with its
  // security updates), Ubuntu 24.04 18.19.1. CI runs the hook and CLI suites on Debian's own node 18
  // (.ci/node18.sh, test/run.mjs).
  target: NODE_TARGET,
  format: "cjs",
  sourcemap: false,
  // Whitespace only (names stay, so stacks still name functions): 624 -> 444 KiB that every hook
  // call reads, decodes and hands to V8, ~1.3 ms a call with the code cache (docs/performance.md).
  minifyWhitespace: true,
  legalComments: "none",
  logLevel: "warning",
  // yargs is ESM-only and derives require() from import.meta.url, which a CJS bundle lacks.
  define: {
    "import.meta.url": "__bundleUrl",
    // Printed by --version (src/cli/version.ts).
    VIRT_AA_HOOK_VERSION: JSON.stringify(JSON.parse(fs.readFileSync("package.json", "utf8")).version),
    // yargs-parser 22 throws on a node older than 20 at load; its own override knob, fixed here.
    // The 20.19 minimum of yargs 18 is about `require()` of its ESM files, which a bundle never
    // does; the rest of yargs runs on 18, as the node 18 run of test/cli shows (docs/node.md).
    "process.env.YARGS_MIN_NODE_VERSION": JSON.stringify("18"),
  },
  banner: { js: 'const __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
  // Strings, regexps and names are escaped to ASCII; see asciiOnly for the comments.
  charset: "ascii",
  plugins: [plainFs(), plainAssert(), builtinDefaults(), execaApart()],
});

const body = await asciiOnly(built.outputFiles[0].text);
// The last line names the build: the sha256 of everything above it. hooks/qemu keys the code
// caches by it (with node's version and arch), so no hook call hashes the bundle.
const buildId = crypto.createHash("sha256").update(body).digest("hex");
const bundle = `${body}//# virt-aa-hook-build ${buildId}\n`;
fs.mkdirSync("dist", { recursive: true });
writeIfChanged(BUNDLE, bundle);

// The loader runs before the bundle on every hook call: node builtins and the operation table only.
const loader = await build({
  entryPoints: ["src/cli/loader.ts"],
  outfile: LOADER,
  write: false,
  bundle: true,
  platform: "node",
  target: NODE_TARGET,
  format: "cjs",
  sourcemap: false,
  legalComments: "none",
  charset: "ascii",
  logLevel: "warning",
  banner: { js: "// virt-aa-hook's loader, written by build.mjs from src/cli/loader.ts: hooks/qemu runs it." },
});
writeIfChanged(LOADER, loader.outputFiles[0].text);

// Bundled into the main file, execa made it 514 -> 769 KiB and every code cache ~80 KB larger:
// every hook call read and decoded it though only admin commands load it (1.07-1.21x the CPU time
// of a hook call, measured; docs/performance.md). The bundle requires this file instead.
const execa = await build({
  stdin: { contents: 'export * from "execa";', resolveDir: ".", loader: "js" },
  outfile: EXECA,
  write: false,
  bundle: true,
  platform: "node",
  target: NODE_TARGET,
  format: "cjs",
  minifyWhitespace: true,
  legalComments: "none",
  logLevel: "warning",
  define: { "import.meta.url": "__bundleUrl" },
  banner: { js: 'const __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
});
writeIfChanged(EXECA, execa.outputFiles[0].text);
makeCodeCaches();

/** `import("execa")` in the bundle becomes a require of EXECA beside it. */
function execaApart() {
  return {
    name: "execa-apart",
    setup(b) {
      b.onResolve({ filter: /^execa$/ }, () => ({ path: `./${path.basename(EXECA)}`, external: true }));
    },
  };
}

/** Written in one rename, and only when it changed: tests and hooks may be reading it right now. */
function writeIfChanged(file, text) {
  if (fs.existsSync(file) && fs.readFileSync(file, "utf8") === text) return;
  fs.writeFileSync(`${file}.${process.pid}.tmp`, text);
  fs.renameSync(`${file}.${process.pid}.tmp`, file);
}

/**
 * proper-lockfile loads graceful-fs, which patches node's fs on load (a few ms of every hook call
 * that locks) to queue opens past EMFILE; a hook holds a handful of files. It gets node:fs.
 */
function plainFs() {
  return {
    name: "plain-fs",
    setup(b) {
      b.onResolve({ filter: /^graceful-fs$/ }, () => ({ path: "graceful-fs", namespace: "plain-fs" }));
      b.onLoad({ filter: /.*/, namespace: "plain-fs" }, () => ({ contents: 'module.exports = require("node:fs");', loader: "js" }));
    },
  };
}

/**
 * signal-exit (proper-lockfile's) loads node:assert for one `assert.equal(typeof cb, "function")`;
 * node:assert pulls in the stream modules and more (~3 ms of every call that locks). It gets the
 * same check without them.
 */
function plainAssert() {
  return {
    name: "plain-assert",
    setup(b) {
      b.onResolve({ filter: /^assert$/ }, (args) =>
        /[\\/]signal-exit[\\/]/.test(args.importer) ? { path: "assert", namespace: "plain-assert" } : undefined,
      );
      b.onLoad({ filter: /.*/, namespace: "plain-assert" }, () => ({
        contents: 'exports.equal = (actual, expected, message) => { if (actual != expected) throw new Error(message); };',
        loader: "js",
      }));
    },
  };
}

/**
 * `import fs from "node:fs"` in our TypeScript becomes `__toESM(require("node:fs"))` in a CJS
 * bundle: a copy of every export of the module, once per importing module (18 for fs, 13 for path;
 * ~1.5 ms of a prepare). Our modules import node:fs and node:path only as a default, so they get an
 * ESM module whose default is the builtin itself.
 */
function builtinDefaults() {
  return {
    name: "builtin-defaults",
    setup(b) {
      b.onResolve({ filter: /^node:(fs|path)$/ }, (args) =>
        /[\\/]src[\\/]/.test(args.importer) && !/[\\/]node_modules[\\/]/.test(args.importer)
          ? { path: args.path, namespace: "builtin-default" }
          : undefined,
      );
      b.onLoad({ filter: /.*/, namespace: "builtin-default" }, (args) => ({
        contents: `const m = require(${JSON.stringify(args.path)});\nexport default m;\n`,
        loader: "js",
      }));
    },
  };
}

/**
 * esbuild keeps comments as they are, and one "→" in a comment makes node hold the whole bundle as a
 * two-byte string: slower to hash, compile and cache on every hook call. With charset "ascii"
 * everything else is already escaped, so what is left is in comments and is spelled out there.
 */
async function asciiOnly(text) {
  const ascii = text.replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
  if (ascii === text) return text;
  // Proof that only comments changed: without comments the two are the same program.
  const code = async (t) => (await transform(t, { minifyWhitespace: true, charset: "ascii", legalComments: "none" })).code;
  if ((await code(ascii)) !== (await code(text))) {
    console.warn("build: warning: non-ASCII text outside comments; the bundle stays UTF-8");
    return text;
  }
  return ascii;
}

function makeCodeCaches() {
  const prefix = `virt-aa-hook.cjs.${buildId.slice(0, 24)}-${process.version}-${process.arch}.`;
  // One call per cache kind: the first operation of that kind in the table (lifecycle order).
  // ("other" is also every operation the table does not name.)
  const calls = Object.entries(OPERATIONS)
    .filter(([, o], i, all) => all.findIndex(([, first]) => first.codeCache === o.codeCache) === i)
    .map(([op, o]) => [op, o.subOperation]);
  // Caches of other builds are dead weight (never opened). This build's are made again (the
  // launcher may have changed) and replaced by rename, so a hook running now reads a whole one.
  for (const f of fs.readdirSync("dist")) {
    if (f.endsWith(".v8cache") && !f.startsWith(prefix)) fs.rmSync(path.join("dist", f), { force: true });
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-code-cache-"));
  try {
    const at = (p) => path.join(root, p);
    for (const d of ["/etc/libvirt/hooks", "/etc/libvirt/dist", "/etc/apparmor.d/libvirt", "/fs", "/var/lib/libvirt/images", "/run/libvirt/qemu", "/proc/4242/attr/apparmor"]) {
      fs.mkdirSync(at(d), { recursive: true });
    }
    fs.copyFileSync("hooks/qemu", at("/etc/libvirt/hooks/qemu"));
    fs.chmodSync(at("/etc/libvirt/hooks/qemu"), 0o755);
    fs.symlinkSync(path.resolve(BUNDLE), at("/etc/libvirt/dist/virt-aa-hook.cjs"));
    fs.symlinkSync(path.resolve(LOADER), at("/etc/libvirt/dist/loader.cjs"));
    fs.copyFileSync("install/apparmor/libvirt/TEMPLATE.qemu", at("/etc/apparmor.d/libvirt/TEMPLATE.qemu"));
    fs.writeFileSync(at("/fs/.replace"), "");
    fs.writeFileSync(at("/fs/.remove"), "");
    // The parser is /bin/true: the caches need the hook's code paths, not a compiled profile.
    fs.writeFileSync(at("/etc/libvirt/virt-aa-hook.conf"), 'subdomainfs = "/fs"\nparser = "/bin/true"\n');
    const xml = fs.readFileSync("examples/basic.xml", "utf8").replace("type='qcow2'", "type='raw'");
    for (const img of ["web01.qcow2", "debian-12.5.0-amd64-netinst.iso"]) fs.writeFileSync(at(`/var/lib/libvirt/images/${img}`), "");
    const uuid = /<uuid>([^<]+)<\/uuid>/.exec(xml)[1];
    fs.writeFileSync(at("/run/libvirt/qemu/web01.pid"), "4242\n");
    fs.writeFileSync(at("/proc/4242/attr/apparmor/current"), `libvirt-${uuid} (enforce)\n`);
    for (const op of calls) {
      const r = spawnSync(at("/etc/libvirt/hooks/qemu"), ["web01", ...op, "-"], {
        input: xml,
        env: { LC_ALL: "C", VIRT_AA_HOOK_WRITE_CODE_CACHE: "1" },
        cwd: "/",
      });
      if (r.status !== 0) console.warn(`build: warning: no code cache for ${op[0]}: exit ${r.status ?? r.signal}: ${String(r.stderr).trim()}`);
    }
    const missing = CODE_CACHE_KINDS.filter((k) => !fs.existsSync(`dist/${prefix}${k}.v8cache`));
    if (missing.length > 0) console.warn(`build: warning: no code cache for ${missing.join(", ")}`);
  } catch (err) {
    console.warn(`build: warning: no code caches: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
