import { PathError } from "../errors.js";
import type { ImageBytes, LayerRefs } from "./bytes.js";
import { decodeName, MAX_NAME_BYTES } from "./names.js";

export const QED_MAGIC = Buffer.from("QED\0", "latin1");

const HEADER_BYTES = 64;
const F_BACKING_FILE = 0x01n;
const F_NEED_CHECK = 0x02n;
const F_BACKING_FORMAT_NO_PROBE = 0x04n;
const KNOWN_FEATURES = F_BACKING_FILE | F_NEED_CHECK | F_BACKING_FORMAT_NO_PROBE;
const MIN_CLUSTER = 4096;
const MAX_CLUSTER = 64 * 1024 * 1024;

/**
 * Read a QED header (little-endian). QED records no backing format; its one flag says
 * "do not probe", which QEMU turns into raw. Without the flag QEMU probes the backing file.
 */
export function readQed(img: ImageBytes): LayerRefs {
  const corrupt = (why: string) => new PathError(img.path, `corrupt qed header: ${why}`);
  const head = img.readAt(0, HEADER_BYTES);
  if (head.length < HEADER_BYTES) throw corrupt(`truncated (${head.length} bytes)`);
  if (!head.subarray(0, 4).equals(QED_MAGIC)) throw corrupt("bad magic");

  const clusterSize = head.readUInt32LE(4);
  const headerClusters = head.readUInt32LE(12);
  const features = head.readBigUInt64LE(16);
  const nameOffset = head.readUInt32LE(56);
  const nameSize = head.readUInt32LE(60);
  if (clusterSize < MIN_CLUSTER || clusterSize > MAX_CLUSTER || (clusterSize & (clusterSize - 1)) !== 0) {
    throw corrupt(`invalid cluster size ${clusterSize}`);
  }
  if ((features & ~KNOWN_FEATURES) !== 0n) throw corrupt(`unknown feature bits 0x${features.toString(16)}`);

  const refs: LayerRefs = { extents: [] };
  if ((features & F_BACKING_FILE) === 0n) return refs;
  // The name must lie inside the header clusters (QEMU: "backing filename offset is invalid").
  if (nameOffset + nameSize > clusterSize * headerClusters) throw corrupt("backing file name lies outside the header");
  // QEMU's qed_read_string needs room for the terminating NUL in a PATH_MAX buffer.
  if (nameSize >= MAX_NAME_BYTES) throw corrupt(`backing file name length ${nameSize} is too long`);
  const raw = img.readAt(nameOffset, nameSize);
  if (raw.length < nameSize) throw corrupt("backing file name runs past the end of the file");
  const name = decodeName(raw, img.path, "backing file name", "corrupt qed header");
  refs.backing = (features & F_BACKING_FORMAT_NO_PROBE) !== 0n ? { name, format: "raw" } : { name };
  return refs;
}
