/**
 * Untrusted bytes (a path or command name a guest's QEMU chose, as the kernel logged it) → text
 * that is safe on a terminal and unambiguous: printable ASCII as is, a backslash doubled, a double
 * quote as `\x22` (a quoted path cannot end early), every other byte (control characters, escape
 * sequences, DEL, anything non-ASCII) as `\xNN`. Nothing of it is ever interpreted: only printed.
 */
export function visible(bytes: Buffer | string): string {
  const buf = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
  let out = "";
  for (const b of buf) {
    if (b === 0x5c) out += "\\\\";
    else if (b === 0x22) out += "\\x22";
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** Whether `visible` leaves the bytes as they are. */
export function isPlain(bytes: Buffer): boolean {
  return bytes.every((b) => b >= 0x20 && b <= 0x7e && b !== 0x5c && b !== 0x22);
}
