// load-blob.cjs BLOB — inside the enforcement VM: load a compiled policy into the real kernel with
// src/apparmor/kernel-load.ts's writeBinaryPolicy (bundled alone by stage.sh as
// /enforce/kernel-load.cjs), the way the hook loads a stored blob without the parser.
// Prints "LOADED <bytes>" and exits 0, or "REFUSED <the HostError's message>" and exits 3 (the
// caller then falls back to the parser, as the hook's callers do on any throw).
"use strict";
const fs = require("node:fs");
const { writeBinaryPolicy } = require("/enforce/kernel-load.cjs");

const blob = fs.readFileSync(process.argv[2]);
try {
  writeBinaryPolicy({ kind: "kernel", dir: "/sys/kernel/security/apparmor", passDir: false }, blob, "replace");
  console.log(`LOADED ${blob.length}`);
} catch (err) {
  console.log(`REFUSED ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  process.exitCode = 3;
}
