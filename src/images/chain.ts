import fs from "node:fs";
import { PathError } from "../errors.js";
import type { HostFs } from "../hostfs.js";
import type { ImageBytes, LayerRefs } from "./bytes.js";
import { normalise, resolveBackingName, resolveDataFileName, resolveExtentName } from "./names.js";
import { probeFormat, PROBE_BYTES } from "./probe.js";
import { readQcow2 } from "./qcow2.js";
import { readQed } from "./qed.js";
import { readVmdk } from "./vmdk.js";

export interface ChainEntry {
  /** Absolute, normalised host path ('.', '..', '//' resolved lexically; symlinks NOT resolved: policy does that). */
  path: string;
  /** Format of this file as recorded by the referring header, or probed (backing layers); "raw" for a data file; absent for vmdk extents. */
  format?: string;
  /** backing = a deeper layer; data-file = qcow2 external data file; extent = vmdk extent file. */
  kind: "backing" | "data-file" | "extent";
  /** 0 = belongs to the top image itself (its data-file / extents: writable like the top); 1 = first backing layer and its own data-file/extents; ... */
  depth: number;
}

/** Formats whose headers name further files, and which we read. */
const HEADER_FORMATS: ReadonlyMap<string, (img: ImageBytes) => LayerRefs> = new Map([
  ["qcow2", readQcow2],
  ["qed", readQed],
  ["vmdk", readVmdk],
]);

/**
 * Formats QEMU opens without touching any other file. A backing layer in any format not listed
 * here or above (the legacy "qcow", which has backing files of its own, or a name we do not
 * know) is refused: we could not tell which files QEMU would open for it.
 */
const SELF_CONTAINED_FORMATS = new Set([
  "raw", "file", "host_device", "luks", "vpc", "vdi", "vhdx", "dmg", "cloop", "bochs", "parallels",
]);

/**
 * Called with every path (and what it is) before the walk stats, opens or reads it; throws to
 * stop the walk. The hook runs as root: the caller refuses paths the guest may never get, so no
 * error message ever describes a file the XML's author may not see.
 */
export type BeforeTouch = (entry: Omit<ChainEntry, "format">) => void;

/**
 * Every file QEMU opens for the image at topPath, except topPath itself, outermost first: the
 * top's own files (depth 0), then layer 1, then layer 1's own files, and so on.
 *
 * The top is read only when declaredFormat is qcow2, qed or vmdk. QEMU never interprets a raw
 * image (and libvirt makes a missing format raw), while the guest writes its raw disk freely:
 * reading it anyway would let a guest plant a fake qcow2 header naming any host file.
 *
 * maxDepth is the deepest backing layer allowed (1 = the top's direct backing file); a deeper
 * chain is a PathError. maxDepth 0 is the "top only" walk: it reads just the top's header and
 * returns its own files (depth 0) without opening or checking any backing layer, for callers
 * that already have the layers from `<backingStore>`.
 */
export function discoverChain(
  hostFs: HostFs,
  topPath: string,
  declaredFormat: string | undefined,
  maxDepth: number,
  beforeTouch: BeforeTouch = () => {},
): ChainEntry[] {
  if (!Number.isInteger(maxDepth) || maxDepth < 0) throw new RangeError(`maxDepth must be a non-negative integer, not ${maxDepth}`);
  if (declaredFormat === undefined || !HEADER_FORMATS.has(declaredFormat)) return [];
  if (!topPath.startsWith("/")) throw new PathError(topPath, "disk image path is not absolute");

  const out: ChainEntry[] = [];
  // (dev, ino) of every layer whose header we read → its path, for loop detection. Identity
  // by inode, not by name: "a/../b", hard links and symlinks all reach the same file.
  const seen = new Map<string, string>();
  let layer = { path: normalise(topPath), format: declaredFormat, depth: 0 };
  beforeTouch({ path: layer.path, kind: "backing", depth: 0 });
  checkType(hostFs, layer.path, "disk image", undefined);

  for (;;) {
    const refs = readLayer(hostFs, layer.path, layer.format, seen);
    out.push(...ownFiles(hostFs, refs, layer.path, layer.depth, beforeTouch));

    if (refs.backing === undefined) break;
    const target = resolveBackingName(refs.backing.name, layer.path);
    // No name, or a network layer: no file to grant, and nothing further QEMU reads from disk.
    if (target.kind !== "file") break;
    if (maxDepth === 0) break;
    const depth = layer.depth + 1;
    if (depth > maxDepth) throw new PathError(layer.path, `backing chain is deeper than ${maxDepth} layers`);

    beforeTouch({ path: target.path, kind: "backing", depth });
    const stats = checkType(hostFs, target.path, "backing file", layer.path);
    const format = refs.backing.format ?? probedFormat(hostFs, target.path, stats);
    out.push({ path: target.path, format, kind: "backing", depth });
    if (!HEADER_FORMATS.has(format)) {
      if (!SELF_CONTAINED_FORMATS.has(format)) {
        throw new PathError(target.path, `backing file format ${JSON.stringify(format)} is not supported`);
      }
      break;
    }
    layer = { path: target.path, format, depth };
  }
  return out;
}

/** The data file and extents that belong to one layer (same depth as the layer). */
function ownFiles(hostFs: HostFs, refs: LayerRefs, layerPath: string, depth: number, beforeTouch: BeforeTouch): ChainEntry[] {
  const out: ChainEntry[] = [];
  if (refs.dataFile !== undefined) {
    const target = resolveDataFileName(refs.dataFile, layerPath);
    if (target.kind === "file") {
      beforeTouch({ path: target.path, kind: "data-file", depth });
      checkType(hostFs, target.path, "external data file", layerPath);
      out.push({ path: target.path, format: "raw", kind: "data-file", depth });
    }
  }
  for (const name of refs.extents) {
    const extent = resolveExtentName(name, layerPath);
    // A descriptor embedded in a sparse file may list that file itself: not a separate file.
    if (extent === layerPath) continue;
    beforeTouch({ path: extent, kind: "extent", depth });
    checkType(hostFs, extent, "vmdk extent file", layerPath);
    out.push({ path: extent, kind: "extent", depth });
  }
  return out;
}

/**
 * A backing layer whose referrer recorded no format: QEMU probes it, so we probe the same magic
 * to grant what QEMU will really open. This reads a header nobody vouched for (an old raw top
 * that became a backing layer after a snapshot may carry a guest-written fake header), which is
 * why libvirt refuses such chains unless the probe says raw, and why the policy stage still
 * checks every path we return. A block device is not probed: we treat it as raw rather than
 * trust the first bytes of a device a guest may have written.
 */
function probedFormat(hostFs: HostFs, hostPath: string, stats: fs.Stats): string {
  if (stats.isBlockDevice()) return "raw";
  const format = withOpenImage(hostFs, hostPath, (img) => probeFormat(img.readAt(0, PROBE_BYTES)));
  if (format === "qcow") throw new PathError(hostPath, "backing file is a qcow version 1 image, which is not supported");
  return format;
}

/** Open one layer, refuse loops, and parse its header. */
function readLayer(hostFs: HostFs, hostPath: string, format: string, seen: Map<string, string>): LayerRefs {
  const read = HEADER_FORMATS.get(format);
  if (read === undefined) throw new Error(`no header reader for ${format}`);
  return withOpenImage(hostFs, hostPath, (img, stats) => {
    const key = `${stats.dev}:${stats.ino}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new PathError(hostPath, `backing chain loop: this file is already in the chain as ${earlier}`);
    }
    seen.set(key, hostPath);
    return read(img);
  });
}

/**
 * Open read-only and non-blocking, re-check the type on the open descriptor (the path may have
 * been swapped for a FIFO since the stat), and hand the parser bounded reads.
 */
function withOpenImage<T>(hostFs: HostFs, hostPath: string, use: (img: ImageBytes, stats: fs.Stats) => T): T {
  let fd: number;
  try {
    fd = hostFs.open(hostPath);
  } catch (e) {
    throw new PathError(hostPath, `cannot open image: ${errorCode(e)}`);
  }
  try {
    const stats = fs.fstatSync(fd);
    const bad = badFileType(stats);
    if (bad !== undefined) throw new PathError(hostPath, `image is ${bad}`);
    const img: ImageBytes = {
      path: hostPath,
      readAt(position, length) {
        if (!Number.isSafeInteger(position) || position < 0) throw new PathError(hostPath, `image header offset ${position} is out of range`);
        try {
          return hostFs.readAt(fd, position, length);
        } catch (e) {
          throw new PathError(hostPath, `cannot read image header: ${errorCode(e)}`);
        }
      },
    };
    return use(img, stats);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Stat (following symlinks, as QEMU's open does) and refuse what cannot be an image layer.
 * FIFOs, sockets and character devices are refused before anything opens them: opening a FIFO
 * can block or feed attacker-timed data, and a character device read can have side effects.
 */
function checkType(hostFs: HostFs, hostPath: string, what: string, referrer: string | undefined): fs.Stats {
  const namedBy = referrer === undefined ? "" : ` (named by ${referrer})`;
  let stats: fs.Stats | undefined;
  try {
    stats = hostFs.stat(hostPath);
  } catch (e) {
    throw new PathError(hostPath, `cannot stat ${what}: ${errorCode(e)}${namedBy}`);
  }
  if (stats === undefined) throw new PathError(hostPath, `${what} does not exist${namedBy}`);
  const bad = badFileType(stats);
  if (bad !== undefined) throw new PathError(hostPath, `${what} is ${bad}${namedBy}`);
  return stats;
}

function badFileType(stats: fs.Stats): string | undefined {
  if (stats.isFile() || stats.isBlockDevice()) return undefined;
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isSocket()) return "a socket";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isDirectory()) return "a directory";
  return "not a regular file or block device";
}

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? String(e);
}
