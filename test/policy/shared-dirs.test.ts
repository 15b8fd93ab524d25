/**
 * libvirt's shared NVRAM directory and its log directory (review findings #2 and #5): only the
 * files that are this guest's (the NVRAM file its XML names, its own QEMU log and `<name>-*`
 * chardev logs), never a tree over either directory, never another guest's file, whatever element
 * names it. And a tree is held for the exclusive-write check unless it is one of the guest's own
 * per-guest directories.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { heldPaths } from "../../src/hook/exclusive.js";
import { Layout } from "../../src/layout.js";
import { buildProfile } from "../../src/pipeline.js";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { guestXml } from "./fakehost.js";
import { outcomeOf } from "../hostile/arbitraries.js";
import { defaultQemuConf } from "../../src/host/qemu-conf.js";


let t: TestRoot;
let layout: Layout;
beforeAll(() => {
  t = makeTestRoot("vaah-shared-dirs-");
  for (const d of ["/var/lib/libvirt/qemu/nvram", "/var/log/libvirt/qemu", "/srv/share", "/srv/alias"]) fs.mkdirSync(t.at(d), { recursive: true });
  for (const f of ["/var/lib/libvirt/qemu/nvram/vm1_VARS.fd", "/var/lib/libvirt/qemu/nvram/other_VARS.fd", "/var/log/libvirt/qemu/other.log"]) fs.writeFileSync(t.at(f), "");
  // An alias of the guest's own NVRAM file through a symlinked directory.
  fs.symlinkSync("/var/lib/libvirt/qemu/nvram", t.at("/srv/alias/nvram"));
  layout = new Layout(t.root);
});
afterAll(() => t.remove());

const OS_NVRAM = (p: string) => `<os><type arch='x86_64' machine='q35'>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader><nvram>${p}</nvram></os>`;
const META = (allow: string) => `<metadata><vah:guest xmlns:vah='https://virt-aa-hook.org/xmlns/guest/1'>${allow}</vah:guest></metadata>`;
const share = (dir: string) => `<filesystem type='mount' accessmode='passthrough'><source dir='${dir}'/><target dir='s'/></filesystem>`;
const serialFile = (p: string) => `<serial type='file'><source path='${p}'/><target port='0'/></serial>`;

function build(devices: string, extra = "") {
  return outcomeOf(() => buildProfile(guestXml(devices, extra), { layout }));
}
function refusal(devices: string, extra = ""): string {
  const out = build(devices, extra);
  if (out.ok) throw new Error(`granted: ${out.value.filesText}`);
  return out.error.toLine();
}

describe("libvirt's shared NVRAM directory: per-file ownership", () => {
  it("an <nvram> or <pstore> path is own only directly in the NVRAM directory, after canonicalisation", () => {
    const OTHER = "0b2c3d4e-5f60-4718-8293-a4b5c6d7e8f9";
    fs.mkdirSync(t.at(`/var/lib/libvirt/swtpm/${OTHER}/tpm2`), { recursive: true });
    fs.writeFileSync(t.at(`/var/lib/libvirt/swtpm/${OTHER}/tpm2/tpm2-00.permall`), "");
    fs.mkdirSync(t.at("/run/libvirt/qemu"), { recursive: true });
    fs.writeFileSync(t.at("/run/libvirt/qemu/other.pid"), "");
    fs.mkdirSync(t.at("/srv/alias2"), { recursive: true });
    if (!fs.existsSync(t.at("/srv/alias2/swtpm"))) fs.symlinkSync("/var/lib/libvirt/swtpm", t.at("/srv/alias2/swtpm"));
    const managed = "holds libvirt's runtime state";
    // Another guest's swtpm state and libvirt's pid file, named as <nvram> or through an alias: refused.
    for (const p of [`/var/lib/libvirt/swtpm/${OTHER}/tpm2/tpm2-00.permall`, "/run/libvirt/qemu/other.pid", `/srv/alias2/swtpm/${OTHER}/tpm2/tpm2-00.permall`]) {
      expect(refusal("", OS_NVRAM(p))).toContain(managed);
    }
    const pstore = (p: string) => `<pstore backend='acpi-erst'><path>${p}</path><size unit='KiB'>8</size></pstore>`;
    expect(refusal(pstore("/run/libvirt/qemu/other.pid"))).toContain(managed);
    expect(refusal(pstore(`/srv/alias2/swtpm/${OTHER}/tpm2/tpm2-00.permall`))).toContain(managed);
    // Negative controls: directly in the NVRAM directory, named there or through the alias, it is own.
    for (const p of ["/var/lib/libvirt/qemu/nvram/vm1_pstore.raw", "/srv/alias/nvram/vm1_pstore.raw"]) {
      const ok = build(pstore(p));
      expect(ok.ok && ok.value.rules.find((r) => r.path === "/var/lib/libvirt/qemu/nvram/vm1_pstore.raw")?.perms).toBe("rw");
    }
  });

  it("grants the NVRAM file the XML names (also through a symlink), not another guest's", () => {
    const own = build("", OS_NVRAM("/var/lib/libvirt/qemu/nvram/vm1_VARS.fd"));
    expect(own.ok && own.value.rules.find((r) => r.path === "/var/lib/libvirt/qemu/nvram/vm1_VARS.fd")?.perms).toBe("rwk");
    const alias = build("", OS_NVRAM("/srv/alias/nvram/vm1_VARS.fd"));
    expect(alias.ok && alias.value.rules.some((r) => r.path === "/var/lib/libvirt/qemu/nvram/vm1_VARS.fd")).toBe(true);
    // A chardev naming another guest's variables is refused (it was granted while the whole
    // directory counted as every guest's own).
    expect(refusal(serialFile("/var/lib/libvirt/qemu/nvram/other_VARS.fd"), OS_NVRAM("/var/lib/libvirt/qemu/nvram/vm1_VARS.fd"))).toBe(
      "virt-aa-hook: error: vm1: /var/lib/libvirt/qemu/nvram/other_VARS.fd: serial 0: /var/lib/libvirt/qemu holds libvirt's runtime state for every guest and for libvirt itself; only this guest's own entries (named after its id, name and UUID) are granted; name a path outside /var/lib/libvirt/qemu",
    );
  });

  it.each([
    ["a <vah:allow tree>", "", META("<vah:allow path='/var/lib/libvirt/qemu/nvram' access='rw' tree='yes'/>")],
    ["a 9p share", share("/var/lib/libvirt/qemu/nvram"), ""],
    ["a 9p share above it", share("/var/lib/libvirt/qemu"), ""],
  ])("refuses %s over it", (_what, devices, extra) => {
    expect(refusal(devices, extra + OS_NVRAM("/var/lib/libvirt/qemu/nvram/vm1_VARS.fd"))).toContain("recursive access would include /var/lib/libvirt/qemu, libvirt's runtime state for other guests and for itself");
  });

  it("control: a tree of the guest's own is granted", () => {
    const out = build(share("/srv/share"), META("<vah:allow path='/srv/share' access='rw' tree='yes'/>"));
    expect(out.ok).toBe(true);
  });
});

describe("libvirt's log directory: only the guest's own logs", () => {
  it("grants its QEMU log and a <name>-serial0.log; refuses another guest's log for a serial file and a metadata allow", () => {
    // QEMU opens its own log only with stdio_handler = "file" (rules/runtime.ts).
    fs.mkdirSync(path.join(layout.root, "etc/libvirt"), { recursive: true });
    const conf = path.join(layout.root, "etc/libvirt/qemu.conf");
    fs.writeFileSync(conf, 'stdio_handler = "file"\n');
    const own = build(serialFile("/var/log/libvirt/qemu/vm1-serial0.log"));
    fs.rmSync(conf);
    expect(own.ok && own.value.rules.filter((r) => r.path.startsWith("/var/log/libvirt/")).map((r) => r.path)).toEqual([
      "/var/log/libvirt/qemu/vm1-serial0.log",
      "/var/log/libvirt/qemu/vm1.log",
    ]);
    expect(refusal(serialFile("/var/log/libvirt/qemu/other.log"))).toBe(
      "virt-aa-hook: error: vm1: /var/log/libvirt/qemu/other.log: serial 0: /var/log/libvirt holds libvirt's runtime state for every guest and for libvirt itself; only this guest's own entries (named after its id, name and UUID) are granted; name a path outside /var/log/libvirt",
    );
    expect(refusal("", META("<vah:allow path='/var/log/libvirt/qemu/other.log' access='r'/>"))).toContain(": /var/log/libvirt holds libvirt's runtime state");
    expect(refusal("", META("<vah:allow path='/var/log/libvirt/qemu' access='r' tree='yes'/>"))).toContain("recursive access would include /var/log/libvirt,");
    expect(refusal(share("/var/log/libvirt/qemu"))).toContain("recursive access would include /var/log/libvirt,");
  });
});

describe("exclusive access: which trees are held", () => {
  it("holds a tree below a managed root that is not one of the guest's own directories; not its private dir", () => {
    const domain = { ...buildDomain(), id: 7 };
    const rule = (p: string, perms: string, source: string) => ({ path: p, suffix: "{,/**}" as const, perms, source });
    const held = heldPaths(layout, domain, [rule("/var/lib/libvirt/qemu/domain-7-vm1", "rwk", "private dir"), rule("/var/lib/libvirt/qemu/nvram", "rw", "filesystem 0")], defaultQemuConf(layout));
    expect(held).toEqual([{ path: "/var/lib/libvirt/qemu/nvram", write: true, shareable: false, source: "filesystem 0", tree: true }]);
  });
});

function buildDomain() {
  const out = build("");
  if (!out.ok) throw out.error;
  return out.value.domain;
}
