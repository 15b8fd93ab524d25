// What spawning a program costs through execa (the admin side: installer, doctor, adopt's virsh)
// against the hook's own runner (src/apparmor/runner.ts): `node bench/spawn-cost.mjs [N]` runs
// /bin/true N times (default 300) each way, interleaved in rounds of 10 so that load on the machine
// hits both alike, and prints the median per spawn, plus what loading each costs once. Both are
// bundled by esbuild as build.mjs bundles them (CJS, node20). docs/performance.md has the numbers.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const N = Number(process.argv[2] ?? 300);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-spawn-cost-"));
try {
  const entry = path.join(dir, "entry.ts");
  fs.writeFileSync(
    entry,
    `
import { runParser } from ${JSON.stringify(path.join(REPO, "src/apparmor/runner.ts"))};
const which = process.argv[2];
const n = Number(process.argv[3]);
const t0 = process.hrtime.bigint();
const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
async function main() {
  const run = which === "execa"
    ? await (async () => { const { execa } = await import("execa"); return (p: string) => execa(p, [], { env: { LC_ALL: "C" }, extendEnv: false, reject: false, stdin: "ignore" }); })()
    : (p: string) => runParser(p, []);
  const loaded = process.hrtime.bigint();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    const r: any = await run("/bin/true");
    if (r.exitCode !== 0) throw new Error("exit " + r.exitCode);
    times.push(ms(s, process.hrtime.bigint()));
  }
  process.stdout.write(JSON.stringify({ load: ms(t0, loaded), times }));
}
main();
`,
  );
  const out = path.join(dir, "bench.cjs");
  await build({
    entryPoints: [entry],
    outfile: out,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    minifyWhitespace: true,
    logLevel: "warning",
    nodePaths: [path.join(REPO, "node_modules")],
    define: { "import.meta.url": "__bundleUrl" },
    banner: { js: 'const __bundleUrl = require("node:url").pathToFileURL(__filename).href;' },
  });
  const res = { runner: { load: [], times: [] }, execa: { load: [], times: [] } };
  for (let done = 0; done < N; done += 10) {
    for (const which of ["runner", "execa"]) {
      const r = spawnSync(process.execPath, [out, which, "10"], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(r.stderr);
      const { load, times } = JSON.parse(r.stdout);
      res[which].load.push(load);
      res[which].times.push(...times.slice(1)); // the first spawn of a process warms child_process up
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const [which, r] of Object.entries(res)) {
    console.log(`${which}: ${median(r.times).toFixed(2)} ms per spawn (median of ${r.times.length}), loading it ${median(r.load).toFixed(2)} ms`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
