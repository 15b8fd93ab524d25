import fs from "node:fs";
import { PathError } from "../errors.js";
import type { HostFs } from "../hostfs.js";
import type { ImageBytes, LayerRefs } from "./bytes.js";
import { resolveBackingName, resolveDataFileName, resolveExtentName } from "./names.js";
import { probeFormat, PROBE_BYTES } from "./probe.js";
import { readQcow2 } from "./qcow2.js";
import { readQed } from "./qed.js";
import { readVmdk } from "./vmdk.js";

export interface ChainEntry {
  /**
   * Canonical host path (symlinks resolved by ChainWalk.touch): the file the kernel opens for the
   * name, and the one the walk read.
   */
  path: string;
  /** Format of this file as recorded by the referring header, or probed (backing layers); "raw" for a data file; absent for vmdk extents. */
  format?: string;
  /** backing = a deeper layer; data-file = qcow2 external data file; extent = vmdk extent file. */
  kind: "backing" | "data-file" | "extent";
  /** 0 = belongs to the top image itself (its data-file / extents); 1 = first backing layer and its own data-file/extents; ... */
  depth: number;
}

/** A path the walk is about to touch: the name as QEMU opens it (not yet canonical), what it is, and who named it. */
export interface ChainTouch {
  path: string;
  kind: ChainEntry["kind"];
  depth: number;
  /** Canonical path of the image whose header named this file; absent for the top itself. */
  namedBy?: string;
}

/**
 * What the walk needs from the stages after it, passed in so images/ depends on nothing but the
 * host's bytes. The hook runs as root: the caller refuses paths the guest may never get before
 * anything stats, opens or reads them, so no error message describes a file the XML's or the
 * image's author may not see.
 */
export interface ChainWalk {
  /**
   * Called with every file (the top included) before the walk stats, opens or reads it; returns
   * the canonical host path the walk then reads (and reports), or throws to stop the walk.
   */
  touch(entry: ChainTouch): string;
  /** The canonical form of a directory: relative names are joined onto it, as the kernel resolves them. */
  canonical(path: string): string;
  /**
   * The top's data file comes from the domain XML (`<dataStore>`): libvirt hands it to QEMU, so
   * the name in the top's header is neither followed nor touched.
   */
  topDataFileFromXml?: boolean;
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

/** One layer whose header the walk reads: the name QEMU opens it by, and its canonical path. */
interface Layer {
  named: string;
  path: string;
  format: string;
  depth: number;
}

/**
 * Every file QEMU opens for the image at topPath, except topPath itself, outermost first: the
 * top's own files (depth 0), then layer 1, then layer 1's own files, and so on.
 *
 * The top is read only when declaredFormat is qcow2, qed or vmdk. QEMU never interprets a raw
 * image (and libvirt makes a missing format raw), while the guest writes its raw disk freely:
 * reading it anyway would let a guest plant a fake qcow2 header naming any host file.
 *
 * Names are resolved as QEMU and the kernel do: a relative name is appended to the directory of
 * the name the referring image was opened by (not of the file its last symlink points to: QEMU
 * joins strings), with that directory's symlinks resolved first, so `dir/link/../x` is the file
 * the kernel reaches, not the lexical `dir/x`. Every header is read from the canonical path
 * ChainWalk.touch returned for it, which is the path the rule names.
 *
 * maxDepth is the deepest backing layer allowed (1 = the top's direct backing file); a deeper
 * chain is a PathError. maxDepth 0 is the "top only" walk: it reads just the top's header and
 * returns its own files (depth 0) without opening or checking any backing layer.
 */
export function discoverChain(
  hostFs: HostFs,
  topPath: string,
  declaredFormat: string | undefined,
  maxDepth: number,
  walk: ChainWalk,
): ChainEntry[] {
  if (!Number.isInteger(maxDepth) || maxDepth < 0) throw new RangeError(`maxDepth must be a non-negative integer, not ${maxDepth}`);
  if (declaredFormat === undefined || !HEADER_FORMATS.has(declaredFormat)) return [];
  if (!topPath.startsWith("/")) throw new PathError(topPath, "disk image path is not absolute");

  const out: ChainEntry[] = [];
  // (dev, ino) of every layer whose header we read → its path, for loop detection. Identity
  // by inode, not by name: "a/../b", hard links and symlinks all reach the same file.
  const seen = new Map<string, string>();
  const topReal = walk.touch({ path: topPath, kind: "backing", depth: 0 });
  let layer: Layer = { named: topPath, path: topReal, format: declaredFormat, depth: 0 };
  checkType(hostFs, layer.path, "disk image", undefined);

  for (;;) {
    const refs = readLayer(hostFs, layer, seen);
    const dir = walk.canonical(parentOf(layer.named));
    const skipDataFile = layer.depth === 0 && walk.topDataFileFromXml === true;
    out.push(...ownFiles(hostFs, refs, layer, dir, skipDataFile, walk));

    if (refs.backing === undefined) break;
    const target = resolveBackingName(refs.backing.name, layer.path, dir);
    // No name, or a network layer: no file to grant, and nothing further QEMU reads from disk.
    if (target.kind !== "file") break;
    if (maxDepth === 0) break;
    const depth = layer.depth + 1;
    if (depth > maxDepth) throw new PathError(layer.path, `backing chain is deeper than ${maxDepth} layers`);

    const real = walk.touch({ path: target.path, kind: "backing", depth, namedBy: layer.path });
    const stats = checkType(hostFs, real, "backing file", layer.path);
    const format = refs.backing.format ?? probedFormat(hostFs, real, stats);
    out.push({ path: real, format, kind: "backing", depth });
    if (!HEADER_FORMATS.has(format)) {
      if (!SELF_CONTAINED_FORMATS.has(format)) {
        throw new PathError(real, `backing file format ${JSON.stringify(format)} is not supported`);
      }
      break;
    }
    layer = { named: target.path, path: real, format, depth };
  }
  return out;
}

/** The directory part of a name, as QEMU's path_combine cuts it (no normalisation). */
function parentOf(name: string): string {
  const slash = name.lastIndexOf("/");
  return slash <= 0 ? "/" : name.slice(0, slash);
}

/** The data file and extents that belong to one layer (same depth as the layer). */
function ownFiles(hostFs: HostFs, refs: LayerRefs, layer: Layer, dir: string, skipDataFile: boolean, walk: ChainWalk): ChainEntry[] {
  const out: ChainEntry[] = [];
  const { depth } = layer;
  if (refs.dataFile !== undefined && !skipDataFile) {
    const target = resolveDataFileName(refs.dataFile, layer.path, dir);
    if (target.kind === "file") {
      const real = walk.touch({ path: target.path, kind: "data-file", depth, namedBy: layer.path });
      checkType(hostFs, real, "external data file", layer.path);
      out.push({ path: real, format: "raw", kind: "data-file", depth });
    }
  }
  for (const name of refs.extents) {
    const extent = resolveExtentName(name, dir);
    // A descriptor embedded in a sparse file may list that file itself: not a separate file.
    if (walk.canonical(extent) === layer.path) continue;
    const real = walk.touch({ path: extent, kind: "extent", depth, namedBy: layer.path });
    checkType(hostFs, real, "vmdk extent file", layer.path);
    out.push({ path: real, kind: "extent", depth });
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

/** Open one layer (by its canonical path), refuse loops, and parse its header. Loop messages use the names. */
function readLayer(hostFs: HostFs, layer: Layer, seen: Map<string, string>): LayerRefs {
  const read = HEADER_FORMATS.get(layer.format);
  if (read === undefined) throw new Error(`no header reader for ${layer.format}`);
  return withOpenImage(hostFs, layer.path, (img, stats) => {
    const key = `${stats.dev}:${stats.ino}`;
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new PathError(layer.named, `backing chain loop: this file is already in the chain as ${earlier}`);
    }
    seen.set(key, layer.named);
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
