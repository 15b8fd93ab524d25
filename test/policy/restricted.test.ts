import { describe, expect, it } from "vitest";
import { checkRestricted, mergeRules } from "../../src/policy/index.js";
import type { Rule } from "../../src/rules/ir.js";

const r = (path: string, perms = "rwk", suffix: Rule["suffix"] = "", source = "disk vda"): Rule => ({ path, perms, suffix, source });

describe("restricted locations", () => {
  it.each([
    ["/etc/shadow", "restricted location /etc"],
    ["/etc", "restricted location /etc"],
    ["/proc/1/mem", "restricted location /proc"],
    ["/sys/kernel/security/apparmor/.replace", "restricted location /sys"],
    ["/bin/sh", "restricted location /bin"],
    ["/sbin/init", "restricted location /sbin"],
    ["/lib/x86_64-linux-gnu/libc.so.6", "restricted location /lib"],
    ["/lib64/ld-linux-x86-64.so.2", "restricted location /lib64"],
    ["/usr/bin/qemu-system-x86_64", "restricted location /usr/bin"],
    ["/usr/lib/libvirt/virt-aa-helper", "restricted location /usr/lib"],
    ["/usr/local/share/x", "restricted location /usr/local/share"],
    ["/dev/mem", "restricted location /dev/mem"],
    ["/dev/cpu/0/msr", "restricted location /dev/cpu"],
    ["/root/.ssh/id_rsa", "restricted location /root"],
    ["/var/lib/virt-aa-hook/state.json", "restricted location /var/lib/virt-aa-hook"],
  ])("refuses %s", (path, why) => {
    expect(() => checkRestricted(r(path))).toThrow(`${path}: disk vda: ${why} is never granted to guests`);
  });

  it.each(["/library/a.img", "/libvirt.img", "/etcetera/disk", "/usr/binaries/x", "/sysadmin/disk", "/bootstrap/disk.img", "/dev/memory", "/var/lib/libvirt/images/a.qcow2", "/dev/sdb", "/dev/vfio/17", "/run/libvirt/qemu/vm.pid"])(
    "allows %s (matched by component, not by string prefix)",
    (path) => {
      expect(() => checkRestricted(r(path))).not.toThrow();
    },
  );

  it("allows firmware and boot files read-only, and says why writes are refused", () => {
    expect(() => checkRestricted(r("/usr/share/OVMF/OVMF_CODE_4M.fd", "rk", "", "loader"))).not.toThrow();
    expect(() => checkRestricted(r("/boot/vmlinuz-6.1.0-13-amd64", "r", "", "kernel"))).not.toThrow();
    expect(() => checkRestricted(r("/vmlinuz", "r", "", "kernel"))).not.toThrow();
    expect(() => checkRestricted(r("/initrd.img.old", "r", "", "initrd"))).not.toThrow();
    expect(() => checkRestricted(r("/usr/share/qemu/bios-256k.bin", "r"))).not.toThrow();
    expect(() => checkRestricted(r("/usr/share/OVMF/OVMF_VARS.fd", "rwk", "", "nvram"))).toThrow(
      '/usr/share/OVMF/OVMF_VARS.fd: nvram: only read access is allowed under /usr/share/OVMF (asked for "rwk")',
    );
    expect(() => checkRestricted(r("/boot/grub/grub.cfg", "rw"))).toThrow('only read access is allowed under /boot (asked for "rw")');
    expect(() => checkRestricted(r("/usr/share/doc/x", "r"))).toThrow("restricted location /usr/share is never granted");
  });

  it("allows only the sysfs files of one PCI device and TPM cancel files", () => {
    expect(() => checkRestricted(r("/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0/config", "rw"))).not.toThrow();
    expect(() => checkRestricted(r("/sys/devices/pci0000:00/0000:00:02.0/resource0", "rw"))).not.toThrow();
    expect(() => checkRestricted(r("/sys/devices/pnp0/00:05/tpm/tpm0/device/cancel", "rw"))).not.toThrow();
    expect(() => checkRestricted(r("/sys/devices/pci0000:00/0000:00:02.0", "rw", "/**"))).toThrow("restricted location /sys");
    expect(() => checkRestricted(r("/sys/devices/virtual/net/lo/address", "r"))).toThrow("restricted location /sys");
    expect(() => checkRestricted(r("/sys/devices/pci0000:00/0000:00:02.0/../../../kernel/x", "r"))).toThrow("restricted location /sys");
  });

  it("refuses recursive grants that would reach a restricted location", () => {
    expect(() => checkRestricted(r("/", "r", "{,/**}", "filesystem /mnt"))).toThrow("/: filesystem /mnt: cannot grant the whole filesystem");
    expect(() => checkRestricted(r("/usr", "r", "{,/**}", "filesystem /mnt"))).toThrow(
      "/usr: filesystem /mnt: recursive access would include the restricted location /usr/bin",
    );
    expect(() => checkRestricted(r("/var", "rw", "/**"))).toThrow("recursive access would include the restricted location /var/lib/virt-aa-hook");
    expect(() => checkRestricted(r("/dev", "rw", "/*"))).toThrow("recursive access would include the restricted location /dev/mem");
    expect(() => checkRestricted(r("/srv/share", "rw", "{,/**}"))).not.toThrow();
    expect(() => checkRestricted(r("/var/lib/libvirt/qemu/domain-1-vm", "rwk", "{,/**}"))).not.toThrow();
  });
});

describe("mergeRules", () => {
  it("merges permissions and sources of the same path and suffix, in first-appearance order", () => {
    expect(
      mergeRules([r("/a", "rk", "", "disk vda"), r("/b", "r", "", "kernel"), r("/a", "wk", "", "disk vdb"), r("/a", "r", "{,/**}", "filesystem x"), r("/a", "r", "", "disk vda")]),
    ).toEqual([
      { path: "/a", perms: "rwk", suffix: "", source: "disk vda, disk vdb" },
      { path: "/b", perms: "r", suffix: "", source: "kernel" },
      { path: "/a", perms: "r", suffix: "{,/**}", source: "filesystem x" },
    ]);
  });
});
