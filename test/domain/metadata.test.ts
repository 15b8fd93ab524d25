/**
 * The domain's own settings in <metadata> (src/domain/metadata.ts): matched by namespace URI
 * whatever the prefix, other namespaces ignored, every fault in ours located and exact.
 */
import { describe, expect, it } from "vitest";
import { GuestError } from "../../src/errors.js";
import { parseDomain } from "../../src/domain/index.js";
import { MAX_METADATA_ALLOWS } from "../../src/domain/limits.js";

const UUID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
const NS = "https://virt-aa-hook.org/xmlns/guest/1";

const domain = (metadata: string) => `<domain type='kvm'><name>g1</name><uuid>${UUID}</uuid><metadata>${metadata}</metadata><devices/></domain>`;
/** Our element with prefix `vah` (as `virsh metadata --key vah` writes it). */
const ours = (body: string, prefix = "vah") => `<${prefix}:guest xmlns:${prefix}="${NS}">${body}</${prefix}:guest>`;

function rejection(xml: string): [string, string, string] {
  try {
    parseDomain(xml);
  } catch (err) {
    if (err instanceof GuestError) return [err.guest, err.path, err.reason];
    throw err;
  }
  throw new Error("parseDomain accepted the input");
}

describe("<metadata> settings: what is read", () => {
  it("reads mode and allow entries in document order", () => {
    const d = parseDomain(
      domain(
        ours(
          `<vah:mode>complain</vah:mode><vah:allow path="/var/lib/libvirt/images/vm1-snapshots/" access="rw" tree="yes"/>` +
            `<vah:allow path="/srv/iso/installer.iso" access="r"/><vah:allow path="/srv/x" access="r" tree="no"/>`,
        ),
      ),
    );
    expect(d.settings).toEqual({
      mode: "complain",
      allow: [
        { path: "/var/lib/libvirt/images/vm1-snapshots/", access: "rw", tree: true },
        { path: "/srv/iso/installer.iso", access: "r", tree: false },
        { path: "/srv/x", access: "r", tree: false },
      ],
    });
  });

  it("matches the namespace by URI: any prefix, the default namespace, a declaration on <metadata>", () => {
    const body = (p: string) => `<${p}mode>enforce</${p}mode><${p}allow path="/srv/a" access="r"/>`;
    const expected = { mode: "enforce", allow: [{ path: "/srv/a", access: "r", tree: false }] };
    expect(parseDomain(domain(ours(body("other:"), "other"))).settings).toEqual(expected);
    expect(parseDomain(domain(`<guest xmlns="${NS}">${body("")}</guest>`)).settings).toEqual(expected);
    expect(parseDomain(`<domain type='kvm' xmlns:v="${NS}"><name>g1</name><uuid>${UUID}</uuid><metadata><v:guest>${body("v:")}</v:guest></metadata></domain>`).settings).toEqual(expected);
    // Entities in the URI are decoded before it is compared.
    expect(parseDomain(domain(`<x:guest xmlns:x="https://virt-aa-hook.org/xmlns/guest/&#49;">${body("x:")}</x:guest>`)).settings).toEqual(expected);
  });

  it("a prefix bound to another URI, or not bound at all, is not ours: the domain has no settings", () => {
    expect(parseDomain(domain(`<vah:guest xmlns:vah="https://virt-aa-hook.org/xmlns/guest/2"><vah:mode>complain</vah:mode></vah:guest>`)).settings).toBeUndefined();
    expect(parseDomain(domain(`<vah:guest><vah:mode>complain</vah:mode></vah:guest>`)).settings).toBeUndefined();
    expect(parseDomain(domain(`<guest><mode>complain</mode></guest>`)).settings).toBeUndefined();
    // An inner redeclaration of the prefix wins over the outer one.
    expect(parseDomain(domain(`<a xmlns:vah="${NS}"><vah:guest xmlns:vah="urn:other"><vah:mode>complain</vah:mode></vah:guest></a>`)).settings).toBeUndefined();
  });

  it("ignores other namespaces' elements, beside ours and inside it", () => {
    const libosinfo = `<libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0"><libosinfo:os id="http://debian.org/debian/12"/></libosinfo:libosinfo>`;
    expect(parseDomain(domain(libosinfo)).settings).toBeUndefined();
    expect(parseDomain(domain(libosinfo + ours(`<o:mode xmlns:o="urn:other">garbage</o:mode><vah:allow path="/srv/a" access="r"/>`))).settings).toEqual({
      allow: [{ path: "/srv/a", access: "r", tree: false }],
    });
    expect(parseDomain(domain(ours(""))).settings).toEqual({ allow: [] });
  });

  it("no <metadata>, or only other applications' metadata: no settings field at all", () => {
    expect("settings" in parseDomain(`<domain type='kvm'><name>g1</name><uuid>${UUID}</uuid></domain>`)).toBe(false);
  });
});

describe("<metadata> settings: located faults", () => {
  const G = "metadata/vah:guest";
  const cases: Array<[string, string, string, string]> = [
    ["an unknown element of our namespace", ours(`<vah:allows path="/srv/a" access="r"/>`), `${G}/vah:allows`, `unknown element <allows> of namespace ${NS} (expected <mode> or <allow>)`],
    ["an element in no namespace (a forgotten prefix)", ours(`<mode>complain</mode>`), `${G}/mode`, `element <mode> is in no namespace: write it in namespace ${NS} (with the prefix of <vah:guest>)`],
    ["a top element of ours that is not <guest>", `<vah:settings xmlns:vah="${NS}"/>`, "metadata/vah:settings", `unknown element <settings> of namespace ${NS} (expected <guest>)`],
    ["two elements of ours", ours("") + `<v2:guest xmlns:v2="${NS}"/>`, "metadata/v2:guest", `more than one element of namespace ${NS}: found 2, expected one <guest>`],
    ["a duplicate mode", ours(`<vah:mode>enforce</vah:mode><vah:mode>complain</vah:mode>`), `${G}/vah:mode[2]`, "duplicate <mode>: a guest has one mode"],
    ["a bad mode", ours(`<vah:mode>off</vah:mode>`), `${G}/vah:mode`, 'invalid mode "off" (expected enforce or complain)'],
    ["a mode with child elements", ours(`<vah:mode><vah:x/></vah:mode>`), `${G}/vah:mode`, "expected text (enforce or complain), found elements"],
    ["a bad access", ours(`<vah:allow path="/srv/a" access="rwx"/>`), `${G}/vah:allow`, 'attribute "access": invalid value "rwx" (expected r or rw)'],
    ["a missing access", ours(`<vah:allow path="/srv/a"/>`), `${G}/vah:allow`, 'missing attribute "access" (r or rw)'],
    ["a relative path", ours(`<vah:allow path="srv/a" access="r"/>`), `${G}/vah:allow`, 'attribute "path": not an absolute path: "srv/a"'],
    ["a parent-relative path", ours(`<vah:allow path="../etc/shadow" access="r"/>`), `${G}/vah:allow`, 'attribute "path": not an absolute path: "../etc/shadow"'],
    ["an empty path", ours(`<vah:allow path="" access="r"/>`), `${G}/vah:allow`, 'missing attribute "path"'],
    ["a bad tree", ours(`<vah:allow path="/srv/a" access="r" tree="1"/>`), `${G}/vah:allow`, 'attribute "tree": invalid value "1" (expected yes or no)'],
    ["an unknown attribute", ours(`<vah:allow path="/srv/a" access="r" perms="rwx"/>`), `${G}/vah:allow`, 'unknown attribute "perms" (expected path, access, tree)'],
    ["an attribute on <guest>", `<vah:guest xmlns:vah="${NS}" mode="complain"/>`, G, 'unknown attribute "mode"'],
    ["text in <allow>", ours(`<vah:allow path="/srv/a" access="r">/etc</vah:allow>`), `${G}/vah:allow`, "<allow> takes attributes only"],
    ["a path component over NAME_MAX", ours(`<vah:allow path="/srv/${"a".repeat(256)}" access="r"/>`), `${G}/vah:allow`, `attribute "path": path component "${"a".repeat(32)}..." is 256 bytes, more than 255 (NAME_MAX)`],
  ];
  it.each(cases)("%s", (_what, metadata, where, reason) => {
    expect(rejection(domain(metadata))).toEqual(["g1", where, reason]);
  });

  it(`at most ${MAX_METADATA_ALLOWS} <allow> entries (the limit), and exactly that many are read`, () => {
    const entries = (n: number) => Array.from({ length: n }, (_, i) => `<vah:allow path="/srv/f${i}" access="r"/>`).join("");
    expect(parseDomain(domain(ours(entries(MAX_METADATA_ALLOWS)))).settings?.allow).toHaveLength(MAX_METADATA_ALLOWS);
    expect(rejection(domain(ours(entries(MAX_METADATA_ALLOWS + 1))))).toEqual([
      "g1",
      `${G}/vah:allow[${MAX_METADATA_ALLOWS + 1}]`,
      `more than ${MAX_METADATA_ALLOWS} <allow> entries (the per-guest limit)`,
    ]);
  });

  it("two <metadata> elements are refused, as every single element is (no guessing which libvirt used)", () => {
    const xml = `<domain type='kvm'><name>g1</name><uuid>${UUID}</uuid><metadata/><metadata/></domain>`;
    expect(rejection(xml)).toEqual(["g1", "<metadata>", "duplicate element: found 2, expected at most one"]);
  });
});
