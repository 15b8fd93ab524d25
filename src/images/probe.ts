import { QCOW_MAGIC } from "./qcow2.js";
import { QED_MAGIC } from "./qed.js";
import { VMDK3_MAGIC, VMDK4_MAGIC } from "./vmdk.js";

/** QEMU probes the first 2 KiB (BLOCK_PROBE_BUF_SIZE). */
export const PROBE_BYTES = 2048;

/**
 * The format QEMU's probe would pick for a backing layer whose referrer recorded none, limited to
 * what matters for file access: formats that name other files (qcow2, qed, vmdk, and the legacy
 * qcow v1 that we refuse) versus everything else, which opens no further file ("raw").
 */
export function probeFormat(head: Buffer): "qcow2" | "qcow" | "qed" | "vmdk" | "raw" {
  if (head.length >= 8 && head.subarray(0, 4).equals(QCOW_MAGIC)) {
    return head.readUInt32BE(4) >= 2 ? "qcow2" : "qcow";
  }
  if (head.length >= 4 && head.subarray(0, 4).equals(QED_MAGIC)) return "qed";
  if (head.length >= 4 && (head.subarray(0, 4).equals(VMDK4_MAGIC) || head.subarray(0, 4).equals(VMDK3_MAGIC))) {
    return "vmdk";
  }
  return looksLikeVmdkDescriptor(head) ? "vmdk" : "raw";
}

/**
 * QEMU's text-descriptor probe: comment lines and blank (space-only) lines may precede a line
 * that is exactly "version=1", "version=2" or "version=3" (LF or CRLF); anything else first
 * means "not vmdk".
 */
function looksLikeVmdkDescriptor(buf: Buffer): boolean {
  let p = 0;
  const end = buf.length;
  while (p < end) {
    const c = buf[p];
    if (c === 0x23 /* # */) {
      while (p < end && buf[p] !== 0x0a) p++;
      p++;
      continue;
    }
    if (c === 0x20 /* space */) {
      while (p < end && buf[p] === 0x20) p++;
      if (p < end && buf[p] === 0x0d) p++;
      if (p === end || buf[p] !== 0x0a) return false;
      p++;
      continue;
    }
    const rest = buf.subarray(p, p + 11).toString("latin1");
    return /^version=[123](\n|\r\n)/.test(rest);
  }
  return false;
}
