/** The hook's own SHA-256 (src/lazy.ts, so that a hook call need not load node:crypto) is SHA-256. */
import crypto from "node:crypto";
import fs from "node:fs";
import { describe, expect, it } from "vitest";
import { randomHex, sha256Hex } from "../../src/lazy.js";

const ref = (d: string | Buffer) => crypto.createHash("sha256").update(d).digest("hex");

describe("sha256Hex", () => {
  it("known vectors", () => {
    expect(sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")).toBe(
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    );
  });

  it("agrees with node:crypto at every length around the block boundaries and on real files", () => {
    for (let n = 0; n < 300; n++) {
      const b = crypto.randomBytes(n);
      expect(sha256Hex(b), `length ${n}`).toBe(ref(b));
    }
    for (const n of [1000, 4095, 65536, 1_000_003]) {
      const b = crypto.randomBytes(n);
      expect(sha256Hex(b), `length ${n}`).toBe(ref(b));
    }
    const text = "profile libvirt-x {\n  \"/var/lib/libvirt/images/\u00e9t\u00e9 \u{1f600}.qcow2\" rwk,\n}\n";
    expect(sha256Hex(text)).toBe(ref(text));
    const tmpl = fs.readFileSync("install/apparmor/libvirt/TEMPLATE.qemu");
    expect(sha256Hex(tmpl)).toBe(ref(tmpl));
    expect(sha256Hex(tmpl.toString("utf8"))).toBe(ref(tmpl.toString("utf8")));
  });
});

describe("randomHex", () => {
  it("gives fresh hex of the asked length", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const h = randomHex(6);
      expect(h).toMatch(/^[0-9a-f]{12}$/);
      seen.add(h);
    }
    expect(seen.size).toBe(200);
  });
});
