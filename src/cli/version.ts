/**
 * `virt-aa-hook --version`: one line, `virt-aa-hook <package.json version> build <build id>`.
 * The build id is the sha256 build.mjs writes on the bundle's last line (the same id the hook's
 * code caches are keyed by), so an admin can tell which bundle is installed, not only which release.
 */
import fs from "node:fs";
import { fileURLToPath } from "node:url";

/** Set by build.mjs (esbuild `define`) from package.json; absent when the TypeScript runs unbundled. */
declare const VIRT_AA_HOOK_VERSION: string | undefined;

const BUILD_LINE = /\/\/# virt-aa-hook-build ([0-9a-f]{64})\n$/;

export function versionLine(): string {
  const version = typeof VIRT_AA_HOOK_VERSION === "string" ? VIRT_AA_HOOK_VERSION : "unbundled";
  return `virt-aa-hook ${version} build ${buildId() ?? "unknown"}`;
}

/** The build id from the last line of the running bundle (import.meta.url is the bundle's URL there). */
function buildId(): string | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(fileURLToPath(import.meta.url), "r");
    const size = fs.fstatSync(fd).size;
    const tail = Buffer.alloc(Math.min(100, size));
    fs.readSync(fd, tail, 0, tail.length, size - tail.length);
    return BUILD_LINE.exec(tail.toString("latin1"))?.[1];
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
