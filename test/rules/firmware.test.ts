import { describe, expect, it } from "vitest";
import { firmwareRules as firmwareRulesWithOrigin } from "../../src/rules/firmware.js";
import { baseDomain, ruleContext, expectPathError, withoutOrigins } from "./fixtures.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const firmwareRules = withoutOrigins(firmwareRulesWithOrigin);

describe("firmwareRules", () => {
  it("grants nothing to a guest without firmware or boot files", () => {
    expect(firmwareRules(ruleContext(baseDomain()))).toEqual([]);
  });

  it("gives a read-only loader rk, its nvram rwk, and nothing for the nvram template", () => {
    const domain = baseDomain({
      os: {
        loader: { path: "/usr/share/OVMF/OVMF_CODE_4M.fd", readonly: true, type: "pflash" },
        nvram: { path: "/var/lib/libvirt/qemu/nvram/vm1_VARS.fd", template: "/usr/share/OVMF/OVMF_VARS_4M.fd" },
      },
    });
    expect(firmwareRules(ruleContext(domain))).toEqual([
      { path: "/usr/share/OVMF/OVMF_CODE_4M.fd", suffix: "", perms: "rk", source: "loader" },
      { path: "/var/lib/libvirt/qemu/nvram/vm1_VARS.fd", suffix: "", perms: "rwk", source: "nvram" },
    ]);
  });

  it("gives a writable pflash loader rwk", () => {
    const domain = baseDomain({ os: { loader: { path: "/var/lib/libvirt/flash/vm1.fd", readonly: false, type: "pflash" } } });
    expect(firmwareRules(ruleContext(domain))).toEqual([
      { path: "/var/lib/libvirt/flash/vm1.fd", suffix: "", perms: "rwk", source: "loader" },
    ]);
  });

  it("follows the nvram backing chain read-only and stops at a network layer", () => {
    const domain = baseDomain({
      os: {
        nvram: {
          path: "/var/lib/libvirt/qemu/nvram/vm1.qcow2",
          backingStore: [
            { type: "file", path: "/var/lib/libvirt/qemu/nvram/base.qcow2", format: "qcow2" },
            { type: "block", path: "/dev/vg0/nvram-base" },
            { type: "network" },
            { type: "file", path: "/srv/never-reached.qcow2" },
          ],
        },
      },
    });
    expect(firmwareRules(ruleContext(domain))).toEqual([
      { path: "/var/lib/libvirt/qemu/nvram/vm1.qcow2", suffix: "", perms: "rwk", source: "nvram" },
      { path: "/var/lib/libvirt/qemu/nvram/base.qcow2", suffix: "", perms: "rk", source: "nvram backing 1" },
      { path: "/dev/vg0/nvram-base", suffix: "", perms: "rk", source: "nvram backing 2" },
    ]);
  });

  it("rejects an nvram chain deeper than the limit", () => {
    const layers = Array.from({ length: 3 }, (_, i) => ({ type: "file", path: `/srv/n${i}` }));
    const domain = baseDomain({ os: { nvram: { path: "/srv/nvram", backingStore: layers } } });
    expectPathError(() => firmwareRules(ruleContext(domain, undefined, 2)), "nvram", "backing chain is deeper than 2 layers");
  });

  it("grants direct-boot files, ACPI tables, shim and fw_cfg blobs read-only, in that order", () => {
    const domain = baseDomain({
      os: {
        kernel: "/var/lib/libvirt/boot/vmlinuz",
        initrd: "/var/lib/libvirt/boot/initrd.img",
        dtb: "/var/lib/libvirt/boot/board.dtb",
        acpiTables: ["/var/lib/libvirt/acpi/slic.bin", "/var/lib/libvirt/acpi/msdm.bin"],
        shim: "/var/lib/libvirt/boot/shimx64.efi",
      },
      fwcfgFiles: ["/var/lib/libvirt/fwcfg/ignition.json"],
    });
    expect(firmwareRules(ruleContext(domain))).toEqual([
      { path: "/var/lib/libvirt/boot/vmlinuz", suffix: "", perms: "r", source: "kernel" },
      { path: "/var/lib/libvirt/boot/initrd.img", suffix: "", perms: "r", source: "initrd" },
      { path: "/var/lib/libvirt/boot/board.dtb", suffix: "", perms: "r", source: "dtb" },
      { path: "/var/lib/libvirt/acpi/slic.bin", suffix: "", perms: "r", source: "acpi table 0" },
      { path: "/var/lib/libvirt/acpi/msdm.bin", suffix: "", perms: "r", source: "acpi table 1" },
      { path: "/var/lib/libvirt/boot/shimx64.efi", suffix: "", perms: "r", source: "shim" },
      { path: "/var/lib/libvirt/fwcfg/ignition.json", suffix: "", perms: "r", source: "fwcfg 0" },
    ]);
  });

  it.each([
    ["loader", baseDomain({ os: { loader: { path: "OVMF_CODE.fd", readonly: true, type: "pflash" } } }), "OVMF_CODE.fd", "loader"],
    ["rom loader", baseDomain({ os: { loader: { path: "bios-256k.bin", readonly: false, type: "rom" } } }), "bios-256k.bin", "loader"],
    ["nvram", baseDomain({ os: { nvram: { path: "nvram/vm1_VARS.fd" } } }), "nvram/vm1_VARS.fd", "nvram"],
    ["nvram backing", baseDomain({ os: { nvram: { path: "/srv/n.qcow2", backingStore: [{ type: "file", path: "base.qcow2" }] } } }), "base.qcow2", "nvram backing 1"],
    ["kernel", baseDomain({ os: { kernel: "vmlinuz" } }), "vmlinuz", "kernel"],
    ["acpi table", baseDomain({ os: { acpiTables: ["/srv/a.bin", "slic.bin"] } }), "slic.bin", "acpi table 1"],
    ["fwcfg", baseDomain({ fwcfgFiles: ["./blob"] }), "./blob", "fwcfg 0"],
    ["empty initrd", baseDomain({ os: { initrd: "" } }), "", "initrd"],
  ])("rejects a relative %s path, naming the element", (_what, domain, path, element) => {
    expectPathError(() => firmwareRules(ruleContext(domain)), path, `${element}: path is not absolute`);
  });

  it("reads a ROM loader (-bios) with r only, whatever readonly= says; a loader without a type is a ROM (libvirt's default)", () => {
    for (const readonly of [true, false]) {
      for (const type of ["rom", undefined]) {
        const domain = baseDomain({ os: { loader: { path: "/usr/share/seabios/bios-256k.bin", readonly, ...(type ? { type } : {}) } } });
        expect(firmwareRules(ruleContext(domain))).toEqual([{ path: "/usr/share/seabios/bios-256k.bin", suffix: "", perms: "r", source: "loader" }]);
      }
    }
    // Negative control: the same file as a writable pflash is rwk.
    const pflash = baseDomain({ os: { loader: { path: "/usr/share/seabios/bios-256k.bin", readonly: false, type: "pflash" } } });
    expect(firmwareRules(ruleContext(pflash))[0]!.perms).toBe("rwk");
  });
});
