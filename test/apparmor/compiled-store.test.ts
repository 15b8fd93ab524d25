/**
 * The compiled-policy store (src/apparmor/compiled-store.ts, docs/compiled-store.md) through the
 * real hook (hooks/qemu on the built bundle) and the real apparmor_parser in temp roots whose fake
 * securityfs the compiled policy is written into. Every invalidation is shown as a compile after a
 * change, against a hit for the same call without it; every hit as a load with no compile.
 * Needs `npm run build` first.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { profileNameOf } from "../../src/apparmor/kernel-load.js";
import { defaultTestConfig, FAKE_SECURITYFS, FEATURES, makeTestRoot, PARSER, type TestRoot } from "../lifecycle/fixture.js";
import { callHook, installHook } from "../lifecycle/harness.js";
import { guestXml, op, UUID_A, UUID_B } from "../lifecycle/guests.js";

const STORE = "/var/cache/virt-aa-hook";
const ENTRIES = `${STORE}/entries`;
const LOG = "/var/log/libvirt/virt-aa-hook.log";
const REPLACE = `${FAKE_SECURITYFS}/.replace`;
const TEMPLATE = "/etc/apparmor.d/libvirt/TEMPLATE.qemu";
const NAME_A = `libvirt-${UUID_A}`;
const NAME_B = `libvirt-${UUID_B}`;
const DISK_A = "/var/lib/libvirt/images/a.img";
const DISK_B = "/var/lib/libvirt/images/b.img";
const DISK_A2 = "/var/lib/libvirt/images/a2.img";

let t: TestRoot;
let config: Record<string, string>;

beforeEach(() => {
  t = makeTestRoot("vaah-store-");
  installHook(t);
  config = { ...defaultTestConfig(), log_level: "debug" };
  t.writeConfig(config);
  fs.mkdirSync(t.at("/var/lib/libvirt/images"), { recursive: true });
  for (const d of [DISK_A, DISK_B, DISK_A2]) fs.writeFileSync(t.at(d), Buffer.alloc(4096));
});
afterEach(() => t.remove());

// Shareable disks: two guests with the same XML (but the UUID) may then run at once.
const xmlA = (disks = [DISK_A]) => guestXml({ name: "vmA", uuid: UUID_A, id: 7, disks: disks.map((p) => ({ path: p, shareable: true })) });
// B is A with another UUID (so only one of them runs at a time: same name, same pid file).
const xmlB = (name = "vmA") => guestXml({ name, uuid: UUID_B, id: 7, disks: [{ path: DISK_A, shareable: true }] });

/** One hook call that must succeed; returns what the compiled store said about it (its log notes). */
function hook(operation: string, xml: string, name = "vmA"): string[] {
  const before = logLines().length;
  const r = callHook(t, op(name, operation), xml);
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
  return logLines()
    .slice(before)
    .filter((l) => l.includes("compiled store: "))
    .map((l) => (JSON.parse(/ op=\S+ (".*")$/.exec(l)![1]!) as string).replace(/^compiled store: /, ""));
}
function logLines(): string[] {
  return t.exists(LOG) ? t.read(LOG).trimEnd().split("\n") : [];
}
/** What the store did for one call: "hit", "compiled" or the whole note. */
function outcome(notes: string[]): string {
  if (notes.length === 1 && /^loaded \S+ from [0-9a-f]{16} without compiling \(key [0-9.]+ ms, cpu [0-9.]+ ms\)$/.test(notes[0]!)) return "hit";
  if (notes.some((n) => /^compiled \S+ and stored it as [0-9a-f]{16} \(key [0-9.]+ ms, cpu [0-9.]+ ms\)$/.test(n))) return "compiled";
  return notes.join(" | ");
}
const prepare = (xml = xmlA()) => outcome(hook("prepare", xml));
const release = (xml = xmlA()) => hook("release", xml);
const entries = () => (t.exists(ENTRIES) ? fs.readdirSync(t.at(ENTRIES)).sort() : []);
/** The policy the fake kernel got last (the parser and writeBinaryPolicy write from offset 0). */
const loaded = () => fs.readFileSync(t.at(REPLACE));
const blobOf = (entry: string) => {
  const buf = fs.readFileSync(t.at(`${ENTRIES}/${entry}`));
  return buf.subarray(buf.indexOf(0x0a) + 1);
};
/** A root's own copy of an include directory (the fixture links a copy shared by every root). */
function ownCopy(sub: string): string {
  const link = t.at(`/etc/apparmor.d/${sub}`);
  const shared = fs.readlinkSync(link);
  fs.rmSync(link);
  fs.cpSync(shared, link, { recursive: true });
  return link;
}
/** The guest was started and stopped once: its compile is in the store, its files are gone. */
function warm(): void {
  expect(prepare()).toBe("compiled");
  release();
}

describe("hits: an unchanged profile is loaded without compiling", () => {
  it("restart after release: the stored compile is what the kernel gets, and what the parser makes", () => {
    warm();
    expect(entries()).toEqual([expect.stringMatching(new RegExp(`^${NAME_A}\\.[0-9a-f]{64}$`))]);
    fs.writeFileSync(t.at(REPLACE), "");
    expect(prepare()).toBe("hit");
    const stored = blobOf(entries()[0]!);
    expect(loaded().equals(stored)).toBe(true);
    expect(profileNameOf(stored)).toBe(NAME_A);
    // The same bytes as the parser's own compile of the files now on disk.
    const r = spawnParser(["-Q", "-K", "-S", "-M", t.at(FEATURES), "--base", t.at("/etc/apparmor.d"), t.at(`/etc/apparmor.d/libvirt/${NAME_A}`)]);
    expect(r.equals(stored)).toBe(true);
    // An unchanged prepare of the running guest: a hit too.
    expect(prepare()).toBe("hit");
    expect(entries()).toHaveLength(1);
  });

  it("reboot: a fresh securityfs and /run, the store kept: running guests' and released guests' profiles load without compiling", () => {
    expect(prepare()).toBe("compiled");
    expect(prepare(xmlB("vmB"))).toBe("compiled");
    release(xmlB("vmB"));
    // The host goes down without a release of A; /run is a tmpfs, the kernel forgets every profile.
    fs.rmSync(t.at("/run"), { recursive: true, force: true });
    fs.mkdirSync(t.at(FAKE_SECURITYFS), { recursive: true });
    fs.writeFileSync(t.at(REPLACE), "");
    fs.writeFileSync(t.at(`${FAKE_SECURITYFS}/.remove`), "");
    expect(prepare()).toBe("hit");
    expect(profileNameOf(loaded())).toBe(NAME_A);
    expect(prepare(xmlB("vmB"))).toBe("hit");
    expect(profileNameOf(loaded())).toBe(NAME_B);
  });

  it("two guests whose XML differs only in the UUID never share a compile", () => {
    warm();
    expect(prepare(xmlB())).toBe("compiled");
    const names = entries();
    expect(names.map((n) => n.split(".")[0])).toEqual([NAME_A, NAME_B]);
    expect(profileNameOf(blobOf(names[0]!))).toBe(NAME_A);
    expect(profileNameOf(blobOf(names[1]!))).toBe(NAME_B);
    // B's load put B's compile in the kernel, not A's.
    expect(profileNameOf(loaded())).toBe(NAME_B);
    expect(prepare(xmlB())).toBe("hit");
    expect(profileNameOf(loaded())).toBe(NAME_B);
  });
});

describe("invalidation: a change to any input compiles again (each against a hit without it)", () => {
  it("template edit", () => {
    warm();
    fs.appendFileSync(t.at(TEMPLATE), "# a comment is content too\n");
    expect(prepare()).toBe("compiled");
    release();
    expect(prepare()).toBe("hit");
    expect(entries()).toHaveLength(2);
  });

  it("abstraction edit with its size and mtime kept (the parser's own cache would miss it; the stat signature's ctime does not)", () => {
    const dir = ownCopy("abstractions");
    warm();
    const file = `${dir}/libvirt-qemu`;
    const st = fs.statSync(file);
    const text = fs.readFileSync(file, "utf8");
    expect(text).toContain("/dev/net/tun rw,");
    fs.writeFileSync(file, text.replace("/dev/net/tun rw,", "/dev/net/tuN rw,"));
    fs.utimesSync(file, st.atime, st.mtime);
    expect(fs.statSync(file).size).toBe(st.size);
    expect(prepare()).toBe("compiled");
    const blobs = entries().map(blobOf);
    expect(blobs).toHaveLength(2);
    expect(blobs[0]!.equals(blobs[1]!)).toBe(false);
  });

  it("a new `include if exists` target (abstractions/base.d) that was absent", () => {
    const dir = ownCopy("abstractions");
    warm();
    expect(fs.existsSync(`${dir}/base.d`)).toBe(false);
    release();
    expect(prepare()).toBe("hit");
    release();
    fs.mkdirSync(`${dir}/base.d`);
    fs.writeFileSync(`${dir}/base.d/site`, "  /srv/site-wide/** r,\n");
    expect(prepare()).toBe("compiled");
  });

  it("a new local override the template includes if it exists", () => {
    const template = t.read(TEMPLATE).replace("#include <abstractions/libvirt-qemu>", "#include <abstractions/libvirt-qemu>\n  include if exists <local/virt-aa-hook-guests>");
    fs.writeFileSync(t.at(TEMPLATE), template);
    const local = ownCopy("local");
    warm();
    expect(prepare()).toBe("hit");
    release();
    fs.writeFileSync(`${local}/virt-aa-hook-guests`, "  /srv/shared/** r,\n");
    expect(prepare()).toBe("compiled");
    // And its later edit.
    release();
    fs.appendFileSync(`${local}/virt-aa-hook-guests`, "  /srv/other/** r,\n");
    expect(prepare()).toBe("compiled");
  });

  it("the parser's identity: another path to the same binary, then the same path touched", () => {
    warm();
    const copy = t.at("/opt/parser/apparmor_parser");
    fs.mkdirSync(path.dirname(copy), { recursive: true });
    fs.copyFileSync(PARSER, copy);
    fs.chmodSync(copy, 0o755);
    t.writeConfig({ ...config, parser: copy });
    expect(prepare()).toBe("compiled");
    release();
    expect(prepare()).toBe("hit");
    release();
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(copy, later, later);
    expect(prepare()).toBe("compiled");
    // The version is asked once per signature and remembered.
    expect(JSON.parse(t.read(`${STORE}/parser.json`))).toMatchObject({ path: copy, version: expect.stringMatching(/^AppArmor parser version /) });
  });

  it("the kernel's features (the features file)", () => {
    warm();
    fs.appendFileSync(t.at(FEATURES), "\n");
    expect(prepare()).toBe("compiled");
  });

  it("complain mode: its own compile; back to enforce hits the enforce one", () => {
    warm();
    t.writeConfig({ ...config, mode: "complain" });
    expect(prepare()).toBe("compiled");
    release();
    const [e1, e2] = entries().map(blobOf);
    expect(e1!.equals(e2!)).toBe(false);
    t.writeConfig({ ...config, mode: "enforce" });
    expect(prepare()).toBe("hit");
  });

  it("a change of the guest's .files (one more disk)", () => {
    warm();
    expect(prepare(xmlA([DISK_A, DISK_A2]))).toBe("compiled");
    release(xmlA([DISK_A, DISK_A2]));
    expect(prepare()).toBe("hit");
  });

  it("the profile name: a guest with another UUID is never served another guest's compile", () => {
    warm();
    expect(prepare(xmlB())).toBe("compiled");
  });
});

describe("the store protects itself", () => {
  it("is root's and private (0700), and a loosened directory is tightened again", () => {
    warm();
    for (const d of [STORE, ENTRIES, `${STORE}/manifests`]) expect(fs.statSync(t.at(d)).mode & 0o777).toBe(0o700);
    expect(fs.statSync(t.at(`${ENTRIES}/${entries()[0]}`)).mode & 0o777).toBe(0o600);
    fs.chmodSync(t.at(STORE), 0o755);
    expect(prepare()).toBe("hit");
    expect(fs.statSync(t.at(STORE)).mode & 0o777).toBe(0o700);
  });

  it("a corrupt entry is removed and compiled again; the guest starts", () => {
    warm();
    const file = t.at(`${ENTRIES}/${entries()[0]}`);
    const buf = fs.readFileSync(file);
    buf.writeUInt8(buf.readUInt8(buf.length - 100) ^ 0xff, buf.length - 100);
    fs.writeFileSync(file, buf);
    const notes = hook("prepare", xmlA());
    expect(notes[0]).toMatch(new RegExp(`^removed the entry [0-9a-f]{16} of ${NAME_A}: sha256 differs from the one stored$`));
    expect(outcome(notes.slice(1))).toBe("compiled");
    expect(profileNameOf(loaded())).toBe(NAME_A);
  });

  it("another guest's compile put under this guest's name is refused (header and blob name their profile)", () => {
    warm();
    expect(prepare(xmlB())).toBe("compiled");
    release(xmlB());
    const [a, b] = entries();
    // B's entry file now holds A's compile (its header and blob say A).
    fs.copyFileSync(t.at(`${ENTRIES}/${a}`), t.at(`${ENTRIES}/${b}`));
    const notes = hook("prepare", xmlB());
    expect(notes[0]).toMatch(new RegExp(`^removed the entry [0-9a-f]{16} of ${NAME_B}: compiled for "${NAME_A}"$`));
    expect(profileNameOf(loaded())).toBe(NAME_B);
  });

  it("compiled_store = \"no\": the parser loads, nothing is stored", () => {
    t.writeConfig({ ...config, compiled_store: "no" });
    expect(hook("prepare", xmlA())).toEqual([]);
    expect(t.exists(STORE)).toBe(false);
    expect(profileNameOf(loaded())).toBe(NAME_A);
  });

  it("compiled_store_max_age evicts entries unused for longer, after a miss", () => {
    warm();
    const old = t.at(`${ENTRIES}/${entries()[0]}`);
    const when = new Date(Date.now() - 3 * 24 * 3600 * 1000);
    fs.utimesSync(old, when, when);
    t.writeConfig({ ...config, compiled_store_max_age: "2" });
    const notes = hook("prepare", xmlB());
    expect(notes).toContain("evicted 1 file(s)");
    expect(fs.existsSync(old)).toBe(false);
    // Negative control: 4 days keeps a 3-day-old entry.
    release(xmlB());
    warm();
    fs.utimesSync(t.at(`${ENTRIES}/${entries().find((e) => e.startsWith(NAME_A))}`), when, when);
    t.writeConfig({ ...config, compiled_store_max_age: "4" });
    expect(prepare(xmlA([DISK_A, DISK_A2]))).toBe("compiled");
    expect(entries()).toHaveLength(3);
  });
});

describe("races and failures: the store never stores a stale compile and never fails a start", () => {
  it("F1: an override edited between the key and the compile: loaded, not stored; after the revert the next start compiles again", () => {
    const template = t.read(TEMPLATE).replace("#include <abstractions/libvirt-qemu>", "#include <abstractions/libvirt-qemu>\n  include if exists <local/virt-aa-hook-guests>");
    fs.writeFileSync(t.at(TEMPLATE), template);
    const local = `${ownCopy("local")}/virt-aa-hook-guests`;
    fs.writeFileSync(local, "  /srv/narrow/** r,\n");
    // The one fake of this test: a wrapper around the real parser that, on its first compile
    // (`-o`), widens the override before exec'ing the parser: the admin's save landing inside the
    // window between the key and the parser's read, made deterministic.
    const mark = t.at("/opt/parser/edited");
    const wrapper = t.at("/opt/parser/wrap");
    fs.mkdirSync(path.dirname(wrapper), { recursive: true });
    fs.writeFileSync(wrapper, `#!/bin/sh\ncase " $* " in *" -o "*) if [ ! -e '${mark}' ]; then : > '${mark}'; printf '  /srv/debug/** rw,\\n' >> '${local}'; fi;; esac\nexec '${PARSER}' "$@"\n`);
    fs.chmodSync(wrapper, 0o755);
    t.writeConfig({ ...config, parser: wrapper });
    expect(hook("prepare", xmlA())).toEqual([expect.stringMatching(new RegExp(`^compiled ${NAME_A}; not stored: its inputs changed during the compile$`))]);
    expect(fs.readFileSync(local, "utf8")).toContain("/srv/debug/");
    const wide = loaded(); // what the parser made of the widened files: loaded, not stored
    expect(entries().filter((e) => !e.startsWith("."))).toEqual([]);
    release();
    fs.writeFileSync(local, "  /srv/narrow/** r,\n"); // the revert
    expect(prepare()).toBe("compiled");
    const stored = entries().filter((e) => e.startsWith(`${NAME_A}.`));
    expect(stored).toHaveLength(1);
    expect(blobOf(stored[0]!).equals(wide)).toBe(false);
    expect(loaded().equals(wide)).toBe(false);
    release();
    expect(prepare()).toBe("hit");
  });

  it("F2: an `#include` in a disk path or the guest's name (the .files' text) is never followed: the store is used, the named file is never read", () => {
    const secret = t.at("/secret-host-file");
    fs.writeFileSync(secret, "  /secret/** rw,\n");
    const disk = `/var/lib/libvirt/images/x#include${secret}`;
    fs.mkdirSync(path.dirname(t.at(disk)), { recursive: true });
    fs.writeFileSync(t.at(disk), Buffer.alloc(4096));
    const xml = guestXml({ name: "web #include etc", uuid: UUID_A, id: 7, disks: [{ path: disk, shareable: true }] });
    expect(outcome(hook("prepare", xml, "web #include etc"))).toBe("compiled");
    const files = t.read(`/etc/apparmor.d/libvirt/${NAME_A}.files`);
    expect(files).toContain(`#include${secret}`);
    expect(files).toContain("web #include etc");
    const manifest = JSON.parse(t.read(`${STORE}/manifests/${NAME_A}.json`)) as { facts: Record<string, unknown> };
    const read = Object.keys(manifest.facts);
    // Neither the disk path's target nor a cwd-relative `etc` (from the name in the header comment).
    expect(read.filter((p) => p === secret || (p.endsWith("/etc") && !p.endsWith("/tunables/etc")))).toEqual([]);
  });

  it("a parser that writes no compiled policy (parser = /bin/true): the parser path, the start succeeds, nothing stored", () => {
    t.writeConfig({ ...config, parser: "/bin/true" });
    const notes = hook("prepare", xmlA());
    expect(notes).toEqual([expect.stringMatching(new RegExp(`^cannot compile into the store: .*ENOENT.*; ${NAME_A} loaded by apparmor_parser$`))]);
    expect(entries().filter((e) => !e.startsWith("."))).toEqual([]);
  });

  it("F7: a full store filesystem (a 512 KiB tmpfs, filled): a changed guest still starts, by the parser", () => {
    fs.mkdirSync(t.at(STORE), { recursive: true });
    const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", t.at(STORE)]);
    if (mounted.status !== 0) throw new Error(`cannot mount a tmpfs (this test needs root): ${mounted.stderr.toString()}`);
    try {
      warm();
      const filler = t.at(`${STORE}/filler`);
      const fd = fs.openSync(filler, "w");
      try {
        for (;;) fs.writeSync(fd, Buffer.alloc(4096));
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe("ENOSPC");
      } finally {
        fs.closeSync(fd);
      }
      const notes = hook("prepare", xmlA([DISK_A, DISK_A2]));
      expect(notes.some((n) => new RegExp(`^cannot compile into the store: .*; ${NAME_A} loaded by apparmor_parser$`).test(n))).toBe(true);
      expect(profileNameOf(loaded())).toBe(NAME_A);
    } finally {
      spawnSync("umount", [t.at(STORE)]);
    }
  });
});

function spawnParser(args: string[]): Buffer {
  const r = spawnSync(PARSER, args, { env: { LC_ALL: "C" } });
  if (r.status !== 0) throw new Error(r.stderr.toString());
  return r.stdout;
}
