import fs from "node:fs";
import { createRequire } from "node:module";

/**
 * Builtins loaded on first use, not when the bundle's modules initialise: loading node:crypto
 * (with its internal modules) is ~4 ms, more than everything an unchanged `start` does besides
 * (docs/performance.md), so only the calls that hash load it; node:child_process likewise, only
 * for the calls that run the parser. Through require(), not process.getBuiltinModule: that is
 * Node >= 20.16, and the installed bundle runs on Debian's node 18 too (docs/node.md). In the
 * bundle (CommonJS) that is its own require; createRequire (0.25 ms a call, measured) only where
 * this TypeScript runs as ESM (vitest).
 */
let crypto: typeof import("node:crypto") | undefined;
let childProcess: typeof import("node:child_process") | undefined;

export function nodeCrypto(): typeof import("node:crypto") {
  return (crypto ??= (typeof require === "function" ? require : createRequire(import.meta.url))("node:crypto") as typeof import("node:crypto"));
}

export function nodeChildProcess(): typeof import("node:child_process") {
  return (childProcess ??= (typeof require === "function" ? require : createRequire(import.meta.url))("node:child_process") as typeof import("node:child_process"));
}

/**
 * `bytes` random bytes as hex, for temporary names: from the kernel's CSPRNG (/dev/urandom, what
 * crypto.randomBytes draws from too), else node:crypto.
 */
export function randomHex(bytes: number): string {
  const buf = Buffer.alloc(bytes);
  try {
    const fd = fs.openSync("/dev/urandom", "r");
    try {
      if (fs.readSync(fd, buf, 0, bytes, null) === bytes) return buf.toString("hex");
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // no /dev/urandom (a minimal chroot): fall through
  }
  return nodeCrypto().randomBytes(bytes).toString("hex");
}
