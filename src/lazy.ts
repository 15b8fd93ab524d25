import fs from "node:fs";

/**
 * Builtins loaded on first use, not when the bundle's modules initialise: loading node:crypto
 * (with its internal modules) is ~4 ms, more than everything an unchanged `start` does besides
 * (docs/performance.md), so only the calls that hash load it.
 */
let crypto: typeof import("node:crypto") | undefined;

export function nodeCrypto(): typeof import("node:crypto") {
  return (crypto ??= process.getBuiltinModule("node:crypto"));
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
