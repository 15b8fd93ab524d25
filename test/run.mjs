// The project's test command: runs vitest and ends with the plain line CI reads,
// "N passed, M failed[, K skipped]". Exit code is vitest's.
//
// A whole run (no paths given) then runs the suites that start the built bundle as libvirt and an
// admin do (NODE18_SUITES) a second time with Debian 12's own node 18 (.ci/node18.sh: extracted from
// its packages, not installed), which the installed hook must run on (docs/node.md). Without that
// node (not a Debian host, not root) the second run is skipped with a note; where it is required
// (CI=true, or VIRT_AA_HOOK_NODE18=1 as .ci/run sets) that is a failure.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";

const NODE18_SUITES = ["test/lifecycle", "test/hook", "test/cli/help.test.ts", "test/cli/loader.test.ts"];

mkdirSync(".cache", { recursive: true });
const env = { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" };
const total = { passed: 0, failed: 0, skipped: 0 };
const paths = process.argv.slice(2);

const main = vitest([], paths, ".cache/vitest-report.json");
let status = main.status;

if (paths.length === 0) {
  const fetched = spawnSync("bash", [".ci/node18.sh", "fetch"], { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
  if (fetched.status === 0) {
    console.log(`::: the hook and CLI suites again with Debian's node 18 (${fetched.stdout.trim()})`);
    const started = Date.now();
    const r = vitest(["bash", ".ci/node18.sh", "exec"], ["--project", "unit", ...NODE18_SUITES], ".cache/vitest-node18-report.json");
    console.log(`node 18 run: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped in ${Math.round((Date.now() - started) / 1000)} s`);
    if (status === 0) status = r.status;
  } else if (process.env.CI === "true" || process.env.VIRT_AA_HOOK_NODE18 === "1") {
    console.log("node 18 run: FAILED: CI must run the hook and CLI suites with Debian's node 18, and .ci/node18.sh fetch could not get it (above)");
    total.failed++;
  } else {
    console.log("node 18 run: skipped: .ci/node18.sh fetch could not get Debian's node 18 (above); CI runs it");
  }
}

console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(status === 0 && total.failed === 0 ? 0 : status || 1);

/** One vitest run (through `wrapper` when given); adds its counts to `total` and returns them. */
function vitest(wrapper, args, report) {
  rmSync(report, { force: true });
  const command = [...wrapper, "npx", "vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...args];
  const run = spawnSync(command[0], command.slice(1), { stdio: "inherit", env });
  const counts = { passed: 0, failed: 0, skipped: 0, status: run.status ?? 1 };
  try {
    const r = JSON.parse(readFileSync(report, "utf8"));
    counts.passed = r.numPassedTests;
    counts.failed = r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0);
    counts.skipped = r.numPendingTests + (r.numTodoTests ?? 0);
    // A suite that fails to load has no tests but is a failure all the same.
    for (const s of r.testResults ?? []) if (s.status === "failed" && (s.assertionResults ?? []).length === 0) counts.failed++;
  } catch {
    counts.failed = Math.max(counts.failed, 1);
  }
  if (counts.failed > 0 && counts.status === 0) counts.status = 1;
  total.passed += counts.passed;
  total.failed += counts.failed;
  total.skipped += counts.skipped;
  return counts;
}
