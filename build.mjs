// Builds the single-file bundle that the hook and the CLI run: dist/virt-aa-hook.cjs.
// CommonJS because the installed hook has no package.json beside it (DESIGN §8).
import { build } from "esbuild";

await build({
  entryPoints: ["src/cli/main.ts"],
  outfile: "dist/virt-aa-hook.cjs",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  sourcemap: false,
  legalComments: "none",
  logLevel: "warning",
  // yargs is ESM-only and derives require() from import.meta.url, which a CJS bundle lacks.
  define: { "import.meta.url": "__bundleUrl" },
  banner: { js: 'const __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
});
