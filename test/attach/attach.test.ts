import fc from "fast-check";
import { XMLParser } from "fast-xml-parser";
import { describe, expect, it } from "vitest";
import { AttachError, adoptXml, adoptionProblem, undoXml, type AttachPaths } from "../../src/attach/index.js";

const UUID = "0f1e2d3c-4b5a-4697-8877-665544332211";
const PATHS: AttachPaths = { wrapperDir: "/usr/lib/virt-aa-hook/bin", emulatorDir: "/usr/bin" };

// Shaped like `virsh dumpxml --inactive --security-info`, plus traps: an <emulator> in metadata
// (another namespace), in a comment and in CDATA, and a DAC seclabel that must stay.
function domainXml(opts: { emulator?: string; seclabels?: string; nl?: string } = {}): string {
  const nl = opts.nl ?? "\n";
  const lines = [
    "<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>",
    "  <name>web &amp; db</name>",
    `  <uuid>${UUID}</uuid>`,
    "  <metadata>",
    "    <app:info xmlns:app='urn:x'><emulator>/usr/bin/qemu-system-x86_64</emulator></app:info>",
    "  </metadata>",
    "  <description><![CDATA[<emulator>/usr/bin/qemu-system-x86_64</emulator>]]></description>",
    "  <memory unit='KiB'>65536</memory>",
    "  <os>",
    "    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>",
    "  </os>",
    "  <devices>",
    "    <!-- <emulator>/usr/bin/qemu-system-x86_64</emulator> -->",
    `    <emulator>${opts.emulator ?? "/usr/bin/qemu-system-x86_64"}</emulator>`,
    "    <disk type='file' device='disk'>",
    "      <source file='/var/lib/libvirt/images/a b.qcow2' attr='a&gt;b &apos;x&apos;'/>",
    "      <target dev='vda' bus='virtio'/>",
    "    </disk>",
    "  </devices>",
    ...(opts.seclabels ? [opts.seclabels] : []),
    "  <qemu:commandline>",
    "    <qemu:arg value='-msg'/>",
    "  </qemu:commandline>",
    "</domain>",
    "",
  ];
  return lines.join(nl);
}

const OUR_LABEL = [
  "  <seclabel type='static' model='apparmor' relabel='no'>",
  `    <label>libvirt-${UUID}</label>`,
  "  </seclabel>",
].join("\n");
const DAC = "  <seclabel type='dynamic' model='dac' relabel='yes'/>";

/** Exactly one occurrence of `from` replaced: proves the edit touched nothing else. */
function replacedOnce(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  expect(at).toBeGreaterThanOrEqual(0);
  expect(text.indexOf(from, at + 1)).toBe(-1);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

describe("adoptXml wrapper", () => {
  it("changes only the <devices><emulator> text, byte for byte", () => {
    const xml = domainXml();
    const out = adoptXml(xml, "wrapper", PATHS);
    expect(out).toBe(
      replacedOnce(
        xml,
        "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n    <disk",
        "    <emulator>/usr/lib/virt-aa-hook/bin/qemu-system-x86_64</emulator>\n    <disk",
      ),
    );
    expect(adoptXml(out, "wrapper", PATHS)).toBe(out);
    expect(undoXml(out, PATHS)).toBe(xml);
  });

  it("accepts a trailing slash in the configured directories", () => {
    const out = adoptXml(domainXml(), "wrapper", { wrapperDir: "/usr/lib/virt-aa-hook/bin/", emulatorDir: "/usr/bin/" });
    expect(out).toContain("<emulator>/usr/lib/virt-aa-hook/bin/qemu-system-x86_64</emulator>");
  });

  it("removes our static label when switching from seclabel mode, and keeps the DAC label", () => {
    const xml = domainXml({ seclabels: `${DAC}\n${OUR_LABEL}` });
    const out = adoptXml(xml, "wrapper", PATHS);
    expect(out).toBe(
      domainXml({ emulator: "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64", seclabels: DAC }),
    );
  });

  it("refuses an emulator outside emulator_dir (the wrapper would run another QEMU)", () => {
    expect(() => adoptXml(domainXml({ emulator: "/opt/qemu/bin/qemu-system-x86_64" }), "wrapper", PATHS)).toThrow(
      new AttachError(
        "web & db: <emulator> /opt/qemu/bin/qemu-system-x86_64 is not in emulator_dir /usr/bin: the wrapper would run a different QEMU",
      ),
    );
  });

  it("refuses an emulator name the wrapper does not stand in for", () => {
    expect(() => adoptXml(domainXml({ emulator: "/usr/bin/my-vmm" }), "wrapper", PATHS)).toThrow(
      'web & db: <emulator> /usr/bin/my-vmm: "my-vmm" is not a QEMU emulator name the wrapper stands in for',
    );
  });

  it("refuses a domain without <emulator>", () => {
    const xml = domainXml().replace(/ {4}<emulator>[^\n]*\n/, "");
    expect(() => adoptXml(xml, "wrapper", PATHS)).toThrow("web & db: no <devices><emulator>: cannot point it at the wrapper");
  });
});

describe("adoptXml seclabel", () => {
  it("inserts exactly the static label as the last child of <domain>, nothing else", () => {
    const xml = domainXml({ seclabels: DAC });
    const out = adoptXml(xml, "seclabel", PATHS);
    expect(out).toBe(replacedOnce(xml, "  </qemu:commandline>\n</domain>", `  </qemu:commandline>\n${OUR_LABEL}\n</domain>`));
    expect(adoptXml(out, "seclabel", PATHS)).toBe(out);
    expect(undoXml(out, PATHS)).toBe(xml);
  });

  it("keeps CRLF line ends", () => {
    const xml = domainXml({ nl: "\r\n" });
    const out = adoptXml(xml, "seclabel", PATHS);
    expect(out).toBe(replacedOnce(xml, "\r\n</domain>", `\r\n${OUR_LABEL.replace(/\n/g, "\r\n")}\r\n</domain>`));
    expect(undoXml(out, PATHS)).toBe(xml);
  });

  it("replaces libvirt's dynamic AppArmor label and points a wrapped emulator back at QEMU", () => {
    const dyn = "  <seclabel type='dynamic' model='apparmor' relabel='yes'/>";
    const xml = domainXml({ emulator: "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64", seclabels: `${dyn}\n${DAC}` });
    const out = adoptXml(xml, "seclabel", PATHS);
    const expected = domainXml({ seclabels: DAC }).replace("  </qemu:commandline>\n</domain>", `  </qemu:commandline>\n${OUR_LABEL}\n</domain>`);
    expect(out).toBe(expected);
  });

  it("refuses a domain with <seclabel type='none'/> for every driver", () => {
    expect(() => adoptXml(domainXml({ seclabels: "  <seclabel type='none'/>" }), "seclabel", PATHS)).toThrow(
      `web & db: <seclabel type='none'/> turns off every security driver: remove it, or use attach = "wrapper"`,
    );
  });

  it("produces XML a real parser reads with the label and every original value intact", () => {
    const out = adoptXml(domainXml({ seclabels: DAC }), "seclabel", PATHS);
    const doc = new XMLParser({ ignoreAttributes: false, parseTagValue: false, isArray: (n) => n === "seclabel" }).parse(out);
    expect(doc.domain.seclabel).toEqual([
      { "@_type": "dynamic", "@_model": "dac", "@_relabel": "yes" },
      { "@_type": "static", "@_model": "apparmor", "@_relabel": "no", label: `libvirt-${UUID}` },
    ]);
    expect(doc.domain.devices.emulator).toBe("/usr/bin/qemu-system-x86_64");
    expect(doc.domain.name).toBe("web & db");
  });
});

describe("adoptXml none / undoXml", () => {
  it("mode none undoes both modes", () => {
    const xml = domainXml({ seclabels: DAC });
    const both = domainXml({ emulator: "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64", seclabels: `${DAC}\n${OUR_LABEL}` });
    expect(adoptXml(both, "none", PATHS)).toBe(xml);
    expect(undoXml(both, PATHS)).toBe(xml);
  });

  it("undo leaves a static label for another profile alone", () => {
    const other = OUR_LABEL.replace(`libvirt-${UUID}`, "libvirt-custom");
    const xml = domainXml({ seclabels: other });
    expect(undoXml(xml, PATHS)).toBe(xml);
  });

  it("round-trips arbitrary text in the rest of the document", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.constantFrom<"wrapper" | "seclabel">("wrapper", "seclabel"), (generated, mode) => {
        // Only characters XML allows: the others are refused (tested below).
        const text = generated.replace(XML_ILLEGAL, "");
        const escaped = text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
        // A function replacement: "$&" or "$<" in the generated text must stay literal.
        const xml = domainXml().replace("<memory unit='KiB'>", () => `<title>${escaped}</title>\n  <memory unit='KiB'>`);
        const out = adoptXml(xml, mode, PATHS);
        expect(out).toContain(`<title>${escaped}</title>`);
        expect(undoXml(out, PATHS)).toBe(xml);
      }),
    );
  });
});

const XML_ILLEGAL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

describe("hostile or broken XML", () => {
  it.each([
    ["an escape character in the name by reference", domainXml().replace("<name>web &amp; db</name>", "<name>web&#x1b;[31m</name>"), 'cannot read domain XML: character reference "&#x1b;" is not allowed in XML'],
    ["NUL by reference", domainXml().replace("<name>web &amp; db</name>", "<name>web&#0;</name>"), 'cannot read domain XML: character reference "&#0;" is not allowed in XML'],
    ["U+FFFE by reference", domainXml().replace("<name>web &amp; db</name>", "<name>web&#xFFFE;</name>"), 'cannot read domain XML: character reference "&#xFFFE;" is not allowed in XML'],
    ["a reference beyond Unicode", domainXml().replace("<name>web &amp; db</name>", "<name>web&#x110000;</name>"), 'cannot read domain XML: character reference "&#x110000;" is not allowed in XML'],
    ["a newline in the name by reference (legal XML, not a name)", domainXml().replace("<name>web &amp; db</name>", "<name>web&#10;db</name>"), "cannot read domain XML: <name> contains control character U+000A"],
    ["a raw escape character", domainXml().replace("<name>web &amp; db</name>", "<name>web\u001b[31m</name>"), "cannot read domain XML: character U+001B is not allowed in XML"],
    ["a DOCTYPE (entity declarations)", `<!DOCTYPE domain [<!ENTITY x "y">]>\n${domainXml()}`, "cannot read domain XML: DOCTYPE and other declarations are not accepted"],
    ["an unclosed element", domainXml().replace("</devices>", ""), "cannot read domain XML: end tag </domain> at offset"],
    ["another root", "<network><uuid>x</uuid></network>", "cannot read domain XML: the root element is not <domain>"],
    ["a bad UUID", domainXml().replace(UUID, "not-a-uuid"), 'web & db: <uuid> "not-a-uuid" is not a canonical UUID'],
    ["two emulators", domainXml().replace("<devices>", "<devices><emulator>/x</emulator>"), "domain XML has 2 <domain><devices><emulator> elements"],
  ])("refuses %s", (_what, xml, message) => {
    expect(() => adoptXml(xml, "seclabel", PATHS)).toThrow(AttachError);
    expect(() => adoptXml(xml, "seclabel", PATHS)).toThrow(message);
  });
});

describe("adoptionProblem", () => {
  const base = { uuid: UUID, emulator: "/usr/bin/qemu-system-x86_64", seclabels: [] };
  it("wrapper mode looks at the emulator path", () => {
    expect(adoptionProblem(base, "wrapper", PATHS)).toBe(
      "<emulator> /usr/bin/qemu-system-x86_64 is not the virt-aa-hook wrapper (/usr/lib/virt-aa-hook/bin/<emulator name>)",
    );
    expect(adoptionProblem({ ...base, emulator: "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64" }, "wrapper", PATHS)).toBeUndefined();
    expect(adoptionProblem({ ...base, emulator: "/usr/lib/virt-aa-hook/bin/sh" }, "wrapper", PATHS)).toBe(
      "<emulator> /usr/lib/virt-aa-hook/bin/sh is not the virt-aa-hook wrapper (/usr/lib/virt-aa-hook/bin/<emulator name>)",
    );
    expect(adoptionProblem({ ...base, emulator: "/w/qemu-kvm" }, "wrapper", { ...PATHS, wrapperDir: "/w" })).toBeUndefined();
    expect(adoptionProblem({ ...base, emulator: undefined }, "wrapper", PATHS)).toBe("no <emulator>: it must be a wrapper in /usr/lib/virt-aa-hook/bin");
  });

  it("seclabel mode needs exactly the static, non-relabelling label for this UUID", () => {
    const ours = { type: "static", model: "apparmor", relabel: false, label: `libvirt-${UUID}` };
    const missing = `no <seclabel type='static' model='apparmor' relabel='no'><label>libvirt-${UUID}</label>`;
    expect(adoptionProblem({ ...base, seclabels: [ours] }, "seclabel", PATHS)).toBeUndefined();
    expect(adoptionProblem({ ...base, seclabels: [{ ...ours, relabel: true }] }, "seclabel", PATHS)).toBe(missing);
    expect(adoptionProblem({ ...base, seclabels: [{ ...ours, type: "dynamic" }] }, "seclabel", PATHS)).toBe(missing);
    expect(adoptionProblem({ ...base, seclabels: [{ ...ours, label: "libvirt-other" }] }, "seclabel", PATHS)).toBe(missing);
    expect(adoptionProblem(base, "seclabel", PATHS)).toBe(missing);
  });

  it("helper mode needs a domain libvirt labels dynamically, with the real QEMU", () => {
    const ours = { type: "static", model: "apparmor", relabel: false, label: `libvirt-${UUID}` };
    expect(adoptionProblem(base, "helper", PATHS)).toBeUndefined();
    expect(adoptionProblem({ ...base, seclabels: [{ type: "dynamic", model: "apparmor" }] }, "helper", PATHS)).toBeUndefined();
    expect(adoptionProblem({ ...base, seclabels: [{ type: "dynamic", model: "dac" }, { type: "static", model: "selinux" }] }, "helper", PATHS)).toBeUndefined();
    expect(adoptionProblem({ ...base, seclabels: [ours] }, "helper", PATHS)).toBe(
      `static label libvirt-${UUID} (adopted for attach = "seclabel"): libvirt runs no virt-aa-helper for it, so hotplug, media changes, snapshots and block jobs get no grant`,
    );
    expect(adoptionProblem({ ...base, seclabels: [{ type: "none" }] }, "helper", PATHS)).toBe(
      "<seclabel type='none'/> turns off every security driver: libvirt runs no virt-aa-helper for it and its QEMU runs unconfined",
    );
    expect(adoptionProblem({ ...base, seclabels: [{ type: "none", model: "apparmor" }] }, "helper", PATHS)).toBe(
      `<seclabel type='none' model='apparmor'>: libvirt runs no virt-aa-helper for it and its QEMU does not run in libvirt-${UUID}`,
    );
    expect(adoptionProblem({ ...base, emulator: "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64" }, "helper", PATHS)).toBe(
      `<emulator> /usr/lib/virt-aa-hook/bin/qemu-system-x86_64 is the virt-aa-hook wrapper: attach = "helper" needs the real QEMU (libvirt's driver makes the transition)`,
    );
  });

  it("adopting for helper mode takes our static label, any non-dynamic AppArmor label and the wrapper out; refuses type='none' without a model", () => {
    const ours = `  <seclabel type='static' model='apparmor' relabel='no'>\n    <label>libvirt-${UUID}</label>\n  </seclabel>`;
    const plain = domainXml();
    expect(adoptXml(plain, "helper", PATHS)).toBe(plain);
    expect(adoptXml(domainXml({ seclabels: ours }), "helper", PATHS)).toBe(plain);
    expect(adoptXml(domainXml({ seclabels: "  <seclabel type='none' model='apparmor'/>" }), "helper", PATHS)).toBe(plain);
    expect(adoptXml(domainXml({ emulator: "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64", seclabels: ours }), "helper", PATHS)).toBe(plain);
    const dynamic = domainXml({ seclabels: "  <seclabel type='dynamic' model='apparmor' relabel='yes'/>" });
    expect(adoptXml(dynamic, "helper", PATHS)).toBe(dynamic);
    expect(() => adoptXml(domainXml({ seclabels: "  <seclabel type='none'/>" }), "helper", PATHS)).toThrow(
      new AttachError("web & db: <seclabel type='none'/> turns off every security driver: remove it, or use attach = \"wrapper\""),
    );
  });

  it("mode none is always adopted", () => {
    expect(adoptionProblem(base, "none", PATHS)).toBeUndefined();
  });
});

