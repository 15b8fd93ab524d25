import fs from "node:fs";

/** The whole of FILE, or of stdin for "-". Size-bounded by the domain parser, not here. */
export function readInput(file: string): Buffer {
  return fs.readFileSync(file === "-" ? 0 : file);
}
