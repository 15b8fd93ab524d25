import fs from "node:fs";
import { sha256 } from "../store/guest-files.js";
import type { CompiledStore } from "./compiled-store.js";
import { statSignature, walkClosure, type FactCache } from "./include-closure.js";
import { parserFailed, runParser } from "./runner.js";

/**
 * The key of one compile in the compiled-policy store (compiled-store.ts): sha256 over
 *
 * - the store format and the profile name (a blob is never looked up for another profile);
 * - the load flags that change the blob (`-C`: complain mode is compiled into it);
 * - the parser: its path, stat signature (dev, inode, size, mtime, ctime) and version string
 *   (the version is asked once per signature and remembered in the store, never per call);
 * - the features it compiles for: the features file (`-M`), else the kernel's features tree,
 *   hashed once per boot (the kernel cannot change them without one);
 * - the parser's own config /etc/apparmor/parser.conf and every absolute path it names
 *   (Debian's sets `policy-features=`);
 * - the include closure (include-closure.ts): the profile file, its `.files`, every include,
 *   abstraction, tunable, `local/` override and directory entry it reaches, and every include
 *   that is absent now (`include if exists`), so one created later changes the key.
 *
 * On the hot path every file's content hash comes from the profile's manifest while its stat
 * signature is unchanged: one stat per input, no read.
 */

/** Bump when the key's material or the entry format changes: older entries then simply miss. */
const FORMAT = 1;
/** The parser's own config, read by the parser from this machine (never under --root). */
export const PARSER_CONF = "/etc/apparmor/parser.conf";

export interface KeyInput {
  store: CompiledStore;
  parserPath: string;
  profileName: string;
  /** Real path of the profile file the parser gets. */
  profile: string;
  /** Real path of `--root`: paths below it are keyed as the host names them, so a root's key is a host's. */
  root: string;
  /** Real path of the include base (`--base`). */
  baseDir: string;
  /** Real path of the staging dir searched first (`-I`), named in the key as the base it mirrors. */
  stageDir?: string;
  complain: boolean;
  /** Real path of the `-M` features file; else `kernelFeaturesDir` is what the parser reads. */
  featuresFile?: string;
  kernelFeaturesDir?: string;
  /** Real path of the kernel's boot id (/proc/sys/kernel/random/boot_id). */
  bootIdFile: string;
  /** The parser's config (PARSER_CONF; a test may point elsewhere). */
  parserConf?: string;
  /** The parser's run timeout (ms) for `--version`. */
  timeoutMs?: number;
}

/**
 * `key`, and `inputs`: the stat signature of every path the closure walk touched, so a caller can
 * tell after a compile that nothing it read changed meanwhile (store-load.ts).
 */
export type KeyResult = { key: string; inputs: string } | { unsure: string };

interface Manifest {
  format: number;
  facts: FactCache;
}

export async function compiledKey(input: KeyInput): Promise<KeyResult> {
  const parser = await parserIdentity(input);
  if (parser === undefined) return { unsure: `cannot tell the version of ${input.parserPath}` };
  const conf = parserConfInputs(input.parserConf ?? PARSER_CONF);
  if ("unsure" in conf) return conf;
  let kernel: string | undefined;
  const extraTrees = [...conf.trees];
  if (input.featuresFile !== undefined) extraTrees.push(input.featuresFile);
  else if (input.kernelFeaturesDir !== undefined) kernel = kernelFeatures(input.store, input.kernelFeaturesDir, input.bootIdFile);
  else return { unsure: "no features file and no kernel features to compile for" };

  const manifestName = `manifests/${input.profileName}.json`;
  const old = input.store.readRecord<Manifest>(manifestName);
  const stage = input.stageDir;
  const closure = walkClosure({
    profile: input.profile,
    searchDirs: [...conf.includeDirs, ...(stage !== undefined ? [stage] : []), input.baseDir],
    contentOnly: (real) => real.endsWith(`/${input.profileName}.files`),
    extraTrees,
    keyPath: (real) => hostPath(stage !== undefined && real.startsWith(`${stage}/`) ? `${input.baseDir}${real.slice(stage.length)}` : real, input.root),
    cache: old?.format === FORMAT ? old.facts : {},
  });
  if (closure.unsure !== undefined) return { unsure: closure.unsure };
  // Remember what was learnt, except the staging dir (gone after this call); written only when
  // it differs, so an unchanged guest writes nothing.
  const facts: FactCache = {};
  for (const [p, f] of Object.entries(closure.cache)) if (stage === undefined || !p.startsWith(`${stage}/`)) facts[p] = f;
  if (old === undefined || old.format !== FORMAT || JSON.stringify(old.facts) !== JSON.stringify(facts)) {
    try {
      input.store.writeRecord(manifestName, { format: FORMAT, facts } satisfies Manifest);
    } catch {
      // Only the next call's speed depends on it.
    }
  }
  const material = {
    format: FORMAT,
    profile: input.profileName,
    complain: input.complain,
    parser,
    ...(kernel !== undefined ? { kernel } : {}),
    closure: closure.material,
  };
  const inputs = JSON.stringify(Object.entries(closure.cache).map(([p, f]) => [p, f.sig]).sort());
  return { key: sha256(JSON.stringify(material)), inputs };
}

function hostPath(real: string, root: string): string {
  return root !== "/" && real.startsWith(`${root}/`) ? real.slice(root.length) : real;
}

interface ParserRecord {
  path: string;
  sig: string;
  version: string;
}

/** "path sig version" of the parser; the version is asked only when the signature is new. */
async function parserIdentity(input: KeyInput): Promise<string | undefined> {
  const s = statSignature(input.parserPath);
  if (s?.kind !== "file") return undefined;
  const rec = input.store.readRecord<ParserRecord>("parser.json");
  let version = rec !== undefined && rec.path === input.parserPath && rec.sig === s.sig && typeof rec.version === "string" ? rec.version : undefined;
  if (version === undefined) {
    const r = await runParser(input.parserPath, ["--version"], input.timeoutMs !== undefined ? { timeoutMs: input.timeoutMs } : {});
    const line = r.stdout.split("\n")[0]?.trim() ?? "";
    if (parserFailed(r) || line === "") return undefined;
    version = line;
    try {
      input.store.writeRecord("parser.json", { path: input.parserPath, sig: s.sig, version } satisfies ParserRecord);
    } catch {
      // Asked again next time.
    }
  }
  return `${input.parserPath} ${s.sig} ${version}`;
}

/**
 * What the parser's config adds to a compile: the files and trees it names (hashed like
 * includes) and include directories (`Include`, searched before `-I`: parser_main.c processes
 * the config first). A `base` in it would move the include base: not followed, not keyed.
 */
function parserConfInputs(file: string): { trees: string[]; includeDirs: string[] } | { unsure: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return { trees: [file], includeDirs: [] }; // absent: keyed as absent
  }
  const trees = [file];
  const includeDirs: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^-{0,2}([A-Za-z-]+)(?:[ \t]*=[ \t]*|[ \t]+)?(.*)$/.exec(line);
    const option = m?.[1] ?? "";
    const value = (m?.[2] ?? "").trim();
    if (option === "base" || option === "b" || option === "config-file") return { unsure: `${file} sets ${option}` };
    if (option === "Include" || option === "I") includeDirs.push(value.replace(/\/+$/, ""));
    for (const p of value.split(/[ \t]+/)) if (p.startsWith("/")) trees.push(p);
  }
  return { trees, includeDirs };
}

interface KernelRecord {
  bootId: string;
  dir: string;
  sha256: string;
}

/** sha256 of the kernel's features tree, computed once per boot and remembered in the store. */
function kernelFeatures(store: CompiledStore, dir: string, bootIdFile: string): string {
  let bootId: string | undefined;
  try {
    bootId = fs.readFileSync(bootIdFile, "utf8").trim();
  } catch {
    bootId = undefined;
  }
  const rec = store.readRecord<KernelRecord>("kernel-features.json");
  if (bootId !== undefined && rec?.bootId === bootId && rec.dir === dir && typeof rec.sha256 === "string") return rec.sha256;
  const lines: string[] = [];
  const walk = (p: string, depth: number) => {
    const st = fs.statSync(p, { throwIfNoEntry: false });
    if (st === undefined) lines.push(`${p} absent`);
    else if (st.isDirectory() && depth < 16) {
      lines.push(`${p}/`);
      for (const n of fs.readdirSync(p).sort()) walk(`${p}/${n}`, depth + 1);
    } else {
      let content = "";
      try {
        content = fs.readFileSync(p, "latin1");
      } catch (err) {
        content = `unreadable ${(err as NodeJS.ErrnoException).code ?? ""}`;
      }
      lines.push(`${p} ${content}`);
    }
  };
  walk(dir, 0);
  const hash = sha256(lines.join("\n"));
  if (bootId !== undefined) {
    try {
      store.writeRecord("kernel-features.json", { bootId, dir, sha256: hash } satisfies KernelRecord);
    } catch {
      // Hashed again next time.
    }
  }
  return hash;
}
