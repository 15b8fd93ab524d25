import { describe, expect, it } from "vitest";
import { checkRestricted, mergeRules } from "../../src/policy/index.js";
import type { Rule } from "../../src/ir.js";
import { Layout } from "../../src/layout.js";

const layout = new Layout("/");

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
    ["/usr/bin/qemu-system-x86_64", "restricted location /usr"],
    ["/usr/lib/libvirt/virt-aa-helper", "restricted location /usr"],
    ["/usr/local/share/x", "restricted location /usr"],
    ["/usr/local/etc/x.conf", "restricted location /usr"],
    ["/usr/src/linux/Makefile", "restricted location /usr"],
    ["/var/cache/apparmor/26b63962.0/libvirt-x", "restricted location /var/cache/apparmor"],
    ["/var/lib/apparmor/profiles/x", "restricted location /var/lib/apparmor"],
    ["/var/lib/snapd/apparmor/profiles/snap.x", "restricted location /var/lib/snapd"],
    ["/var/spool/cron/crontabs/root", "restricted location /var/spool/cron"],
    ["/var/lib/dpkg/info/bash.postinst", "restricted location /var/lib/dpkg"],
    ["/run/systemd/system/x.service", "restricted location /run/systemd"],
    ["/run/systemd/journal/socket", "restricted location /run/systemd"],
    ["/var/lib/systemd/linger/root", "restricted location /var/lib/systemd"],
    ["/run/udev/rules.d/99-x.rules", "restricted location /run/udev"],
    ["/run/initctl", "restricted location /run/initctl"],
    ["/run/initramfs/shutdown", "restricted location /run/initramfs"],
    ["/tmp/.X11-unix/X0", "restricted location /tmp/.X11-unix"],
    ["/run/dbus/system_bus_socket", "restricted location /run/dbus"],
    ["/run/user/1000/bus", "restricted location /run/user"],
    ["/run/docker.sock", "restricted location /run/docker.sock"],
    ["/run/containerd/containerd.sock", "restricted location /run/containerd"],
    ["/run/podman/podman.sock", "restricted location /run/podman"],
    ["/run/snapd.socket", "restricted location /run/snapd.socket"],
    ["/var/run/docker.sock", "restricted location /var/run"],
    ["/var/lib/docker/overlay2/x/diff/bin/sh", "restricted location /var/lib/docker"],
    ["/var/lib/libvirt/dnsmasq/default.addnhosts", "restricted location /var/lib/libvirt/dnsmasq"],
    ["/var/backups/shadow.bak", "restricted location /var/backups"],
    ["/dev/mem", "restricted location /dev/mem"],
    ["/dev/cpu/0/msr", "restricted location /dev/cpu"],
    ["/root/.ssh/id_rsa", "restricted location /root"],
    ["/var/lib/virt-aa-hook/state.json", "restricted location /var/lib/virt-aa-hook"],
  ])("refuses %s", (path, why) => {
    expect(() => checkRestricted(r(path), layout)).toThrow(`${path}: disk vda: ${why} is never granted to guests`);
  });

  it.each(["/library/a.img", "/libvirt.img", "/etcetera/disk", "/usrlocal/x", "/run/systemdx", "/run/openvswitch/vhu0", "/home/alice/vms/x.img", "/sysadmin/disk", "/bootstrap/disk.img", "/dev/memory", "/var/lib/libvirt/images/a.qcow2", "/dev/sdb", "/dev/vfio/17", "/run/libvirt/qemu/vm.pid"])(
    "allows %s (matched by component, not by string prefix)",
    (path) => {
      expect(() => checkRestricted(r(path), layout)).not.toThrow();
    },
  );

  it("allows firmware and boot files read-only, and says why writes are refused", () => {
    expect(() => checkRestricted(r("/usr/share/OVMF/OVMF_CODE_4M.fd", "rk", "", "loader"), layout)).not.toThrow();
    expect(() => checkRestricted(r("/boot/vmlinuz-6.1.0-13-amd64", "r", "", "kernel"), layout)).not.toThrow();
    expect(() => checkRestricted(r("/vmlinuz", "r", "", "kernel"), layout)).not.toThrow();
    expect(() => checkRestricted(r("/initrd.img.old", "r", "", "initrd"), layout)).not.toThrow();
    expect(() => checkRestricted(r("/usr/share/qemu/bios-256k.bin", "r"), layout)).not.toThrow();
    expect(() => checkRestricted(r("/usr/share/OVMF/OVMF_VARS.fd", "rwk", "", "nvram"), layout)).toThrow(
      '/usr/share/OVMF/OVMF_VARS.fd: nvram: only read access is allowed under /usr/share/OVMF (asked for "rwk")',
    );
    expect(() => checkRestricted(r("/boot/grub/grub.cfg", "rw"), layout)).toThrow('only read access is allowed under /boot (asked for "rw")');
    expect(() => checkRestricted(r("/usr/share/doc/x", "r"), layout)).toThrow("restricted location /usr is never granted");
  });

  it("refuses all of sysfs by location: a device's own files are granted by provenance only (provenance.test.ts)", () => {
    expect(() => checkRestricted(r("/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0/config", "rw"), layout)).toThrow("restricted location /sys");
    expect(() => checkRestricted(r("/sys/devices/pnp0/00:05/tpm/tpm0/device/cancel", "rw"), layout)).toThrow("restricted location /sys");
    expect(() => checkRestricted(r("/sys/devices/virtual/net/lo/address", "r"), layout)).toThrow("restricted location /sys");
  });

  it("refuses files matched by name: Open vSwitch control sockets, users' dotfiles, and trees reaching them", () => {
    expect(() => checkRestricted(r("/run/openvswitch/db.sock", "rw"), layout)).toThrow("/run/openvswitch/db.sock: disk vda: Open vSwitch's control sockets are never granted to guests");
    expect(() => checkRestricted(r("/run/openvswitch/ovs-vswitchd.1234.ctl", "rw"), layout)).toThrow("Open vSwitch's control sockets are never granted");
    expect(() => checkRestricted(r("/home/alice/.bashrc", "rw"), layout)).toThrow("/home/alice/.bashrc: disk vda: users' dotfiles (shell start-up files, ssh keys, autostart) are never granted to guests");
    expect(() => checkRestricted(r("/home/alice/.ssh/authorized_keys", "r"), layout)).toThrow("users' dotfiles");
    expect(() => checkRestricted(r("/home/alice", "r", "{,/**}", "filesystem h"), layout)).toThrow("/home/alice: filesystem h: users' dotfiles");
    expect(() => checkRestricted(r("/home", "r", "{,/**}", "filesystem h"), layout)).toThrow("users' dotfiles");
    expect(() => checkRestricted(r("/home/alice/share", "r", "{,/**}", "filesystem h"), layout)).not.toThrow();
  });

  it("refuses recursive grants that would reach a restricted location", () => {
    expect(() => checkRestricted(r("/", "r", "{,/**}", "filesystem /mnt"), layout)).toThrow("/: filesystem /mnt: cannot grant the whole filesystem");
    expect(() => checkRestricted(r("/usr", "r", "{,/**}", "filesystem /mnt"), layout)).toThrow("/usr: filesystem /mnt: restricted location /usr is never granted to guests");
    expect(() => checkRestricted(r("/var/spool", "rw", "{,/**}", "filesystem /mnt"), layout)).toThrow(
      "/var/spool: filesystem /mnt: recursive access would include the restricted location /var/spool/cron",
    );
    expect(() => checkRestricted(r("/var", "rw", "/**"), layout)).toThrow("recursive access would include the restricted location /var/lib/virt-aa-hook");
    expect(() => checkRestricted(r("/dev", "rw", "/*"), layout)).toThrow("recursive access would include the restricted location /dev/mem");
    expect(() => checkRestricted(r("/srv/share", "rw", "{,/**}"), layout)).not.toThrow();
    expect(() => checkRestricted(r("/var/lib/libvirt/qemu/domain-1-vm", "rwk", "{,/**}"), layout)).not.toThrow();
  });
});

describe("the hook's own locations come from the layout", () => {
  it("refuses them where the config put them, and only there", () => {
    const moved = Layout.from("/", {
      cacheDir: "/srv/aa-cache",
      apparmorDir: "/srv/apparmor.d",
      template: "/srv/templates/TEMPLATE.qemu",
      logFile: "/srv/log/hook.log",
      featuresFile: "/srv/features",
      subdomainfs: "/srv/subdomainfs",
      emulatorDir: "/opt/qemu/bin",
    });
    for (const own of [
      "/srv/aa-cache",
      "/srv/apparmor.d",
      "/srv/templates/TEMPLATE.qemu",
      "/srv/log/hook.log",
      "/srv/features",
      "/srv/subdomainfs",
      "/opt/qemu/bin",
    ]) {
      expect(() => checkRestricted(r(`${own}`), moved)).toThrow(`${own}: disk vda: restricted location ${own} is never granted to guests`);
      expect(() => checkRestricted(r(own), layout)).not.toThrow();
    }
    expect(() => checkRestricted(r("/srv/apparmor.d/libvirt/libvirt-x.files", "rw"), moved)).toThrow("restricted location /srv/apparmor.d is never granted");
    expect(() => checkRestricted(r("/srv", "rw", "{,/**}"), moved)).toThrow("recursive access would include the restricted location /srv/log/hook.log");
    // The defaults are inside host locations already, which keep naming them.
    expect(() => checkRestricted(r("/var/cache/apparmor/virt-aa-hook/x"), layout)).toThrow("restricted location /var/cache/apparmor is never granted");
    expect(() => checkRestricted(r("/var/log/libvirt/virt-aa-hook.log"), layout)).toThrow("restricted location /var/log/libvirt/virt-aa-hook.log is never granted");
    expect(() => checkRestricted(r("/run/virt-aa-hook/locks/x"), layout)).toThrow("restricted location /run/virt-aa-hook is never granted");
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
