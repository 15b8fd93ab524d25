/**
 * The compiled-policy store's parts in-process, without the parser: the include scanner and walk
 * (src/apparmor/include-closure.ts), the store's entries, eviction and removal
 * (src/apparmor/compiled-store.ts). The whole path with the real parser and hook is
 * compiled-store.test.ts.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CompiledStore, removeStoreEntries } from "../../src/apparmor/compiled-store.js";
import { removeStoreEntries as fromCacheModule } from "../../src/apparmor/cache.js";
import { scanDirectives, walkClosure, type ClosureInput } from "../../src/apparmor/include-closure.js";
import { compiledKey, type KeyInput } from "../../src/apparmor/compiled-key.js";
import { compiledStoreUse } from "../../src/apparmor/store-load.js";
import { parseConfig } from "../../src/config.js";
import { Layout } from "../../src/layout.js";

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-store-unit-"));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const NAME = "libvirt-aaaaaaaa-1111-4111-8111-111111111111";
const OTHER = "libvirt-bbbbbbbb-2222-4222-8222-222222222222";
const KEY1 = "1".repeat(64);
const KEY2 = "2".repeat(64);
const KEY3 = "3".repeat(64);

/** The start of a compiled policy as the kernel reads it (policy_unpack.c): enough for profileNameOf. */
function fakeBlob(profile: string, size = 64): Buffer {
  const name = Buffer.from(`${profile}\0`, "latin1");
  const len = Buffer.alloc(2);
  len.writeUInt16LE(name.length);
  const head = Buffer.concat([Buffer.from("\x04\x08\x00profile\x00\x07\x05", "latin1"), len, name]);
  return Buffer.concat([head, Buffer.alloc(Math.max(0, size - head.length), 0x5a)]);
}

describe("scanDirectives: every include and abi form the parser's lexer takes", () => {
  it("reads <search>, <\"quoted\">, \"relative\", bare, if exists, #include without a blank, abi", () => {
    const text = [
      "#include <tunables/global>",
      "  include <abstractions/base>",
      "  include if exists <local/x>",
      "  #include if exists <abstractions/base.d>",
      '  include <"with space/y">',
      '  #include "/abs/file"',
      "  #include<nospace/z>",
      "  include bare/name",
      "  abi <abi/3.0>,",
      "  /usr/include/** r,",
      "  # a comment that says include this is not a directive",
      '  "/var/lib/libvirt/images/x#include/etc/shadow" rwk,',
      '  "/var/lib/libvirt/images/y include /etc/gshadow" rwk,  # include /etc/passwd',
      "  /a/b, include <after/comma>",
    ].join("\n");
    expect(scanDirectives(text)).toEqual([
      { name: "tunables/global", search: true },
      { name: "abstractions/base", search: true },
      { name: "local/x", search: true },
      { name: "abstractions/base.d", search: true },
      { name: "with space/y", search: true },
      { name: "/abs/file", search: false },
      { name: "nospace/z", search: true },
      { name: "bare/name", search: false },
      { name: "abi/3.0", search: true, abi: true },
      { name: "after/comma", search: true },
    ]);
  });
});

describe("walkClosure", () => {
  function tree(files: Record<string, string>): void {
    for (const [p, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
      fs.writeFileSync(path.join(dir, p), text);
    }
  }
  const input0 = (over: Partial<ClosureInput> = {}): ClosureInput => ({
    profile: `${dir}/base/libvirt/p`,
    searchDirs: [`${dir}/base`],
    extraTrees: [],
    keyPath: (p) => p,
    cache: {},
    ...over,
  });

  const input = input0;

  it("follows includes like the parser: search order, directories, absent targets, each file once", () => {
    tree({
      "base/libvirt/p": "#include <a>\n#include <a>\ninclude if exists <gone>\n#include <d>\n",
      "base/a": "#include <b>\n",
      "base/b": "rules\n",
      "base/d/one": "x\n",
      "base/d/two": "#include <b>\n",
    });
    const c = walkClosure(input());
    expect(c.unsure).toBeUndefined();
    expect(c.material.map((l) => l.replace(/ [0-9a-f]{64}$/, " <sha>").replace(dir, "<dir>"))).toEqual([
      "F <dir>/base/libvirt/p <sha>",
      "R include <a> <dir>/base/a",
      "F <dir>/base/a <sha>",
      "R include <b> <dir>/base/b",
      "F <dir>/base/b <sha>",
      "A include <gone>",
      "R include <d> <dir>/base/d",
      'D <dir>/base/d ["one","two"]',
      "F <dir>/base/d/one <sha>",
      "F <dir>/base/d/two <sha>",
    ]);
    // A file appearing earlier in the search path wins, and changes the material.
    tree({ "stage/a": "other\n" });
    const staged = walkClosure(input({ searchDirs: [`${dir}/stage`, `${dir}/base`] }));
    expect(staged.material.some((l) => l.startsWith(`R include <a> ${dir}/stage/a`))).toBe(true);
  });

  it("reads a file again only when its stat signature changed", () => {
    tree({ "base/libvirt/p": "#include <a>\n", "base/a": "one\n" });
    // racyNs 0: these files were just written; the racy rule has its own test below.
    const input = (over: Partial<ClosureInput> = {}) => input0({ racyNs: 0n, ...over });
    const first = walkClosure(input());
    // A stale fact under the same signature is used as is (proof that nothing was read)...
    const forged = { ...first.cache, [`${dir}/base/a`]: { ...first.cache[`${dir}/base/a`]!, sha256: "f".repeat(64) } };
    expect(walkClosure(input({ cache: forged })).material).toContain(`F ${dir}/base/a ${"f".repeat(64)}`);
    // ...and a write (new ctime, even with the size and mtime kept) makes it read again. A write
    // in the same timestamp tick would keep the ctime (that is F1b's test below): wait one tick.
    for (const until = Date.now() + 25; Date.now() < until; );
    const st = fs.statSync(`${dir}/base/a`);
    fs.writeFileSync(`${dir}/base/a`, "two\n");
    fs.utimesSync(`${dir}/base/a`, st.atime, st.mtime);
    const again = walkClosure(input({ cache: forged }));
    expect(again.material).not.toContain(`F ${dir}/base/a ${"f".repeat(64)}`);
    expect(again.material.find((l) => l.startsWith(`F ${dir}/base/a `))).not.toBe(first.material.find((l) => l.startsWith(`F ${dir}/base/a `)));
  });

  it("F1b: does not trust a remembered fact of a file changed within the last 2 s (same signature, new content)", () => {
    tree({ "base/libvirt/p": "#include <a>\n", "base/a": "one\n" });
    const first = walkClosure(input());
    // The same signature with a stale hash, as a same-size rewrite inside one timestamp tick leaves it.
    const forged = { ...first.cache, [`${dir}/base/a`]: { ...first.cache[`${dir}/base/a`]!, sha256: "f".repeat(64) } };
    const again = walkClosure(input({ cache: forged }));
    expect(again.material).not.toContain(`F ${dir}/base/a ${"f".repeat(64)}`);
    expect(again.material).toEqual(first.material);
  });

  it("F2: never scans the guest's .files, never follows a relative name, reads only small regular files", () => {
    fs.writeFileSync(`${dir}/big`, Buffer.alloc(2 * 1024 * 1024, 0x61));
    fs.writeFileSync(`${dir}/secret`, "s\n");
    const files = `${dir}/base/libvirt/p.files`;
    tree({
      "base/libvirt/p": "#include <libvirt/p.files>\n",
      "base/libvirt/p.files": `# Generated by virt-aa-hook for guest web #include etc (u).\n  "/img/x#include${dir}/secret" rwk,\n#include ${dir}/secret\n`,
    });
    const guarded = walkClosure(input({ contentOnly: (real) => real === files }));
    expect(guarded.unsure).toBeUndefined();
    expect(Object.keys(guarded.cache).sort()).toEqual([`${dir}/base/libvirt/p`, files]);
    // Negative control: the same .files scanned as policy would follow its line-start directive.
    expect(Object.keys(walkClosure(input()).cache)).toContain(`${dir}/secret`);
    // A relative quoted or bare name is never resolved against the cwd: the closure is unsure.
    tree({ "base/libvirt/p": "  include etc\n" });
    expect(walkClosure(input()).unsure).toMatch(/a relative include name: "etc"/);
    // Beyond 1 MiB: unsure, the file is not read whole. A FIFO (a plain read would block): never opened.
    tree({ "base/libvirt/p": `#include ${dir}/big\n` });
    expect(walkClosure(input()).unsure).toMatch(/is larger than 1048576 bytes/);
    execFileSync("mkfifo", [`${dir}/fifo`]);
    tree({ "base/libvirt/p": `#include ${dir}/fifo\n` });
    expect(walkClosure(input()).material).toContain(`O ${dir}/fifo`);
  });

  it("is unsure (the store is not used) where it cannot follow the parser", () => {
    tree({ "base/libvirt/p": "#include <we\\ird>\n" });
    expect(walkClosure(input()).unsure).toMatch(/an include name with an escape/);
    expect(walkClosure(input({ profile: `${dir}/missing` })).unsure).toMatch(/is not a file/);
  });
});

describe("CompiledStore", () => {
  const store = (limits = { maxBytes: 1 << 30, maxAgeMs: 1e12 }) => new CompiledStore(`${dir}/store`, `${dir}/locks/store.lock`, limits);

  it("reads back what it wrote, bound to profile and key; anything else is a corrupt miss and is removed", () => {
    const s = store();
    expect(s.open()).toBeUndefined();
    s.write(NAME, KEY1, fakeBlob(NAME));
    const hit = s.read(NAME, KEY1);
    expect("blob" in hit && hit.blob.equals(fakeBlob(NAME))).toBe(true);
    expect(s.read(NAME, KEY2)).toEqual({ miss: "absent" });
    // A blob for another profile, stored with an honest header for this one: refused by the blob's own name.
    s.write(NAME, KEY2, fakeBlob(OTHER));
    expect(s.read(NAME, KEY2)).toEqual({ miss: "corrupt", why: `the compiled policy is for "${OTHER}"` });
    expect(fs.existsSync(s.entryPath(NAME, KEY2))).toBe(false);
    // Truncated.
    s.write(NAME, KEY3, fakeBlob(NAME));
    const file = s.entryPath(NAME, KEY3);
    fs.truncateSync(file, fs.statSync(file).size - 1);
    expect(s.read(NAME, KEY3)).toMatchObject({ miss: "corrupt", why: expect.stringMatching(/bytes where .* were stored/) });
    // Not ours at all.
    fs.writeFileSync(s.entryPath(NAME, KEY3), "garbage");
    expect(s.read(NAME, KEY3)).toEqual({ miss: "corrupt", why: "no entry header" });
    expect(() => s.entryPath("../x", KEY1)).toThrow();
  });

  it("evicts the least recently used entries beyond the size bound, under its lock", async () => {
    const s = store({ maxBytes: 2500, maxAgeMs: 1e12 });
    s.open();
    const now = Date.now();
    [KEY1, KEY2, KEY3].forEach((k, i) => {
      s.write(NAME, k, fakeBlob(NAME, 1000));
      const t = new Date(now - (3 - i) * 60_000);
      fs.utimesSync(s.entryPath(NAME, k), t, t);
    });
    // A hit marks KEY1 used: KEY2 is now the least recently used.
    expect("blob" in s.read(NAME, KEY1)).toBe(true);
    const removed = await s.evict();
    expect(removed.map((p) => path.basename(p))).toEqual([`${NAME}.${KEY2}`]);
    expect(fs.readdirSync(s.entriesDir).sort()).toEqual([`${NAME}.${KEY1}`, `${NAME}.${KEY3}`]);
    // Held by another process: nobody waits, nothing is evicted.
    fs.mkdirSync(`${dir}/locks/store.lock`, { recursive: true });
    const tight = store({ maxBytes: 0, maxAgeMs: 1e12 });
    expect(await tight.evict()).toEqual([]);
  });

  it("F8: keeps at most 4 entries per profile (its most recently used), so one guest's churn leaves others' alone", async () => {
    const s = store();
    s.open();
    const now = Date.now();
    const keys = ["1", "2", "3", "4", "5", "6"].map((c) => c.repeat(64));
    keys.forEach((k, i) => {
      s.write(NAME, k, fakeBlob(NAME));
      const t = new Date(now - (10 - i) * 60_000); // keys[0] oldest
      fs.utimesSync(s.entryPath(NAME, k), t, t);
    });
    s.write(OTHER, KEY1, fakeBlob(OTHER));
    const old = new Date(now - 60 * 60_000); // older than all of NAME's: the global LRU would take it first
    fs.utimesSync(s.entryPath(OTHER, KEY1), old, old);
    const removed = (await s.evict()).map((p) => path.basename(p)).sort();
    expect(removed).toEqual([`${NAME}.${keys[0]}`, `${NAME}.${keys[1]}`]);
    expect(fs.readdirSync(s.entriesDir).sort()).toEqual([...keys.slice(2).map((k) => `${NAME}.${k}`), `${OTHER}.${KEY1}`].sort());
  });

  it("removeStoreEntries (prune) removes one profile's entries, temporaries and manifest, nothing of another's", () => {
    const s = store();
    s.open();
    s.write(NAME, KEY1, fakeBlob(NAME));
    s.write(NAME, KEY2, fakeBlob(NAME));
    s.write(OTHER, KEY1, fakeBlob(OTHER));
    fs.writeFileSync(`${s.entriesDir}/.${NAME}.${KEY3}.tmp-1-abcd`, "x");
    s.writeRecord(`manifests/${NAME}.json`, {});
    s.writeRecord(`manifests/${OTHER}.json`, {});
    expect(fromCacheModule).toBe(removeStoreEntries);
    const removed = removeStoreEntries(`${dir}/store`, NAME).map((p) => path.relative(`${dir}/store`, p)).sort();
    expect(removed).toEqual([`entries/.${NAME}.${KEY3}.tmp-1-abcd`, `entries/${NAME}.${KEY1}`, `entries/${NAME}.${KEY2}`, `manifests/${NAME}.json`].sort());
    expect(fs.readdirSync(s.entriesDir)).toEqual([`${OTHER}.${KEY1}`]);
    expect(fs.readdirSync(`${dir}/store/manifests`)).toEqual([`${OTHER}.json`]);
  });

  it("refuses a store directory another user owns", () => {
    fs.mkdirSync(`${dir}/store`, { mode: 0o700 });
    fs.chownSync(`${dir}/store`, 12345, 12345);
    expect(store().open()).toMatch(/is owned by uid 12345, not 0$/);
  });
});

describe("settings and the kernel's features", () => {
  it("compiled_store* are parsed, bounded, and are the store's limits", () => {
    const c = parseConfig('compiled_store_max_size = "3"\ncompiled_store_max_age = 2\n', "/f");
    const use = compiledStoreUse(new Layout(dir), c, [])!;
    expect(use.store.limits).toEqual({ maxBytes: 3 * 1024 * 1024, maxAgeMs: 2 * 24 * 3600 * 1000 });
    expect(use.store.dir).toBe(`${dir}/var/cache/virt-aa-hook`);
    expect(compiledStoreUse(new Layout(dir), parseConfig('compiled_store = "no"\n', "/f"), [])).toBeUndefined();
    expect(() => parseConfig('compiled_store_max_size = "0"\n', "/f")).toThrow(/compiled_store_max_size: must be a whole number of MiB from 1 to 65536, not "0"/);
    expect(() => parseConfig('compiled_store_max_age = "5000"\n', "/f")).toThrow(/compiled_store_max_age: must be a whole number of days from 1 to 3650, not "5000"/);
    expect(() => parseConfig('compiled_store = "maybe"\n', "/f")).toThrow(/compiled_store: must be yes or no/);
  });

  it("without a features file the kernel's features tree is keyed, hashed once per boot", async () => {
    const store = new CompiledStore(`${dir}/store`, `${dir}/lock`, { maxBytes: 1 << 30, maxAgeMs: 1e12 });
    expect(store.open()).toBeUndefined();
    fs.mkdirSync(`${dir}/base/libvirt`, { recursive: true });
    fs.writeFileSync(`${dir}/base/libvirt/${NAME}`, `profile ${NAME} {}\n`);
    fs.mkdirSync(`${dir}/features/file`, { recursive: true });
    fs.writeFileSync(`${dir}/features/file/mask`, "create read write exec append\n");
    fs.writeFileSync(`${dir}/boot_id`, "boot-1\n");
    const input: KeyInput = {
      store,
      parserPath: "/usr/sbin/apparmor_parser",
      profileName: NAME,
      profile: `${dir}/base/libvirt/${NAME}`,
      root: "/",
      baseDir: `${dir}/base`,
      complain: false,
      kernelFeaturesDir: `${dir}/features`,
      bootIdFile: `${dir}/boot_id`,
      parserConf: `${dir}/no-parser.conf`,
    };
    const key = async () => {
      const k = await compiledKey(input);
      if (!("key" in k)) throw new Error(k.unsure);
      return k.key;
    };
    const first = await key();
    expect(await key()).toBe(first);
    // Within one boot the kernel's features cannot change: remembered, not read again.
    fs.writeFileSync(`${dir}/features/file/mask`, "create read\n");
    expect(await key()).toBe(first);
    // A new boot reads them again.
    fs.writeFileSync(`${dir}/boot_id`, "boot-2\n");
    const second = await key();
    expect(second).not.toBe(first);
    // Complain mode is its own key; so is a parser.conf that appears.
    expect(await compiledKey({ ...input, complain: true })).not.toEqual({ key: second });
    fs.writeFileSync(`${dir}/no-parser.conf`, "Optimize=no-expr-simplify\n");
    expect(await key()).not.toBe(second);
    fs.writeFileSync(`${dir}/no-parser.conf`, "base /elsewhere\n");
    expect(await compiledKey(input)).toEqual({ unsure: `${dir}/no-parser.conf sets base` });
  });
});
