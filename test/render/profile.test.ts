import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { HostError } from "../../src/errors.js";
import { renderFiles, renderProfile } from "../../src/render/index.js";
import { compileGuest, compileProfile, exprMatches, guestRuleExprs, TEMPLATE_QEMU } from "../helpers/apparmor.js";

const UUID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
const NAME = `libvirt-${UUID}`;
const INCLUDE = `libvirt/${NAME}.files`;
const realTemplate = readFileSync(TEMPLATE_QEMU, "utf8");

describe("renderProfile", () => {
  it("turns the real TEMPLATE.qemu into the per-guest profile, exactly", () => {
    expect(renderProfile(realTemplate, NAME, INCLUDE)).toBe(
      [
        "#",
        "# This profile is for the domain whose UUID matches this file.",
        "#",
        "",
        "#include <tunables/global>",
        "",
        `profile ${NAME} flags=(attach_disconnected) {`,
        "  #include <abstractions/libvirt-qemu>",
        `  include if exists <libvirt/${NAME}.files>`,
        "}",
        "",
      ].join("\n"),
    );
  });

  it("compiles with the real abstraction and an empty .files", async () => {
    expect(await compileGuest(UUID, renderFiles({ name: "g", uuid: UUID }, []))).toEqual({ ok: true, stderr: "" });
  });

  it("really includes the .files: its rule reaches the compiled profile", async () => {
    const probe = "/srv/probe-only-in-files.img";
    const without = await guestRuleExprs(UUID, "");
    const withRule = await guestRuleExprs(UUID, `  "${probe}" r,\n`);
    expect(without.some((e) => exprMatches(e, probe))).toBe(false);
    expect(withRule.some((e) => exprMatches(e, probe))).toBe(true);
  });

  it("still compiles when the .files is gone (include if exists); the older plain include does not", async () => {
    const profile = renderProfile(realTemplate, NAME, INCLUDE);
    expect(await compileProfile(profile)).toEqual({ ok: true, stderr: expect.any(String) });
    // Negative control: the include of older versions fails without the .files.
    const legacy = await compileProfile(profile.replace(`include if exists <${INCLUDE}>`, `#include <${INCLUDE}>`));
    expect(legacy.ok).toBe(false);
    expect(legacy.stderr).toContain(`${NAME}.files`);
  });

  it("puts the include before a closing brace that shares a line, and skips braces in comments and strings", () => {
    const template = [
      "# profile LIBVIRT_TEMPLATE { in a comment }",
      '@{X}="/a{b"',
      "profile LIBVIRT_TEMPLATE {",
      '  "/srv/}" r, # } not the end',
      "  /usr/{bin,sbin}/x r,",
      "  ^hat { /h r, }",
      "  /y r, }",
      "# trailer",
    ].join("\n");
    expect(renderProfile(template, NAME, INCLUDE)).toBe(
      [
        "# profile LIBVIRT_TEMPLATE { in a comment }",
        '@{X}="/a{b"',
        `profile ${NAME} {`,
        '  "/srv/}" r, # } not the end',
        "  /usr/{bin,sbin}/x r,",
        "  ^hat { /h r, }",
        "  /y r, ",
        `  include if exists <${INCLUDE}>`,
        "}",
        "# trailer",
      ].join("\n"),
    );
  });

  it("replaces only the profile header, not other mentions of the placeholder", () => {
    const template = "profile LIBVIRT_TEMPLATE {\n  /LIBVIRT_TEMPLATE r,\n}\n";
    expect(renderProfile(template, NAME, INCLUDE)).toBe(`profile ${NAME} {\n  /LIBVIRT_TEMPLATE r,\n  include if exists <${INCLUDE}>\n}\n`);
  });

  it("rejects invalid profile names", () => {
    for (const bad of [
      `libvirt-${UUID.toUpperCase()}`,
      UUID,
      `libvirt-${UUID}x`,
      `libvirt-${UUID} { /** rw, }`,
      "libvirt-",
      `libvirt-${UUID}\n`,
    ]) {
      expect(() => renderProfile(realTemplate, bad, INCLUDE)).toThrow(`invalid profile name ${JSON.stringify(bad)}`);
    }
  });

  it("rejects include names that could end the directive or leave the include dir", () => {
    for (const bad of ["libvirt/x.files>\n/** rw,", "../x", "libvirt/../../etc/x", "/abs", "a b", ""]) {
      expect(() => renderProfile(realTemplate, NAME, bad)).toThrow(`invalid include name ${JSON.stringify(bad)}`);
    }
  });

  it("throws HostError for a template without the placeholder header or block", () => {
    const cases: [string, string][] = [
      ["profile other {\n}\n", "AppArmor template has no 'profile LIBVIRT_TEMPLATE' header"],
      ["# profile LIBVIRT_TEMPLATE {\n}\n", "AppArmor template has no 'profile LIBVIRT_TEMPLATE' header"],
      ["profile LIBVIRT_TEMPLATEX {\n}\n", "AppArmor template has no 'profile LIBVIRT_TEMPLATE' header"],
      ["", "AppArmor template has no 'profile LIBVIRT_TEMPLATE' header"],
      ["profile LIBVIRT_TEMPLATE flags=(attach_disconnected)\n", "has no complete { ... } block"],
      ["profile LIBVIRT_TEMPLATE {\n  /a r,\n", "has no complete { ... } block"],
      ["profile LIBVIRT_TEMPLATE }\n", "has no complete { ... } block"],
    ];
    for (const [template, message] of cases) {
      expect(() => renderProfile(template, NAME, INCLUDE)).toThrow(HostError);
      expect(() => renderProfile(template, NAME, INCLUDE)).toThrow(message);
    }
  });
});
