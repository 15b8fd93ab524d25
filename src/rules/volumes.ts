import { XMLParser } from "fast-xml-parser";
import { PathError } from "../errors.js";
import type { RuleContext } from "./context.js";

/**
 * `<disk type='volume'><source pool=P volume=V/>` → the host path QEMU opens.
 *
 * Hook XML keeps the pool/volume pair (libvirt translates it only in its own memory), and the hook
 * must never ask libvirt (a hook that calls back into libvirtd deadlocks it), so we read the persistent pool definition
 * `/etc/libvirt/storage/<pool>.xml` ourselves and derive the path the way libvirt's storage
 * backends do: dir/fs/netfs pools keep volumes as `<target path>/<volume>`, logical pools as
 * `/dev/<volume group>/<volume>`. Every other pool type names volumes in ways we cannot compute
 * from the definition alone, so it is rejected rather than guessed.
 */

/** Pool definitions libvirt writes are a few hundred bytes; anything this large is not one. */
const MAX_POOL_XML_BYTES = 64 * 1024;

const DIR_LIKE_POOLS = new Set(["dir", "fs", "netfs"]);

export function resolveVolume(ctx: RuleContext, element: string, pool: string, volume: string): string {
  const fail = (why: string) => new PathError(element, `cannot resolve volume ${volume} in pool ${pool}: ${why}`);

  // Both names are guest input that become path components: neither may climb out or add levels.
  if (!isPlainName(pool)) throw fail("pool name is not a plain file name");
  if (!isPlainName(volume)) throw fail("volume name is not a plain file name");

  const def = readPoolDefinition(ctx, `${ctx.layout.libvirtStorageDir}/${pool}.xml`, fail);
  if (DIR_LIKE_POOLS.has(def.type)) {
    if (!def.targetPath?.startsWith("/")) throw fail("pool has no absolute target path");
    return `${def.targetPath.replace(/\/+$/, "")}/${volume}`;
  }
  if (def.type === "logical") {
    // libvirt defaults a logical pool's volume group name to the pool name.
    const vg = def.sourceName ?? pool;
    if (!isPlainName(vg)) throw fail("volume group name is not a plain file name");
    return `/dev/${vg}/${volume}`;
  }
  throw fail(`unsupported pool type ${def.type || "(none)"}`);
}

function isPlainName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !name.includes("/") && !name.includes("\0");
}

interface PoolDefinition {
  type: string;
  targetPath?: string;
  sourceName?: string;
}

function readPoolDefinition(ctx: RuleContext, hostPath: string, fail: (why: string) => PathError): PoolDefinition {
  const st = ctx.fs.stat(hostPath);
  if (!st) throw fail(`pool definition ${hostPath} not found`);
  if (!st.isFile()) throw fail(`pool definition ${hostPath} is not a regular file`);
  if (st.size > MAX_POOL_XML_BYTES) throw fail(`pool definition ${hostPath} is larger than ${MAX_POOL_XML_BYTES} bytes`);
  const text = ctx.fs.readHead(hostPath, MAX_POOL_XML_BYTES).toString("utf8");
  // libvirt never writes a DTD; refusing one keeps entity expansion out entirely.
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw fail(`pool definition ${hostPath} carries a DTD`);

  let doc: unknown;
  try {
    doc = poolParser().parse(text, true); // true: validate well-formedness first
  } catch (err) {
    throw fail(`pool definition ${hostPath} is not well-formed XML: ${(err as Error).message.split("\n")[0]}`);
  }
  const root = field(doc, "pool");
  if (root === undefined) throw fail(`pool definition ${hostPath} has no <pool> element`);
  return {
    type: textOf(field(root, "@_type")) ?? "",
    targetPath: textOf(field(field(root, "target"), "path")),
    sourceName: textOf(field(field(root, "source"), "name")),
  };
}

let parser: XMLParser | undefined;
function poolParser(): XMLParser {
  parser ??= new XMLParser({
    ignoreAttributes: false,
    attributeNamePrefix: "@_",
    // Keep every value a string: a path or name like "1e3" must not turn into a number.
    parseTagValue: false,
    parseAttributeValue: false,
    // The five predefined XML entities only; DTDs are refused above.
    processEntities: true,
    htmlEntities: false,
    trimValues: true,
  });
  return parser;
}

/** One child of a parsed element; the first when the element repeats. */
function field(node: unknown, key: string): unknown {
  if (node === null || typeof node !== "object") return undefined;
  const value = (node as Record<string, unknown>)[key];
  return Array.isArray(value) ? value[0] : value;
}

/** Text content of an element or attribute, whether the parser gave a string or a `#text` node. */
function textOf(node: unknown): string | undefined {
  if (typeof node === "string") return node;
  const t = field(node, "#text");
  return typeof t === "string" ? t : undefined;
}
