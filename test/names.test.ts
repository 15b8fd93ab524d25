import { describe, expect, it } from "vitest";
import { canonicalUuid, isCanonicalUuid, isFileNameComponent, isProfileName } from "../src/names.js";

const UUID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

describe("UUIDs", () => {
  it("canonical means lower-case 8-4-4-4-12", () => {
    expect(isCanonicalUuid(UUID)).toBe(true);
    for (const bad of [UUID.toUpperCase(), UUID.replace(/-/g, ""), ` ${UUID}`, `${UUID}-`, UUID.replace("0b", "0g"), ""]) expect(isCanonicalUuid(bad), bad).toBe(false);
  });

  it("reads both forms libvirt accepts, in either case, into the canonical form", () => {
    expect(canonicalUuid(UUID)).toBe(UUID);
    expect(canonicalUuid(UUID.toUpperCase())).toBe(UUID);
    expect(canonicalUuid(UUID.replace(/-/g, ""))).toBe(UUID);
    for (const bad of [` ${UUID}`, `${UUID}0`, "0b1c2d3e4f50-6172-8394-a5b6c7d8e9f0", "not-a-uuid", ""]) expect(canonicalUuid(bad), bad).toBeUndefined();
  });

  it("a profile name is libvirt- and a canonical UUID", () => {
    expect(isProfileName(`libvirt-${UUID}`)).toBe(true);
    for (const bad of [UUID, `libvirt-${UUID.toUpperCase()}`, `libvirt-${UUID}.files`, `libvirt-${UUID}\n`]) expect(isProfileName(bad), bad).toBe(false);
  });
});

describe("isFileNameComponent", () => {
  it("refuses what would not stay one path component", () => {
    for (const good of ["web01", "a b", "...", ".hidden", "é雪"]) expect(isFileNameComponent(good), good).toBe(true);
    for (const bad of ["", ".", "..", "a/b", "/", "a\0b"]) expect(isFileNameComponent(bad), bad).toBe(false);
  });
});
