/**
 * vitest globalSetup: every temporary directory the tests make (os.tmpdir()) goes under one
 * directory per run, removed at the end. Test workers are separate processes whose exit
 * handlers do not always run, so per-file cleanup alone left copies behind in /tmp.
 * Mode 0755: the system suite's QEMU runs as libvirt-qemu and must reach files under it.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export default function setup(): () => void {
  // Runs once per vitest project: the first run's directory serves them all.
  if (process.env.VAAH_TEST_RUN_DIR) return () => {};
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-test-run-"));
  fs.chmodSync(dir, 0o755);
  process.env.TMPDIR = dir;
  process.env.VAAH_TEST_RUN_DIR = dir;
  return () => fs.rmSync(dir, { recursive: true, force: true });
}
