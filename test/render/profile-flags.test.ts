import { describe, expect, it } from "vitest";
import { legacyFilesInclude, profileFlags } from "../../src/render/index.js";

const N = "libvirt-11111111-1111-4111-8111-111111111111";
const INC = `libvirt/${N}.files`;

describe("profileFlags: the flags of the guest's own profile header", () => {
  it("reads flags=(...) of that profile only, not of a comment or another profile", () => {
    expect(profileFlags(`#include <tunables/global>\nprofile ${N} flags=(attach_disconnected, complain) {\n}\n`, N)).toEqual(["attach_disconnected", "complain"]);
    expect(profileFlags(`# profile ${N} flags=(complain) {\nprofile ${N} flags=(attach_disconnected) {\n}\n`, N)).toEqual(["attach_disconnected"]);
    expect(profileFlags(`profile ${N}x flags=(complain) {\n}\nprofile ${N} {\n}\n`, N)).toEqual([]);
    expect(profileFlags(`${N} flags = ( complain ) {\n}\n`, N)).toEqual(["complain"]);
  });
});

describe("legacyFilesInclude: the plain include of older versions", () => {
  it("finds #include and include, not include if exists nor a comment", () => {
    expect(legacyFilesInclude(`profile x {\n  #include <${INC}>\n}`, INC)).toBe(true);
    expect(legacyFilesInclude(`profile x {\n  include <${INC}>\n}`, INC)).toBe(true);
    expect(legacyFilesInclude(`profile x {\n  include if exists <${INC}>\n}`, INC)).toBe(false);
    expect(legacyFilesInclude(`profile x {\n  # include <${INC}>\n}`, INC)).toBe(false);
    expect(legacyFilesInclude(`profile x {\n  #include <${INC}x>\n}`, INC)).toBe(false);
  });
});
