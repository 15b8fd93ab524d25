import { PathError } from "../errors.js";
import type { ImageBytes, LayerRefs } from "./bytes.js";
import { decodeName } from "./names.js";

export const QCOW_MAGIC = Buffer.from([0x51, 0x46, 0x49, 0xfb]); // "QFI\xfb"

const EXT_END = 0x00000000;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_DATA_FILE = 0x44415441;
const INCOMPAT_DATA_FILE = 1n << 2n;

const V2_HEADER_LENGTH = 72;
const V3_MIN_HEADER_LENGTH = 104;
const MIN_CLUSTER_BITS = 9;
const MAX_CLUSTER_BITS = 21;
/** QEMU's limit for the backing file name (qcow2_do_open). */
const MAX_BACKING_NAME = 1023;
/** bs->backing_format is 16 bytes including the NUL. */
const MAX_BACKING_FORMAT = 15;
/**
 * We read this much of the header once. Header, extensions and (usually) the backing name live
 * here; real images use well under 1 KiB. A header whose extensions run past it is refused
 * rather than read further, to keep every header read small and bounded.
 */
export const QCOW2_HEAD_BYTES = 4096;

/**
 * Read what a qcow2 header makes QEMU open: the backing file (name and recorded format) and the
 * external data file. Checks mirror QEMU's own (qcow2_do_open, qcow2_read_extensions) so we
 * never follow a name from a header QEMU would refuse.
 */
export function readQcow2(img: ImageBytes): LayerRefs {
  const corrupt = (why: string) => new PathError(img.path, `corrupt qcow2 header: ${why}`);
  const head = img.readAt(0, QCOW2_HEAD_BYTES);
  const fileEnded = head.length < QCOW2_HEAD_BYTES;
  if (head.length < V2_HEADER_LENGTH) throw corrupt(`truncated (${head.length} bytes)`);
  if (!head.subarray(0, 4).equals(QCOW_MAGIC)) throw corrupt("bad magic");

  const version = head.readUInt32BE(4);
  if (version < 2 || version > 3) throw corrupt(`unsupported version ${version}`);
  const backingOffset = head.readBigUInt64BE(8);
  const backingSize = head.readUInt32BE(16);
  const clusterBits = head.readUInt32BE(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw corrupt(`unsupported cluster size 2^${clusterBits}`);
  }
  const clusterSize = 2 ** clusterBits;

  let incompatible = 0n;
  let headerLength = V2_HEADER_LENGTH;
  if (version === 3) {
    if (head.length < V3_MIN_HEADER_LENGTH) throw corrupt(`truncated (${head.length} bytes)`);
    incompatible = head.readBigUInt64BE(72);
    headerLength = head.readUInt32BE(100);
    if (headerLength < V3_MIN_HEADER_LENGTH) throw corrupt(`header length ${headerLength} is too short`);
  }
  if (headerLength > clusterSize) throw corrupt(`header length ${headerLength} exceeds the cluster size`);
  if (backingOffset > BigInt(clusterSize)) throw corrupt(`backing file offset ${backingOffset} is outside the first cluster`);

  // Extensions sit between the header and the backing name (or the end of the first cluster).
  const extEnd = backingOffset !== 0n ? Number(backingOffset) : clusterSize;
  const ext = readExtensions(img, head, fileEnded, headerLength, extEnd, corrupt);

  const refs: LayerRefs = { extents: [] };
  if (backingOffset !== 0n && backingSize > 0) {
    const offset = Number(backingOffset);
    if (backingSize > Math.min(MAX_BACKING_NAME, clusterSize - offset)) {
      throw corrupt(`backing file name length ${backingSize} is too long`);
    }
    const raw = img.readAt(offset, backingSize);
    if (raw.length < backingSize) throw corrupt("backing file name runs past the end of the file");
    refs.backing = { name: decodeName(raw, img.path, "backing file name", "corrupt qcow2 header") };
    // An empty recorded format means "not recorded" to QEMU as well.
    if (ext.backingFormat) refs.backing.format = ext.backingFormat;
  }
  // QEMU ignores the data file extension unless the incompatible feature bit is set.
  if ((incompatible & INCOMPAT_DATA_FILE) !== 0n) {
    if (ext.dataFile === undefined) {
      // QEMU then needs the data file from its command line, which libvirt's hook XML cannot
      // give us: refuse instead of guessing which file the guest gets.
      throw new PathError(img.path, "qcow2 image needs an external data file but its header names none");
    }
    refs.dataFile = ext.dataFile;
  }
  return refs;
}

interface Extensions {
  backingFormat?: string;
  dataFile?: string;
}

function readExtensions(
  img: ImageBytes,
  head: Buffer,
  fileEnded: boolean,
  start: number,
  end: number,
  corrupt: (why: string) => PathError,
): Extensions {
  const out: Extensions = {};
  let offset = start;
  while (offset < end) {
    // Past the end of the file QEMU's reads return zeros, i.e. the end marker.
    if (offset >= head.length && fileEnded) return out;
    if (offset + 8 > head.length) throw tooFar(img);
    const type = head.readUInt32BE(offset);
    const len = head.readUInt32BE(offset + 4);
    offset += 8;
    if (offset > end || len > end - offset) throw corrupt("header extension too large");
    if (type === EXT_END) return out;
    if (type === EXT_BACKING_FORMAT || type === EXT_DATA_FILE) {
      if (offset + len > head.length) throw fileEnded ? corrupt("truncated header extension") : tooFar(img);
      const data = head.subarray(offset, offset + len);
      if (type === EXT_BACKING_FORMAT) {
        if (len > MAX_BACKING_FORMAT) throw corrupt(`backing format name length ${len} is too long`);
        out.backingFormat = decodeName(data, img.path, "backing format name", "corrupt qcow2 header");
      } else {
        out.dataFile = decodeName(data, img.path, "external data file name", "corrupt qcow2 header");
      }
    }
    offset += (len + 7) & ~7;
  }
  return out;
}

function tooFar(img: ImageBytes): PathError {
  return new PathError(img.path, `qcow2 header extensions run past the first ${QCOW2_HEAD_BYTES} bytes, which is not supported`);
}
