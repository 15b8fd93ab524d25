/**
 * What a `<vah:allow>` (origin "metadata") may name, judged purely (policy/provenance.ts) with the
 * host facts given as data. Each refusal has its negative control: the same kind of entry naming
 * what it may.
 */
import { describe, expect, it } from "vitest";
import { Layout } from "../../src/layout.js";
import { refusal, type PathFacts, type PolicyInput } from "../../src/policy/index.js";
import type { Rule } from "../../src/ir.js";
import { runtimeOwnership } from "../../src/rules/ownership.js";
import { baseDomain } from "../rules/fixtures.js";
import { defaultQemuConf } from "../../src/host/qemu-conf.js";

const layout = new Layout("/");
const input: PolicyInput = { ownership: runtimeOwnership(baseDomain({ name: "vm1", id: 7 }), layout, defaultQemuConf(layout)), host: { hugetlbfsMounts: ["/dev/hugepages"] }, layout };
const facts = (type: PathFacts["type"], over: Partial<PathFacts> = {}): PathFacts => ({ type, swap: false, blockUse: [], ...over });
const FILE = facts("file");
const DIR = facts("dir");
const MISSING = facts("missing");

/** A metadata rule as rules/metadata.ts builds it. */
const allow = (path: string, opts: { rw?: boolean; tree?: boolean } = {}): Rule => ({
  path,
  perms: opts.rw ? "rwk" : "rk",
  suffix: opts.tree ? "{,/**}" : "",
  source: "metadata allow 1",
  origin: { kind: "metadata" },
});
const judge = (rule: Rule, f: PathFacts) => refusal(rule, f, input);

const RUNTIME = "holds libvirt's runtime state for every guest and for libvirt itself; only this guest's own entries (named after its id, name and UUID) are granted";
const NO_DEVICE = (p: string) =>
  `metadata allow 1: ${p} is not a device node a pre-authorised path (<vah:allow> in the domain's metadata) may use (it may use none); name a device of that kind or remove the element`;

describe("metadata allows: granted (the controls)", () => {
  it("a file (existing or not yet), read or read-write, and an existing directory as a tree", () => {
    expect(judge(allow("/srv/iso/installer.iso"), FILE)).toBeUndefined();
    expect(judge(allow("/var/lib/libvirt/images/vm1-overlay.qcow2", { rw: true }), MISSING)).toBeUndefined();
    expect(judge(allow("/var/lib/libvirt/images/vm1-snapshots", { rw: true, tree: true }), DIR)).toBeUndefined();
    expect(judge(allow("/srv/hotplug", { tree: true }), DIR)).toBeUndefined();
    // The guest's own runtime directory, like its own runtime files.
    expect(judge(allow("/var/lib/libvirt/qemu/domain-7-vm1/extra", { rw: true, tree: true }), DIR)).toBeUndefined();
  });
});

describe("metadata allows: refused, each with its control", () => {
  it("restricted locations, read or written, file or tree", () => {
    expect(judge(allow("/etc/shadow"), FILE)).toBe("metadata allow 1: restricted location /etc is never granted to guests");
    expect(judge(allow("/root", { tree: true }), DIR)).toBe("metadata allow 1: restricted location /root is never granted to guests");
    expect(judge(allow("/var", { tree: true }), DIR)).toMatch(/^metadata allow 1: recursive access would include the restricted location \/var\//);
    expect(judge(allow("/home/alice", { rw: true, tree: true }), DIR)).toMatch(/^metadata allow 1: .*users' dotfiles/);
    // Control: a home directory's own file.
    expect(judge(allow("/home/alice/disk.img", { rw: true }), FILE)).toBeUndefined();
  });

  it("sysfs, even a PCI device's own assignment file (only its <hostdev> may), and /proc", () => {
    expect(judge(allow("/sys/bus/pci/devices/0000:03:00.0/config", { rw: true }), FILE)).toBe(
      "metadata allow 1: sysfs files of a host device are granted only to the <hostdev> (or <tpm> passthrough) that assigns that very device, not to a pre-authorised path (<vah:allow> in the domain's metadata); assign the device with a <hostdev> instead",
    );
    expect(judge(allow("/sys/kernel", { tree: true }), DIR)).toBe("metadata allow 1: restricted location /sys is never granted to guests");
    expect(judge(allow("/proc/1/mem"), FILE)).toBe("metadata allow 1: restricted location /proc is never granted to guests");
  });

  it("device nodes of any kind, under /dev or outside it; block devices too", () => {
    expect(judge(allow("/dev/null", { rw: true }), facts("char"))).toBe(
      "metadata allow 1: /dev/null is a character device; <allow> pre-authorises regular files and directories only (a device or socket belongs in its own element, e.g. <disk type='block'>)",
    );
    expect(judge(allow("/dev/sdz", { rw: true }), MISSING)).toBe(NO_DEVICE("/dev/sdz"));
    expect(judge(allow("/dev/kvm"), MISSING)).toBe(NO_DEVICE("/dev/kvm"));
    expect(judge(allow("/dev/sdc", { rw: true }), facts("block"))).toBe(
      "metadata allow 1: /dev/sdc is a block device; <allow> pre-authorises regular files and directories only (a device or socket belongs in its own element, e.g. <disk type='block'>)",
    );
    expect(judge(allow("/srv/node", { rw: true }), facts("block"))).toContain("/srv/node is a block device; <allow> pre-authorises regular files and directories only");
    expect(judge(allow("/srv/node", { rw: true }), facts("char"))).toContain("/srv/node is a character device;");
    // Control: the same path as a regular file.
    expect(judge(allow("/srv/node", { rw: true }), FILE)).toBeUndefined();
  });

  it("sockets and FIFOs", () => {
    expect(judge(allow("/srv/app.sock", { rw: true }), facts("socket"))).toContain("/srv/app.sock is a socket; <allow> pre-authorises regular files and directories only");
    expect(judge(allow("/srv/fifo", { rw: true }), facts("fifo"))).toContain("/srv/fifo is a FIFO; <allow> pre-authorises regular files and directories only");
  });

  it("a tree must be an existing directory; a directory must be a tree", () => {
    expect(judge(allow("/srv/later", { rw: true, tree: true }), MISSING)).toBe(
      'metadata allow 1: tree="yes" needs an existing directory and /srv/later does not exist; create it before the guest starts',
    );
    expect(judge(allow("/srv/file.img", { rw: true, tree: true }), FILE)).toBe(
      'metadata allow 1: tree="yes" needs a directory and /srv/file.img is a regular file; remove tree="yes" to grant the file alone',
    );
    expect(judge(allow("/srv/dir", { rw: true }), DIR)).toBe('metadata allow 1: /srv/dir is a directory; add tree="yes" to grant it and everything below it');
    // Controls.
    expect(judge(allow("/srv/dir", { rw: true, tree: true }), DIR)).toBeUndefined();
    expect(judge(allow("/srv/file.img", { rw: true }), FILE)).toBeUndefined();
  });

  it("a tree over libvirt's images directory as a whole, or above it; a tree below it is the control", () => {
    const images = "recursive access would include /var/lib/libvirt/images, where libvirt keeps every guest's images; name a directory of this guest's own below it";
    expect(judge(allow("/var/lib/libvirt/images", { tree: true }), DIR)).toBe(`metadata allow 1: ${images}`);
    expect(judge(allow("/var/lib/libvirt/images", { rw: true, tree: true }), DIR)).toBe(`metadata allow 1: ${images}`);
    // Above it: /var/lib/libvirt holds the restricted dnsmasq directory and the managed roots.
    expect(judge(allow("/var/lib/libvirt", { tree: true }), DIR)).toMatch(/^metadata allow 1: recursive access would include /);
    expect(judge(allow("/var/lib/libvirt/images/vm1", { rw: true, tree: true }), DIR)).toBeUndefined();
    // A single image in it is a file like any disk's.
    expect(judge(allow("/var/lib/libvirt/images/shared.iso"), FILE)).toBeUndefined();
  });

  it("libvirt's managed roots and other guests' runtime entries; trees over device trees and shared memory", () => {
    expect(judge(allow("/var/lib/libvirt/qemu/domain-3-other/monitor.sock", { rw: true }), MISSING)).toBe(
      `metadata allow 1: /var/lib/libvirt/qemu ${RUNTIME}; name a path outside /var/lib/libvirt/qemu`,
    );
    expect(judge(allow("/run/libvirt/qemu/other.xml"), FILE)).toBe(`metadata allow 1: /run/libvirt ${RUNTIME}; name a path outside /run/libvirt`);
    expect(judge(allow("/var/lib/libvirt/qemu", { tree: true }), DIR)).toBe(
      "metadata allow 1: recursive access would include /var/lib/libvirt/qemu, libvirt's runtime state for other guests and for itself; share a directory of its own instead",
    );
    expect(judge(allow("/dev/input", { tree: true }), DIR)).toBe("metadata allow 1: recursive access would include the device nodes below /dev/input; share a directory of its own instead");
    expect(judge(allow("/dev/shm", { tree: true }), DIR)).toBe("metadata allow 1: recursive access would include /dev/shm, the shared memory of other host processes; share a directory of its own instead");
    expect(judge(allow("/dev/shm/pulse-shm-1", { rw: true }), FILE)).toBe(
      "metadata allow 1: /dev/shm holds the shared memory of other host processes; only a <shmem> may name an object there; use another directory",
    );
    expect(judge(allow("/dev/hugepages/libvirt/qemu/3-other", { tree: true }), DIR)).toMatch(/^metadata allow 1: recursive access would include \/dev\/hugepages, libvirt.s runtime state/);
  });

  it("an active swap file", () => {
    expect(judge(allow("/swapfile", { rw: true }), facts("file", { swap: true }))).toBe(
      "metadata allow 1: active swap area (listed in /proc/swaps): it holds host memory; never give it to a guest",
    );
  });
});
