import fs from "node:fs";
import type { Config } from "../config.js";
import type { Warning } from "../errors.js";
import type { Layout } from "../layout.js";
import { randomHex } from "../lazy.js";
import { compiledKey } from "./compiled-key.js";
import { CompiledStore } from "./compiled-store.js";
import { writeBinaryPolicy } from "./kernel-load.js";
import type { LoadOptions, Parser } from "./parser.js";

/**
 * Loading a profile through the compiled-policy store (docs/compiled-store.md):
 *
 * - hit: the stored, verified compile is written to the kernel (kernel-load.ts writeBinaryPolicy:
 *   no parser run at all);
 * - miss: one compile (`apparmor_parser -Q -K -o`, complain mode compiled in), loaded like a hit,
 *   then stored only if the key's inputs are unchanged after the compile (stat signatures of the
 *   whole closure and the key again); a compile that fails or writes nothing falls back to the
 *   parser's own load; a failed store write is only a warning;
 * - anything the store cannot vouch for (unusable store, a closure it cannot follow, a parser whose
 *   version it cannot tell, a blob naming another profile, the kernel refusing the blob) falls back
 *   to the parser's own load (parser.ts load, with its cache), as without a store. The store never
 *   fails a guest start by itself: a compile error is the parser's, with the parser's message.
 *
 * What happened goes to `notes` (the hook's log: debug for the normal paths, warn when it fell
 * back or removed something).
 */
export interface StoreUse {
  store: CompiledStore;
  /** Real path of `--root` ("/" on a host): paths below it are keyed as the host names them. */
  root: string;
  /** Real path of the kernel's boot id (the kernel features hash is remembered per boot). */
  bootIdFile: string;
  notes: Warning[];
}

/** The store as configured (config `compiled_store*`), or undefined when it is turned off. */
export function compiledStoreUse(layout: Layout, config: Pick<Config, "compiledStore" | "compiledStoreMaxSize" | "compiledStoreMaxAge">, notes: Warning[]): StoreUse | undefined {
  if (!config.compiledStore) return undefined;
  const store = new CompiledStore(layout.host(layout.compiledStoreDir), layout.host(layout.compiledStoreLock), {
    maxBytes: config.compiledStoreMaxSize * 1024 * 1024,
    maxAgeMs: config.compiledStoreMaxAge * 24 * 60 * 60 * 1000,
  });
  return { store, root: layout.root, bootIdFile: layout.host(`${layout.procDir}/sys/kernel/random/boot_id`), notes };
}

export async function loadProfile(parser: Parser, profile: string, profileName: string, opts: LoadOptions, use: StoreUse | undefined): Promise<void> {
  const target = parser.env.target;
  if (use === undefined || target === undefined) return parser.load(profile, profileName, opts);
  const note = (level: "debug" | "warn", reason: string) => use.notes.push({ path: "-", reason: `compiled store: ${reason}`, level });
  const byParser = (why: string, level: "debug" | "warn" = "debug") => {
    note(level, `${why}; ${profileName} loaded by apparmor_parser`);
    return parser.load(profile, profileName, opts);
  };

  const { store } = use;
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const unusable = store.open();
  if (unusable !== undefined) return byParser(unusable, "warn");
  const keyInput = {
    store,
    parserPath: parser.parserPath,
    profileName,
    profile,
    root: use.root,
    baseDir: parser.env.baseDir,
    ...(opts.stageDir !== undefined ? { stageDir: opts.stageDir } : {}),
    complain: opts.complain,
    ...(parser.env.featuresFile !== undefined ? { featuresFile: parser.env.featuresFile } : {}),
    ...(target.kind === "kernel" ? { kernelFeaturesDir: `${target.dir}/features` } : {}),
    bootIdFile: use.bootIdFile,
    ...(parser.timeoutMs !== undefined ? { timeoutMs: parser.timeoutMs } : {}),
  };
  const keyOf = () => compiledKey(keyInput).catch((err: unknown) => ({ unsure: `cannot compute the key: ${(err as Error).message}` }));
  const k = await keyOf();
  if ("unsure" in k) return byParser(`not used: ${k.unsure}`);
  const key = k.key;
  const short = key.slice(0, 16);
  // For the log (and docs/performance.md): what the key cost on this call.
  const spent = process.cpuUsage(cpu);
  const keyMs = `${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(1)} ms, cpu ${((spent.user + spent.system) / 1000).toFixed(1)}`;

  const found = store.read(profileName, key);
  if ("blob" in found) {
    try {
      writeBinaryPolicy(target, found.blob, "replace");
    } catch (err) {
      return byParser(`the kernel refused the stored compile ${short}: ${(err as Error).message}`, "warn");
    }
    note("debug", `loaded ${profileName} from ${short} without compiling (key ${keyMs} ms)`);
    return;
  }
  if (found.miss === "corrupt") note("warn", `removed the entry ${short} of ${profileName}: ${found.why}`);

  // A miss: compile once, into the store's directory (a dot name: eviction and prune clean up
  // after a writer that died), then load and keep exactly those bytes. A compile that fails or
  // leaves no output (a full /var, a parser that writes nothing) is not the store's to report:
  // the parser's own load runs, and reports a genuine compile error with its message.
  const tmp = `${store.entriesDir}/.${profileName}.${key}.tmp-${process.pid}-${randomHex(4)}`;
  let blob: Buffer;
  try {
    await parser.compileTo(profile, profileName, tmp, opts);
    blob = fs.readFileSync(tmp);
  } catch (err) {
    return byParser(`cannot compile into the store: ${(err as Error).message}`, "warn");
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  if (blob.length === 0) return byParser("the compile wrote no policy", "warn");
  try {
    writeBinaryPolicy(target, blob, "replace");
  } catch (err) {
    return byParser(`the kernel refused the new compile ${short}: ${(err as Error).message}`, "warn");
  }
  // The parser read the inputs again to compile: store the result only if none of them changed
  // since the key was computed (same key, same stat signature of every path), else an edit made
  // meanwhile would be served later under the old content's key. What was loaded is the fresh
  // compile either way.
  const after = await keyOf();
  if (!("key" in after) || after.key !== key || after.inputs !== k.inputs) {
    note("warn", `compiled ${profileName}; not stored: its inputs changed during the compile`);
    return;
  }
  try {
    store.write(profileName, key, blob);
    // Written and verified like any entry: a blob that names another profile (an admin's
    // profile file declaring another name) is loaded, never stored.
    if (!("blob" in store.read(profileName, key))) {
      note("debug", `compiled ${profileName}; not stored: the compiled policy does not name ${profileName} first`);
      return;
    }
  } catch (err) {
    note("warn", `compiled ${profileName}; cannot store it: ${(err as Error).message}`);
    return;
  }
  note("debug", `compiled ${profileName} and stored it as ${short} (key ${keyMs} ms)`);
  const evicted = await store.evict();
  if (evicted.length > 0) note("debug", `evicted ${evicted.length} file(s)`);
}
