import { describe, expect, it } from "vitest";
import { runtimeRules as runtimeRulesWithOrigin, shortName } from "../../src/rules/runtime.js";
import { baseDomain, expectPathError, ruleContext, writeHostFile, withoutOrigins, tempRootsPerTest } from "./fixtures.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const runtimeRules = withoutOrigins(runtimeRulesWithOrigin);

const root = tempRootsPerTest();

describe("shortName", () => {
  it("keeps a short name whole", () => {
    expect(shortName(3, "vm1")).toBe("3-vm1");
  });

  it("cuts an ASCII name to its first 20 characters", () => {
    expect(shortName(12, "web-frontend-production-eu-west")).toBe("12-web-frontend-product");
  });

  it("counts code points, not UTF-16 units: 25 emoji keep 20 whole emoji", () => {
    const name = "😀".repeat(25);
    expect(shortName(1, name)).toBe(`1-${"😀".repeat(20)}`);
    expect(name.slice(0, 20)).toBe("😀".repeat(10)); // what a UTF-16 cut would have kept
  });

  // Expected values are what libvirt 9.0's own virDomainDefGetShortName returned for these names
  // (called through ctypes in a C.UTF-8 locale on Debian 12), with the id changed.
  it("counts characters, not bytes: CJK and mixed names are never split inside a character", () => {
    expect(shortName(4, "仮想マシンのテスト用ドメイン名前がとても長い")).toBe("4-仮想マシンのテスト用ドメイン名前がとても");
    expect(shortName(5, "ab😀cdéfghijklmnopqrstuv")).toBe("5-ab😀cdéfghijklmnopqrs");
  });
});

describe("runtimeRules", () => {
  it("grants pid file, private dir and channel dir for a running guest (no log: stdio_handler is logd)", () => {
    expect(runtimeRules(ruleContext(baseDomain({ name: "vm1", id: 7 })))).toEqual([
      { path: "/run/libvirt/qemu/vm1.pid", suffix: "", perms: "rwk", source: "pidfile" },
      { path: "/var/lib/libvirt/qemu/domain-7-vm1", suffix: "{,/**}", perms: "rwk", source: "private dir" },
      { path: "/var/lib/libvirt/qemu/channel/target/domain-7-vm1", suffix: "{,/**}", perms: "rw", source: "channel dir" },
    ]);
  });

  it("reads the guest's own managed save image only when one exists (a restoring start)", () => {
    const r = root();
    const without = runtimeRules(ruleContext(baseDomain({ name: "vm1", id: 7 }), r));
    expect(without.map((x) => x.source)).toEqual(["pidfile", "private dir", "channel dir"]);
    writeHostFile(r, "/var/lib/libvirt/qemu/save/vm1.save", "saved state");
    writeHostFile(r, "/var/lib/libvirt/qemu/save/vm2.save", "another guest's saved state");
    expect(runtimeRules(ruleContext(baseDomain({ name: "vm1", id: 7 }), r)).slice(0, 2)).toEqual([
      { path: "/run/libvirt/qemu/vm1.pid", suffix: "", perms: "rwk", source: "pidfile" },
      { path: "/var/lib/libvirt/qemu/save/vm1.save", suffix: "", perms: "r", source: "managed save image" },
    ]);
  });

  it("uses the full name for log and pid file but the short name for the id-based dirs", () => {
    const name = "a-very-long-guest-name-for-testing";
    expect(runtimeRules(ruleContext(baseDomain({ name, id: 42 })))).toEqual([
      { path: `/run/libvirt/qemu/${name}.pid`, suffix: "", perms: "rwk", source: "pidfile" },
      { path: "/var/lib/libvirt/qemu/domain-42-a-very-long-guest-na", suffix: "{,/**}", perms: "rwk", source: "private dir" },
      {
        path: "/var/lib/libvirt/qemu/channel/target/domain-42-a-very-long-guest-na",
        suffix: "{,/**}",
        perms: "rw",
        source: "channel dir",
      },
    ]);
  });

  it("grants only the pid file when the XML has no id (stopped/release)", () => {
    expect(runtimeRules(ruleContext(baseDomain({ name: "vm1", id: undefined, memoryBacking: { hugepages: true } })))).toEqual([
      { path: "/run/libvirt/qemu/vm1.pid", suffix: "", perms: "rwk", source: "pidfile" },
    ]);
  });

  it("grants the per-guest dir under every hugetlbfs mount listed in /proc/mounts", () => {
    const r = root();
    writeHostFile(
      r,
      "/proc/mounts",
      [
        "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0",
        "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0",
        "none /mnt/huge\\0401G hugetlbfs rw,relatime,pagesize=1024M 0 0",
        "tmpfs /dev/hugepages-fake tmpfs rw 0 0",
        "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0",
        "",
      ].join("\n"),
    );
    const ctx = ruleContext(baseDomain({ name: "😀".repeat(21), id: 3, memoryBacking: { hugepages: true } }), r);
    expect(runtimeRules(ctx).filter((x) => x.source === "hugepages")).toEqual([
      { path: `/dev/hugepages/libvirt/qemu/3-${"😀".repeat(20)}`, suffix: "{,/**}", perms: "rw", source: "hugepages" },
      { path: `/mnt/huge 1G/libvirt/qemu/3-${"😀".repeat(20)}`, suffix: "{,/**}", perms: "rw", source: "hugepages" },
    ]);
  });

  it("falls back to /dev/hugepages when no hugetlbfs is mounted (or /proc/mounts is absent)", () => {
    const r = root();
    writeHostFile(r, "/proc/mounts", "proc /proc proc rw 0 0\n");
    const domain = baseDomain({ id: 9, memoryBacking: { hugepages: true } });
    expect(runtimeRules(ruleContext(domain, r)).filter((x) => x.source === "hugepages")).toEqual([
      { path: "/dev/hugepages/libvirt/qemu/9-vm1", suffix: "{,/**}", perms: "rw", source: "hugepages" },
    ]);
    expect(runtimeRules(ruleContext(domain)).filter((x) => x.source === "hugepages")).toEqual([
      { path: "/dev/hugepages/libvirt/qemu/9-vm1", suffix: "{,/**}", perms: "rw", source: "hugepages" },
    ]);
  });

  it("grants the file-backed RAM dir for <source type='file'/> only", () => {
    const file = baseDomain({ id: 5, memoryBacking: { sourceType: "file" } });
    expect(runtimeRules(ruleContext(file)).filter((x) => x.source === "memory backing")).toEqual([
      { path: "/var/lib/libvirt/qemu/ram/5-vm1", suffix: "{,/**}", perms: "rw", source: "memory backing" },
    ]);
    for (const sourceType of ["memfd", "anonymous", undefined]) {
      const other = baseDomain({ id: 5, memoryBacking: { sourceType } });
      expect(runtimeRules(ruleContext(other)).map((x) => x.source)).toEqual(["pidfile", "private dir", "channel dir"]);
    }
  });

  it.each(["../../etc/cron.d/x", "a/b", ".", "..", ""])("rejects the name %j, which cannot be a file name", (name) => {
    expectPathError(() => runtimeRules(ruleContext(baseDomain({ name }))), name, "<name>: domain name cannot be used as a file name");
  });
});
