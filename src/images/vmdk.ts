import { PathError } from "../errors.js";
import type { ImageBytes, LayerRefs } from "./bytes.js";
import { decodeName, MAX_NAME_BYTES } from "./names.js";

export const VMDK4_MAGIC = Buffer.from("KDMV", "latin1");
export const VMDK3_MAGIC = Buffer.from("COWD", "latin1");

const SECTOR = 512;
/** QEMU reads the parent hint from this many bytes of the descriptor (DESC_SIZE). */
const PARENT_HINT_WINDOW = 20 * SECTOR;
/** In a binary sparse file QEMU looks for the parent hint at a fixed 0x200, whatever the header says. */
const SPARSE_DESC_OFFSET = 0x200;
/** Our bound for a whole descriptor; real ones are well under 2 KiB. */
export const MAX_DESCRIPTOR_BYTES = 64 * 1024;

/** createType values whose descriptor QEMU opens (vmdk_open_desc_file). */
const DESCRIPTOR_TYPES = new Set([
  "monolithicFlat",
  "vmfs",
  "vmfsSparse",
  "seSparse",
  "twoGbMaxExtentSparse",
  "twoGbMaxExtentFlat",
]);
const EXTENT_TYPES = new Set(["FLAT", "SPARSE", "VMFS", "VMFSSPARSE", "SESPARSE"]);

/**
 * Read what QEMU opens for a vmdk: the parent (backing, always format vmdk) and the extent files
 * of a descriptor. Two shapes exist: a binary sparse file ("KDMV"/"COWD") that is its own extent,
 * unless its header has capacity 0 and points at an embedded descriptor; and a text descriptor
 * file whose extents are separate files. Mirrors QEMU's vmdk_open.
 */
export function readVmdk(img: ImageBytes): LayerRefs {
  const refs: LayerRefs = { extents: [] };
  const magic = img.readAt(0, 4);
  let hintOffset = 0;
  if (magic.equals(VMDK4_MAGIC) || magic.equals(VMDK3_MAGIC)) {
    hintOffset = SPARSE_DESC_OFFSET;
    const embedded = magic.equals(VMDK4_MAGIC) ? embeddedDescriptorOffset(img) : undefined;
    if (embedded !== undefined) refs.extents = descriptorExtents(img, readDescriptor(img, embedded));
  } else {
    refs.extents = descriptorExtents(img, readDescriptor(img, 0));
  }
  const parent = parentHint(img, hintOffset);
  if (parent !== undefined && parent !== "") refs.backing = { name: parent, format: "vmdk" };
  return refs;
}

/** QEMU only treats the embedded descriptor as a list of extents when capacity is 0. */
function embeddedDescriptorOffset(img: ImageBytes): number | undefined {
  const header = img.readAt(4, 40);
  if (header.length < 40) throw new PathError(img.path, `corrupt vmdk header: truncated (${header.length + 4} bytes)`);
  const capacity = header.readBigUInt64LE(8);
  const descSector = header.readBigUInt64LE(24);
  if (capacity !== 0n || descSector === 0n) return undefined;
  const offset = descSector * BigInt(SECTOR);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new PathError(img.path, `corrupt vmdk header: descriptor offset ${descSector} is out of range`);
  }
  return Number(offset);
}

/** The descriptor text: bytes up to the first NUL, as QEMU's C string handling sees them. */
function readDescriptor(img: ImageBytes, offset: number): Buffer {
  const raw = img.readAt(offset, MAX_DESCRIPTOR_BYTES + 1);
  const nul = raw.indexOf(0);
  if (nul === -1 && raw.length > MAX_DESCRIPTOR_BYTES) {
    throw new PathError(img.path, `vmdk descriptor is larger than ${MAX_DESCRIPTOR_BYTES} bytes, which is not supported`);
  }
  return nul === -1 ? raw : raw.subarray(0, nul);
}

/**
 * QEMU finds `name` anywhere in the text (strstr), skips the two characters `="` and takes
 * everything up to the next `"`. We do exactly the same, so a hint QEMU would follow is never
 * missed and nothing QEMU ignores is granted.
 */
function quotedValue(text: Buffer, name: string): Buffer | undefined | "unterminated" {
  const at = text.indexOf(name, 0, "latin1");
  if (at === -1) return undefined;
  const start = at + name.length + 2;
  if (start > text.length) return "unterminated";
  const end = text.indexOf(0x22, start);
  if (end === -1) return "unterminated";
  return text.subarray(start, end);
}

function parentHint(img: ImageBytes, offset: number): string | undefined {
  let window = img.readAt(offset, PARENT_HINT_WINDOW);
  const nul = window.indexOf(0);
  if (nul !== -1) window = window.subarray(0, nul);
  const value = quotedValue(window, "parentFileNameHint");
  if (value === undefined) return undefined;
  if (value === "unterminated") throw new PathError(img.path, "corrupt vmdk descriptor: parentFileNameHint has no closing quote");
  if (value.length >= MAX_NAME_BYTES) {
    throw new PathError(img.path, `corrupt vmdk descriptor: parentFileNameHint is longer than ${MAX_NAME_BYTES - 1} bytes`);
  }
  return decodeName(value, img.path, "parentFileNameHint", "corrupt vmdk descriptor");
}

// QEMU parses each line with sscanf("%10s %" SCNd64 " %10s \"%511[^\n\r\"]\" %" SCNd64).
const EXTENT_LINE = /^[ \t\v\f]*(\S{1,10})[ \t\v\f]+([+-]?\d+)[ \t\v\f]+([^\s"]{1,10})[ \t\v\f]*"([^\n\r"]{1,511})"(?:[ \t\v\f]*([+-]?\d+))?/;

/** Extent file names of a descriptor, in order (only "RW" lines, as QEMU). */
function descriptorExtents(img: ImageBytes, desc: Buffer): string[] {
  const createType = quotedValue(desc, "createType");
  if (createType === undefined || createType === "unterminated") {
    throw new PathError(img.path, "invalid vmdk descriptor: no createType");
  }
  const type = createType.toString("latin1");
  if (!DESCRIPTOR_TYPES.has(type)) {
    throw new PathError(img.path, `vmdk descriptor createType ${JSON.stringify(type)} is not supported`);
  }
  const out: string[] = [];
  for (const line of desc.toString("latin1").split("\n")) {
    const m = EXTENT_LINE.exec(line);
    if (!m || m[1] !== "RW") continue;
    const [, , sectors, kind, name, offset] = m as unknown as [string, string, string, string, string, string | undefined];
    const invalid = () => new PathError(img.path, `invalid vmdk extent line: ${line.replace(/\r$/, "")}`);
    if (kind === "FLAT") {
      if (offset === undefined || BigInt(offset) < 0n) throw invalid();
    } else if (offset !== undefined) {
      throw invalid();
    }
    if (BigInt(sectors) <= 0n || !EXTENT_TYPES.has(kind)) continue;
    out.push(decodeName(Buffer.from(name, "latin1"), img.path, "extent file name", "corrupt vmdk descriptor"));
  }
  return out;
}
