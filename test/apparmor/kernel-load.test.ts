// writeBinaryPolicy against a FAKE securityfs: `.replace` here is a plain file (the one
// test/lifecycle/fixture.ts makes), which proves only the file-interface side (what is opened, how,
// the bytes written, in how many write(2) calls, the errors). That the kernel accepts the blob and
// enforces what the parser's own load enforces is proven by the enforcement VM (test/enforce,
// checks `K-*`), which boots a real AppArmor kernel.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildSync } from "esbuild";
import { afterAll, describe, expect, it } from "vitest";
import { profileNameOf, writeBinaryPolicy } from "../../src/apparmor/kernel-load.js";
import type { LoadTarget } from "../../src/apparmor/environment.js";
import { HostError } from "../../src/errors.js";
import { FAKE_SECURITYFS, FEATURES, PARSER, makeTestRoot } from "../lifecycle/fixture.js";

const root = makeTestRoot("vaah-kload-");
afterAll(() => root.remove());
const target: LoadTarget = { kind: "subdomainfs", dir: root.at(FAKE_SECURITYFS), passDir: true };
const replaceFile = root.at(`${FAKE_SECURITYFS}/.replace`);

/** A real compiled policy: what `apparmor_parser -S` prints (and its cache stores). */
function compile(name: string, rules: string): Buffer {
  const src = path.join(root.root, `${name}.src`);
  fs.writeFileSync(src, `profile ${name} {\n${rules}\n}\n`);
  return execFileSync(PARSER, ["-Q", "-S", "-M", root.at(FEATURES), src], { env: { LC_ALL: "C" } });
}

const blob = compile("libvirt-0f1e2d3c-aaaa-bbbb-cccc-000000000001", "  /var/lib/libvirt/images/a.img rwk,");

describe("writeBinaryPolicy (fake securityfs: a plain file)", () => {
  it("writes the whole blob, byte for byte, to <dir>/.replace", () => {
    fs.writeFileSync(replaceFile, "");
    writeBinaryPolicy(target, blob, "replace");
    expect(fs.readFileSync(replaceFile).equals(blob)).toBe(true);
  });

  it("opens like libapparmor (O_WRONLY, no O_TRUNC): a longer old content stays past the blob", () => {
    // The kernel's file has no content; the fake's leftover bytes show the open did not truncate,
    // as apparmor_parser does not (kernel_interface.c write_policy_to_iface).
    fs.writeFileSync(replaceFile, Buffer.alloc(blob.length + 10, 0x41));
    writeBinaryPolicy(target, blob, "replace");
    const after = fs.readFileSync(replaceFile);
    expect(after.length).toBe(blob.length + 10);
    expect(after.subarray(0, blob.length).equals(blob)).toBe(true);
  });

  it("refuses to create .replace: a directory without it is not an AppArmor filesystem", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-kload-nofs-"));
    try {
      expect(() => writeBinaryPolicy({ kind: "subdomainfs", dir, passDir: true }, blob, "replace")).toThrow(
        new HostError(`cannot load libvirt-0f1e2d3c-aaaa-bbbb-cccc-000000000001: ${dir}/.replace: ENOENT (no such file or directory)`),
      );
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports a write error with its errno (here EISDIR: .replace is a directory)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-kload-dir-"));
    try {
      fs.mkdirSync(path.join(dir, ".replace"));
      expect(() => writeBinaryPolicy({ kind: "kernel", dir, passDir: false }, blob, "replace")).toThrow(
        /^cannot load libvirt-0f1e2d3c-aaaa-bbbb-cccc-000000000001: .*\/\.replace: EISDIR \(illegal operation on a directory\)$/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses an empty blob without touching the file", () => {
    fs.writeFileSync(replaceFile, "before");
    expect(() => writeBinaryPolicy(target, Buffer.alloc(0), "replace")).toThrow(
      new HostError(`cannot load compiled policy (0 bytes): ${replaceFile}: empty policy`),
    );
    expect(fs.readFileSync(replaceFile, "utf8")).toBe("before");
  });

  it("writes a large policy (4 MiB) in exactly one write(2) (strace of the real module)", () => {
    // The module bundled alone and run under strace: the syscalls, not a mock, are counted.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-kload-strace-"));
    try {
      buildSync({
        entryPoints: [path.resolve(__dirname, "../../src/apparmor/kernel-load.ts")],
        bundle: true,
        platform: "node",
        format: "cjs",
        outfile: path.join(dir, "kernel-load.cjs"),
        logLevel: "silent",
      });
      const big = Buffer.concat([blob, Buffer.alloc(4 * 1024 * 1024 - blob.length, 0x5a)]);
      fs.writeFileSync(path.join(dir, "blob"), big);
      fs.writeFileSync(path.join(dir, ".replace"), "");
      fs.writeFileSync(
        path.join(dir, "run.cjs"),
        `const fs = require("node:fs");
const { writeBinaryPolicy } = require("./kernel-load.cjs");
const blob = fs.readFileSync(${JSON.stringify(path.join(dir, "blob"))});
writeBinaryPolicy({ kind: "subdomainfs", dir: ${JSON.stringify(dir)}, passDir: true }, blob, "replace");
`,
      );
      const log = path.join(dir, "strace.log");
      const r = spawnSync("strace", ["-f", "-e", "trace=openat,write,pwrite64,writev,pwritev", "-e", "abbrev=all", "-s", "0", "-o", log, process.execPath, path.join(dir, "run.cjs")]);
      expect(r.status).toBe(0);
      const lines = fs.readFileSync(log, "utf8").split("\n");
      const openLine = lines.find((l) => l.includes("/.replace"));
      expect(openLine).toMatch(/openat\(AT_FDCWD, ".*\/\.replace", O_WRONLY\|O_CLOEXEC\) = (\d+)/);
      const fd = /= (\d+)$/.exec(openLine!)![1];
      const writes = lines.filter((l) => new RegExp(`^\\d+ +(p?write(64|v)?|pwritev)\\(${fd},`).test(l));
      expect(writes).toEqual([expect.stringMatching(new RegExp(`write(64)?\\(${fd}, ""\\.\\.\\., ${big.length}(, -?\\d+)?\\) += ${big.length}$`))]);
      expect(fs.readFileSync(path.join(dir, ".replace")).equals(big)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("profileNameOf", () => {
  it("reads the profile name from a real compiled policy", () => {
    expect(profileNameOf(blob)).toBe("libvirt-0f1e2d3c-aaaa-bbbb-cccc-000000000001");
  });

  it("gives undefined for bytes that are not a policy, and for a blob cut inside the name", () => {
    expect(profileNameOf(Buffer.from("not a policy"))).toBeUndefined();
    const cut = blob.indexOf(Buffer.from("libvirt-0f1e")) + 5;
    expect(profileNameOf(blob.subarray(0, cut))).toBeUndefined();
  });
});
