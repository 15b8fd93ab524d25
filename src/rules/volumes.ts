import { PathError } from "../errors.js";
import { isFileNameComponent } from "../names.js";
import { firstIllegalChar } from "../xml/chars.js";
import { XmlError, type XmlNode } from "../xml/reader.js";
import { readWellFormedXml } from "../xml/well-formed.js";
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
  if (!isFileNameComponent(pool)) throw fail("pool name is not a plain file name");
  if (!isFileNameComponent(volume)) throw fail("volume name is not a plain file name");

  const def = readPoolDefinition(ctx, `${ctx.layout.libvirtStorageDir}/${pool}.xml`, fail);
  if (DIR_LIKE_POOLS.has(def.type)) {
    if (!def.targetPath?.startsWith("/")) throw fail("pool has no absolute target path");
    return `${def.targetPath.replace(/\/+$/, "")}/${volume}`;
  }
  if (def.type === "logical") {
    // libvirt defaults a logical pool's volume group name to the pool name.
    const vg = def.sourceName ?? pool;
    if (!isFileNameComponent(vg)) throw fail("volume group name is not a plain file name");
    return `/dev/${vg}/${volume}`;
  }
  throw fail(`unsupported pool type ${def.type || "(none)"}`);
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
  const illegal = firstIllegalChar(text);
  if (illegal) throw fail(`pool definition ${hostPath} is not well-formed XML: character ${illegal.codePoint} is not allowed in XML`);

  try {
    const root = readWellFormedXml(text).roots[0];
    if (root?.name !== "pool") throw fail(`pool definition ${hostPath} has no <pool> element`);
    return {
      type: root.attribute("type")?.trim() ?? "",
      targetPath: textAt(root, "target", "path"),
      sourceName: textAt(root, "source", "name"),
    };
  } catch (err) {
    if (err instanceof XmlError) throw fail(`pool definition ${hostPath} is not well-formed XML: ${err.reason}`);
    throw err;
  }
}

/** The trimmed text of `<outer><inner>` (the first of each when repeated), or undefined. */
function textAt(root: XmlNode, outer: string, inner: string): string | undefined {
  return root.childrenNamed(outer)[0]?.childrenNamed(inner)[0]?.text()?.trim();
}
