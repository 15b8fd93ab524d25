/**
 * Builtins loaded on first use, not when the bundle's modules initialise: a hook call pays only for
 * what its operation runs (node:crypto with its internal modules is ~4 ms, docs/performance.md).
 */
let crypto: typeof import("node:crypto") | undefined;

export function nodeCrypto(): typeof import("node:crypto") {
  return (crypto ??= process.getBuiltinModule("node:crypto"));
}
