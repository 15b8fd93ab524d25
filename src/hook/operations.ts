/**
 * The qemu hook operations the hook acts on: the one table that src/hook/run.ts (what to do),
 * the loader (src/cli/loader.ts: which V8 code cache to compile the bundle with) and build.mjs
 * (which calls make those caches) read. Adding an operation here is all three.
 *
 * Self-contained on purpose (no imports): build.mjs loads it with esbuild's transform, outside the
 * bundle, and the loader inlines it.
 *
 * The code cache of an operation holds the functions that kind of call compiles, so one cache per
 * kind of work: a cache made by `prepare` makes an ignored operation slower than no cache at all
 * (deserialising is not free; docs/performance.md).
 */
export const CODE_CACHE_KINDS = ["sync", "started", "release", "other"] as const;
export type CodeCacheKind = (typeof CODE_CACHE_KINDS)[number];

export interface OperationEntry {
  /** The sub-operation libvirt passes with it (docs/architecture.md, "Hook operations"). */
  readonly subOperation: "begin" | "end";
  /** The V8 code cache a call of this operation is compiled with. */
  readonly codeCache: CodeCacheKind;
}

/**
 * In lifecycle order (build.mjs makes the caches in this order, in one throwaway root): a start
 * is prepare, start, started; a stop is stopped, release; reconnect follows a libvirtd restart.
 */
export const OPERATIONS = {
  prepare: { subOperation: "begin", codeCache: "sync" },
  start: { subOperation: "begin", codeCache: "sync" },
  started: { subOperation: "begin", codeCache: "started" },
  stopped: { subOperation: "end", codeCache: "other" },
  release: { subOperation: "end", codeCache: "release" },
  reconnect: { subOperation: "begin", codeCache: "sync" },
} as const satisfies Record<string, OperationEntry>;

export type Operation = keyof typeof OPERATIONS;

/**
 * `op` as one of ours, or undefined for every other operation (migrate, restore, the obsolete
 * attach, and operations newer than us): those pass through. Own keys only, so "constructor" or
 * "__proto__" from argv is not an operation.
 */
export function operationOf(op: string): Operation | undefined {
  return Object.prototype.hasOwnProperty.call(OPERATIONS, op) ? (op as Operation) : undefined;
}

/** The code cache for a call of `op`; "other" for operations that pass through. */
export function codeCacheKindOf(op: string): CodeCacheKind {
  const known = operationOf(op);
  return known === undefined ? "other" : OPERATIONS[known].codeCache;
}
