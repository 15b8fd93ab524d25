/**
 * status's QEMU column: what each guest's QEMU runs as, read from a fake /proc under the root
 * (pid from libvirt's pid file), for guests we manage and guests we do not; names escaped.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { formatStatusRows, statusRows } from "../../src/cli/commands/status.js";
import { judge } from "../../src/doctor/confinement.js";
import { displayName, shellQuote } from "../../src/doctor/display.js";
import { Layout } from "../../src/layout.js";
import { sha256 } from "../../src/store/guest-files.js";
import { writeState } from "../../src/store/state.js";

const U1 = "11111111-1111-4111-8111-111111111111";
const U2 = "22222222-2222-4222-8222-222222222222";
const U3 = "33333333-3333-4333-8333-333333333333";
const U4 = "44444444-4444-4444-8444-444444444444";
const BUNDLE = path.resolve("dist/virt-aa-hook.cjs");
let root: string;
let layout: Layout;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-qemu-status-"));
  layout = new Layout(root);
  fs.mkdirSync(layout.host(layout.profilesDir), { recursive: true });
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const put = (hostPath: string, text: string) => {
  fs.mkdirSync(path.dirname(layout.host(hostPath)), { recursive: true });
  fs.writeFileSync(layout.host(hostPath), text);
};
function managed(uuid: string, name: string) {
  put(layout.profilePath(uuid), "p");
  put(layout.filesPath(uuid), "f");
  writeState(layout.host(`${layout.stateDir}/${uuid}.json`), {
    version: 1, uuid, name, profileName: `libvirt-${uuid}`, profileSha256: sha256("p"), filesSha256: sha256("f"),
    loadedAs: "enforce", updated: "2025-01-01T00:00:00.000Z",
  });
}
/** A running QEMU as libvirt leaves it: pid file, status XML with the UUID, the kernel's label. */
function running(name: string, pid: number, uuid: string, label: string) {
  put(`/run/libvirt/qemu/${name}.pid`, `${pid}\n`);
  put(`/run/libvirt/qemu/${name}.xml`, `<domstatus state='running' pid='${pid}'>\n  <domain type='kvm' id='1'>\n    <name>${name}</name>\n    <uuid>${uuid}</uuid>\n  </domain>\n</domstatus>\n`);
  put(`/proc/${pid}/attr/apparmor/current`, `${label}\n`);
}

describe("status: what each QEMU runs as", () => {
  it("confined, by libvirt, complain, unconfined, another guest's profile, not running", () => {
    managed(U1, "web");
    running("web", 101, U1, `libvirt-${U1} (enforce)`);
    running("lib", 102, U2, `libvirt-${U2} (enforce)`);
    managed(U3, "db");
    running("db", 103, U3, `libvirt-${U3} (complain)`);
    running("free", 104, U4, "unconfined");
    running("thief", 105, "55555555-5555-4555-8555-555555555555", `libvirt-${U1} (enforce)`);
    managed("66666666-6666-4666-8666-666666666666", "stopped");
    // A stale pid file (no such process) is not a running guest.
    put("/run/libvirt/qemu/gone.pid", "999\n");
    const rows = statusRows(layout, () => "enforce");
    expect(rows.map((r) => [r.name, r.qemu, r.qemuLabel ?? "-"])).toEqual([
      ["db", "complain", `libvirt-${U3} (complain)`],
      ["free", "unconfined", "unconfined"],
      ["lib", "by libvirt", `libvirt-${U2} (enforce)`],
      ["stopped", "not running", "-"],
      ["thief", "other profile", `libvirt-${U1} (enforce)`],
      ["web", "confined", `libvirt-${U1} (enforce)`],
    ]);
    expect(formatStatusRows(rows)).toBe(
      [
        "GUEST    QEMU           PROFILE                                       LOADED   AS       PROFILE FILE  .FILES",
        `db       complain       libvirt-${U3}  enforce  enforce  pristine      ok`,
        "free     unconfined     -                                             -        -        -             -",
        "lib      by libvirt     -                                             -        -        -             -",
        "stopped  not running    libvirt-66666666-6666-4666-8666-666666666666  enforce  enforce  pristine      ok",
        "thief    other profile  -                                             -        -        -             -",
        `web      confined       libvirt-${U1}  enforce  enforce  pristine      ok`,
        "",
      ].join("\n"),
    );
  });

  it("reads attr/current when attr/apparmor/current is absent, and says unknown when neither can be read", () => {
    managed(U1, "web");
    put("/run/libvirt/qemu/web.pid", "101\n");
    fs.mkdirSync(layout.host("/proc/101/attr"), { recursive: true });
    expect(statusRows(layout, () => null)[0]!.qemu).toBe("unknown");
    put("/proc/101/attr/current", "unconfined\n");
    expect(statusRows(layout, () => null)[0]!.qemu).toBe("unconfined");
  });

  it("escapes control, bidi and format characters in names", () => {
    const name = "a\u202Egnp.exe\u200B\tb\\";
    managed(U1, name);
    expect(formatStatusRows(statusRows(layout, () => null)).split("\n")[1]!.split("  ")[0]).toBe("a\\u{202e}gnp.exe\\u{200b}\\x09b\\\\");
  });

  it("through the bundle: --json carries the column", () => {
    managed(U1, "web");
    running("web", 101, U1, `libvirt-${U1} (enforce)`);
    const r = spawnSync(process.execPath, [BUNDLE, "--root", root, "status", "--json"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject([{ name: "web", uuid: U1, qemu: "confined", qemuLabel: `libvirt-${U1} (enforce)` }]);
  });
});

describe("judge, displayName, shellQuote", () => {
  it("judges labels exactly", () => {
    expect(judge(`libvirt-${U1} (enforce)`, U1, true)).toBe("confined");
    expect(judge(`libvirt-${U1} (enforce)`, U1, false)).toBe("by libvirt");
    expect(judge(`libvirt-${U1} (enforce)`, U2, true)).toBe("other profile");
    expect(judge(`libvirt-${U1} (complain)`, U1, true)).toBe("complain");
    expect(judge("unconfined", U1, true)).toBe("unconfined");
    expect(judge("/usr/sbin/libvirtd (enforce)", U1, true)).toBe("other profile");
    expect(judge(undefined, U1, true)).toBe("unknown");
  });

  it("quotes names so a shell reads exactly them, and shows invisible characters", () => {
    expect(shellQuote("web-01.example")).toBe("web-01.example");
    expect(shellQuote("it's; rm -rf /")).toBe(`'it'\\''s; rm -rf /'`);
    expect(shellQuote("-x")).toBe("'-x'");
    expect(shellQuote("a\u202Eb'c\n")).toBe("$'a\\u202eb\\'c\\x0a'");
    for (const name of ["it's; rm -rf /", "a\u202Eb'c\n", "$(id)`id`", "x\\y"]) {
      const r = spawnSync("/bin/bash", ["-c", `printf %s ${shellQuote(name)}`], { encoding: "utf8" });
      expect(r.stdout).toBe(name);
    }
    expect(displayName("plain")).toBe("plain");
    expect(displayName("a\u2066b\u2028c\u007f")).toBe("a\\u{2066}b\\u{2028}c\\x7f");
  });
});
