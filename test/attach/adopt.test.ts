import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { adopt, virshAt, type AdoptRequest } from "../../src/attach/adopt-run.js";
import { FAKE_VIRSH } from "./fake-virsh.js";


function xml(name: string, uuid: string, emulator = "/usr/bin/qemu-system-x86_64"): string {
  return `<domain type='kvm'>\n  <name>${name}</name>\n  <uuid>${uuid}</uuid>\n  <devices>\n    <emulator>${emulator}</emulator>\n  </devices>\n</domain>\n`;
}
const U1 = "11111111-1111-4111-8111-111111111111";
const U2 = "22222222-2222-4222-8222-222222222222";

let dir: string;
let lines: string[];
let loaded: string[];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-adopt-"));
  fs.writeFileSync(path.join(dir, "virsh"), FAKE_VIRSH, { mode: 0o755 });
  fs.mkdirSync(path.join(dir, "domains"));
  fs.writeFileSync(path.join(dir, "domains/a"), xml("a", U1));
  fs.writeFileSync(path.join(dir, "domains/b"), xml("b", U2, "/opt/qemu/qemu-system-x86_64"));
  lines = [];
  loaded = [];
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function request(over: Partial<AdoptRequest>): AdoptRequest {
  return {
    names: [],
    all: false,
    undo: false,
    mode: "wrapper",
    paths: { wrapperDir: "/usr/lib/virt-aa-hook/bin", emulatorDir: "/usr/bin" },
    virsh: virshAt(path.join(dir, "virsh"), "qemu:///system"),
    loadProfile: (name) => void loaded.push(name),
    wrapperExists: (emu) => emu === "qemu-system-x86_64",
    out: (l) => void lines.push(l),
    ...over,
  };
}
const calls = () => fs.readFileSync(path.join(dir, "calls"), "utf8");
const domain = (n: string) => fs.readFileSync(path.join(dir, "domains", n), "utf8");

describe("adopt through virsh", () => {
  it("--all in wrapper mode: defines what changed, reports what cannot be adopted, never loads a profile", async () => {
    const out = await adopt(request({ all: true }));
    expect(out).toEqual({ changed: ["a"], unchanged: [], failed: ["b"] });
    expect(domain("a")).toBe(xml("a", U1, "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64"));
    expect(domain("b")).toBe(xml("b", U2, "/opt/qemu/qemu-system-x86_64"));
    expect(lines).toEqual([
      "a: adopted (attach = wrapper)",
      "b: cannot adopt (attach = wrapper): b: <emulator> /opt/qemu/qemu-system-x86_64 is not in emulator_dir /usr/bin: the wrapper would run a different QEMU",
    ]);
    expect(loaded).toEqual([]);
    const tmp = os.tmpdir().replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    expect(calls()).toMatch(
      new RegExp(
        `^-c qemu:///system list --all --name\n-c qemu:///system dumpxml --inactive --security-info a\n-c qemu:///system define ${tmp}/virt-aa-hook-adopt-[^/]+/domain\\.xml\n-c qemu:///system dumpxml --inactive --security-info b\n$`,
      ),
    );
  });

  it("seclabel mode loads the profile before define, then undo restores the original XML", async () => {
    const original = domain("a");
    const order: string[] = [];
    const out = await adopt(request({ names: ["a"], mode: "seclabel", loadProfile: (n) => void order.push(`load ${n} ${calls().split("\n").length}`) }));
    expect(out.changed).toEqual(["a"]);
    // Loaded when exactly one virsh call (dumpxml) had been made: before define.
    expect(order).toEqual(["load a 2"]);
    expect(domain("a")).toContain(`<seclabel type='static' model='apparmor' relabel='no'>\n    <label>libvirt-${U1}</label>\n  </seclabel>\n</domain>`);
    expect(await adopt(request({ names: ["a"], mode: "seclabel" }))).toEqual({ changed: [], unchanged: ["a"], failed: [] });
    expect(await adopt(request({ names: ["a"], undo: true }))).toEqual({ changed: ["a"], unchanged: [], failed: [] });
    expect(domain("a")).toBe(original);
    expect(lines).toEqual(["a: adopted (attach = seclabel)", "a: already adopted (attach = seclabel)", "a: undone"]);
  });

  it("does not define when loading the profile fails", async () => {
    const out = await adopt(request({ names: ["a"], mode: "seclabel", loadProfile: () => { throw new Error("cannot load the profile first: parser said no"); } }));
    expect(out.failed).toEqual(["a"]);
    expect(lines).toEqual(["a: cannot adopt (attach = seclabel): cannot load the profile first: parser said no"]);
    expect(calls()).not.toContain("define");
  });

  it("refuses when the wrapper link for this emulator is missing", async () => {
    const out = await adopt(request({ names: ["a"], wrapperExists: () => false }));
    expect(out.failed).toEqual(["a"]);
    expect(lines).toEqual([
      "a: cannot adopt (attach = wrapper): /usr/lib/virt-aa-hook/bin/qemu-system-x86_64: wrapper link missing: run install.sh again after installing this QEMU",
    ]);
  });

  it("quotes virsh's error for an unknown domain", async () => {
    const out = await adopt(request({ names: ["nope"] }));
    expect(out.failed).toEqual(["nope"]);
    expect(lines).toEqual(["nope: cannot adopt (attach = wrapper): virsh dumpxml --inactive --security-info nope: error: failed to get domain 'nope'"]);
  });
});
