import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Tpm } from "../../src/domain/model.js";
import type { Rule } from "../../src/ir.js";
import { tpmRules as tpmRulesWithOrigin } from "../../src/rules/tpm.js";
import { TEST_UUID, baseDomain, expectPathError, ruleContext, tempRoot, writeHostFile, type DomainOverrides, withoutOrigins } from "./fixtures.js";
import { link } from "./hosttree.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const tpmRules = withoutOrigins(tpmRulesWithOrigin);

let root: string;
let cleanup: () => void;
beforeEach(() => ({ root, cleanup } = tempRoot()));
afterEach(() => cleanup());

const tpms = (tpm: Tpm, overrides: DomainOverrides = {}) =>
  tpmRules(ruleContext(baseDomain({ ...overrides, devices: { tpms: [tpm] } }), root));
const r = (path: string, perms: string, source: string, suffix: Rule["suffix"] = ""): Rule => ({ path, suffix, perms, source });

/** The swtpm rules for a guest with runtime stem `stem`, log name `name` and state subdir `dir`. */
function emulator(stem: string, name: string, dir: string): Rule[] {
  const state = `/var/lib/libvirt/swtpm/${TEST_UUID}/${dir}`;
  return [
    r(`/run/libvirt/qemu/swtpm/${stem}-swtpm.sock`, "rw", "tpm emulator socket"),
    r(state, "r", "tpm emulator state", "/"),
    r(state, "rwk", "tpm emulator state", "/**"),
    r(`/var/log/swtpm/libvirt/qemu/${name}-swtpm.log`, "rw", "tpm emulator log"),
    r(`/run/libvirt/qemu/swtpm/${stem}-swtpm.pid`, "rw", "tpm emulator pid"),
  ];
}

describe("TPM emulator (swtpm)", () => {
  it("names socket, state dir, log and pid as libvirt 9.0 does; version defaults to 2.0", () => {
    expect(tpms({ model: "tpm-crb", backend: "emulator" })).toEqual(emulator("7-vm1", "vm1", "tpm2"));
    expect(tpms({ backend: "emulator", version: "2.0" })).toEqual(emulator("7-vm1", "vm1", "tpm2"));
    expect(tpms({ backend: "emulator", version: "1.2" })).toEqual(emulator("7-vm1", "vm1", "tpm1.2"));
  });

  it("cuts the short name at 20 characters (code points), the log keeps the full name", () => {
    const name = "ä-very-long-guest-name-😀-tail";
    expect(tpms({ backend: "emulator" }, { name, id: 42 })).toEqual(emulator("42-ä-very-long-guest-na", name, "tpm2"));
    const emoji = "abcdefghijklmnopqrs😀xyz";
    expect(tpms({ backend: "emulator" }, { name: emoji, id: 1 })[0]!.path).toBe("/run/libvirt/qemu/swtpm/1-abcdefghijklmnopqrs😀-swtpm.sock");
  });

  it("leaves out socket and pid when the XML has no runtime id", () => {
    expect(tpms({ backend: "emulator" }, { id: undefined })).toEqual(emulator("7-vm1", "vm1", "tpm2").slice(1, 4));
  });

  it("never renders an unknown version, and rejects a name that would leave the log directory", () => {
    expectPathError(() => tpms({ backend: "emulator", version: "3.0" }), "tpm version 3.0", "unsupported TPM version (expected 1.2 or 2.0)");
    expectPathError(() => tpms({ backend: "emulator" }, { name: "../../x" }), "../../x-swtpm.log", "tpm emulator log: domain name must be a single file name component");
  });
});

describe("TPM passthrough", () => {
  /** A TPM 1.2 chip at PNP 00:05 with its class link and the `device` link to the parent. */
  function fakeTpm(cls: "tpm" | "misc", name: string): void {
    writeHostFile(root, "/sys/devices/pnp0/00:05/cancel", "");
    writeHostFile(root, `/sys/devices/pnp0/00:05/${cls}/${name}/dev`, "10:224\n");
    link(root, `/sys/devices/pnp0/00:05/${cls}/${name}/device`, "../../../00:05");
    link(root, `/sys/class/${cls}/${name}`, `../../devices/pnp0/00:05/${cls}/${name}`);
  }

  it("grants the device (default /dev/tpm0) and its cancel file in the tpm class", () => {
    fakeTpm("tpm", "tpm0");
    expect(tpms({ model: "tpm-tis", backend: "passthrough" })).toEqual([
      r("/dev/tpm0", "rw", "tpm passthrough device"),
      r("/sys/class/tpm/tpm0/device/cancel", "rw", "tpm passthrough cancel"),
    ]);
  });

  it("prefers the misc class, as libvirt does", () => {
    fakeTpm("tpm", "tpm1");
    fakeTpm("misc", "tpm1");
    expect(tpms({ backend: "passthrough", devicePath: "/dev/tpm1" })).toEqual([
      r("/dev/tpm1", "rw", "tpm passthrough device"),
      r("/sys/class/misc/tpm1/device/cancel", "rw", "tpm passthrough cancel"),
    ]);
  });

  it("grants no cancel file when none exists (libvirt then passes /dev/null)", () => {
    expect(tpms({ backend: "passthrough", devicePath: "/dev/tpm0" })).toEqual([r("/dev/tpm0", "rw", "tpm passthrough device")]);
  });

  it("rejects relative devices and device names that would leave the class directory", () => {
    expectPathError(() => tpms({ backend: "passthrough", devicePath: "tpm0" }), "tpm0", "tpm passthrough device: path is not absolute");
    expectPathError(() => tpms({ backend: "passthrough", devicePath: "/dev/.." }), "..", "tpm passthrough device: TPM device name must be a single file name component");
  });
});

describe("TPM external", () => {
  it("grants the swtpm socket", () => {
    expect(tpms({ backend: "external", socket: "/run/swtpm/vm1.sock" })).toEqual([r("/run/swtpm/vm1.sock", "rw", "tpm external socket")]);
  });

  it("rejects a missing or relative socket", () => {
    expectPathError(() => tpms({ backend: "external" }), "tpm external", "missing <source path=...> socket");
    expectPathError(() => tpms({ backend: "external", socket: "s.sock" }), "s.sock", "tpm external socket: path is not absolute");
  });
});
