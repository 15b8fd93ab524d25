/**
 * The node that tests run the built bundle and hooks/qemu with: VIRT_AA_HOOK_TEST_NODE when set
 * (test/run.mjs sets it to Debian's node 18, .ci/node18.sh, for the suites that must pass on it),
 * else the node running vitest. Every test that spawns the bundle or writes NODE= into a
 * hooks/qemu it runs takes it from here.
 */
import { spawnSync } from "node:child_process";

export const TEST_NODE = process.env.VIRT_AA_HOOK_TEST_NODE || process.execPath;

/** `process.version` of TEST_NODE ("v18.20.4"): the code caches the loader writes are named by it. */
export function testNodeVersion(): string {
  if (TEST_NODE === process.execPath) return process.version;
  const r = spawnSync(TEST_NODE, ["-p", "process.version"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${TEST_NODE}: cannot tell its version: ${r.stderr}`);
  return r.stdout.trim();
}

/** hooks/qemu's text with its NODE= line naming TEST_NODE, as an installer rewrites it. */
export function withTestNode(launcher: string): string {
  return launcher.replace(/^NODE=.*$/m, `NODE=${TEST_NODE}`);
}
