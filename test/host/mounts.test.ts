import { afterEach, describe, expect, it } from "vitest";
import { decodeOctalEscapes, hugetlbfsMounts } from "../../src/host/mounts.js";
import { HostFs } from "../../src/hostfs.js";
import { Layout } from "../../src/layout.js";
import { tempRoot, writeHostFile } from "../rules/fixtures.js";

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));
function hostFs(): { root: string; fs: HostFs } {
  const t = tempRoot();
  cleanups.push(t.cleanup);
  return { root: t.root, fs: new HostFs(new Layout(t.root)) };
}

describe("hugetlbfsMounts", () => {
  it("lists each hugetlbfs mount point once, in file order, decoding octal escapes", () => {
    const { root, fs } = hostFs();
    writeHostFile(
      root,
      "/proc/mounts",
      [
        "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0",
        "proc /proc proc rw 0 0",
        "none /mnt/huge\\0401G hugetlbfs rw,pagesize=1G 0 0",
        "hugetlbfs /dev/hugepages hugetlbfs rw 0 0",
        "",
      ].join("\n"),
    );
    expect(hugetlbfsMounts(fs)).toEqual(["/dev/hugepages", "/mnt/huge 1G"]);
  });

  it("falls back to /dev/hugepages when none is mounted or /proc/mounts is absent", () => {
    const { root, fs } = hostFs();
    expect(hugetlbfsMounts(fs)).toEqual(["/dev/hugepages"]);
    writeHostFile(root, "/proc/mounts", "proc /proc proc rw 0 0\n");
    expect(hugetlbfsMounts(fs)).toEqual(["/dev/hugepages"]);
  });
});

describe("decodeOctalEscapes", () => {
  it("decodes the kernel's 3-digit escapes and nothing else", () => {
    expect(decodeOctalEscapes("/a\\040b\\011c\\134d\\12")).toBe("/a b\tc\\d\\12");
  });
});
