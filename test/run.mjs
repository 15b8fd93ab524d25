// The project's test command: runs vitest and ends with the plain line CI reads,
// "N passed, M failed[, K skipped]". Exit code is vitest's.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";

mkdirSync(".cache", { recursive: true });
const report = ".cache/vitest-report.json";
rmSync(report, { force: true });
const args = ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)];
const run = spawnSync("npx", args, { stdio: "inherit", env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" } });

let passed = 0, failed = 0, skipped = 0;
try {
  const r = JSON.parse(readFileSync(report, "utf8"));
  passed = r.numPassedTests;
  failed = r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
  skipped = r.numPendingTests + (r.numTodoTests ?? 0);
  // A suite that fails to load has no tests but is a failure all the same.
  for (const s of r.testResults ?? []) if (s.status === "failed" && (s.assertionResults ?? []).length === 0) failed++;
} catch {
  failed = Math.max(failed, 1);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(run.status === 0 && failed === 0 ? 0 : run.status || 1);
