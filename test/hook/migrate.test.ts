/**
 * `migrate begin` and `restore begin` through the real hook (hooks/qemu, the loader and the built
 * bundle in a temporary root, called as libvirtd calls it): stdout is the replacement XML libvirt
 * takes (hook/incoming.ts), so every case checks stdout byte for byte, the exit code, stderr and
 * the one log line. Needs `npm run build`.
 *
 * The input is shaped like the XML libvirt formats for the hook (VIR_DOMAIN_XML_SECURE |
 * VIR_DOMAIN_XML_MIGRATABLE), plus traps the edit must never land in: an `<emulator>` in
 * metadata, in a comment and in CDATA, a name that spells an emulator element, a DAC label and an
 * AppArmor label of another profile.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TEST_NODE } from "../helpers/node.js";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callBundle, callHook, installHook, type HookRun } from "../lifecycle/harness.js";

const UUID = "3c0ffee0-1d2e-4f50-8a6b-7c8d9e0f1a2b";
const OTHER_UUID = "99999999-8888-4777-8666-555555555555";
const NAME = "web & <db>";
const QEMU = "/usr/bin/qemu-system-x86_64";
const WRAPPER = "/usr/lib/virt-aa-hook/bin/qemu-system-x86_64";
const LOG = "/var/log/libvirt/virt-aa-hook.log";

const OUR_LABEL = ["  <seclabel type='static' model='apparmor' relabel='no'>", `    <label>libvirt-${UUID}</label>`, "  </seclabel>", ""].join("\n");
const OTHER_LABEL = ["  <seclabel type='static' model='apparmor' relabel='no'>", `    <label>libvirt-${OTHER_UUID}</label>`, "  </seclabel>", ""].join("\n");
const DYNAMIC_LABEL = "  <seclabel type='dynamic' model='apparmor' relabel='yes'/>\n";
const DAC = "  <seclabel type='dynamic' model='dac' relabel='yes'/>\n";

function incomingXml(opts: { emulator?: string; seclabels?: string; name?: string; nl?: string } = {}): string {
  const text = `<domain type='kvm'>
  <name>${opts.name ?? "web &amp; &lt;db&gt;"}</name>
  <uuid>${UUID}</uuid>
  <metadata>
    <app:info xmlns:app="urn:x"><emulator>${QEMU}</emulator></app:info>
  </metadata>
  <description><![CDATA[<emulator>${QEMU}</emulator></devices>]]></description>
  <memory unit='KiB'>65536</memory>
  <currentMemory unit='KiB'>65536</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <devices>
    <!-- <emulator>${QEMU}</emulator> -->
    <emulator>${opts.emulator ?? QEMU}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/a b.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
${opts.seclabels ?? DAC}</domain>
`;
  return opts.nl ? text.replace(/\n/g, opts.nl) : text;
}

/** `text` with `from` replaced, where `from` must occur exactly once: nothing else may differ. */
function replacedOnce(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  expect(at, `${JSON.stringify(from)} in the input`).toBeGreaterThanOrEqual(0);
  expect(text.indexOf(from, at + 1), `${JSON.stringify(from)} only once`).toBe(-1);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

const REAL_EMULATOR_LINE = `    <emulator>${QEMU}</emulator>\n    <disk`;
const WRAPPER_EMULATOR_LINE = `    <emulator>${WRAPPER}</emulator>\n    <disk`;

let t: TestRoot;

beforeEach(() => {
  t = makeTestRoot("vaah-migrate-");
  installHook(t);
  // What install.sh makes: the wrapper, and one link per emulator in emulator_dir.
  fs.mkdirSync(t.at(path.dirname(WRAPPER)), { recursive: true });
  fs.writeFileSync(t.at("/usr/lib/virt-aa-hook/qemu-wrapper"), "#!/bin/sh\n", { mode: 0o755 });
  fs.symlinkSync("../qemu-wrapper", t.at(WRAPPER));
});
afterEach(() => t.remove());

function configure(lines: Record<string, string>): void {
  const text = Object.entries({ subdomainfs: "/run/fake-securityfs", features_file: "/usr/share/apparmor-features/features", ...lines })
    .map(([k, v]) => `${k} = "${v}"\n`)
    .join("");
  fs.writeFileSync(t.at("/etc/libvirt/virt-aa-hook.conf"), text);
}

function incoming(op: "migrate" | "restore", xml: string | Buffer, name = NAME): HookRun {
  return callHook(t, [name, op, "begin", "-"], xml as string);
}

/** The summary lines of the log (one per call), as `op exit result`. */
function logResults(): string[] {
  if (!t.exists(LOG)) return [];
  return t
    .read(LOG)
    .split("\n")
    .filter((l) => / op="/.test(l))
    .map((l) => {
      const m = / op="([^"]*)" exit=(\d+) ms=\d+ result=(".*")$/.exec(l);
      expect(m, l).not.toBeNull();
      return `${m![1]} ${m![2]} ${JSON.parse(m![3]!) as string}`;
    });
}

/** Everything under the root that a call may have written, besides the log. */
function written(): string[] {
  const out: string[] = [];
  for (const dir of ["/etc/apparmor.d/libvirt", "/var/lib/virt-aa-hook", "/run/virt-aa-hook", "/var/cache/virt-aa-hook"]) {
    if (!t.exists(dir)) continue;
    for (const e of fs.readdirSync(t.at(dir))) out.push(`${dir}/${e}`);
  }
  return out.filter((p) => p !== "/etc/apparmor.d/libvirt/TEMPLATE.qemu");
}

function unchanged(r: HookRun): void {
  expect(r).toEqual({ status: 0, stdout: "", stderr: "" });
}

describe.each(["migrate", "restore"] as const)("%s begin", (op) => {
  describe('attach = "wrapper"', () => {
    beforeEach(() => configure({ attach: "wrapper", mode: "complain" }));

    it("replaces exactly the <devices><emulator> text; the adopted XML then passes unchanged", () => {
      const xml = incomingXml();
      const r = incoming(op, xml);
      expect(r).toEqual({ status: 0, stdout: replacedOnce(xml, REAL_EMULATOR_LINE, WRAPPER_EMULATOR_LINE), stderr: "" });
      unchanged(incoming(op, r.stdout));
      expect(logResults()).toEqual([
        `${op} 0 adopted for attach = wrapper: <emulator> ${QEMU} -> ${WRAPPER}`,
        `${op} 0 already adopted for attach = wrapper: XML passed on unchanged`,
      ]);
      // It only rewrites: the profile is made by the prepare that follows.
      expect(written()).toEqual([]);
    });

    it("removes our static label (adopted for seclabel on the source), keeps the DAC label and another profile's", () => {
      const xml = incomingXml({ seclabels: DAC + OTHER_LABEL + OUR_LABEL });
      const r = incoming(op, xml);
      expect(r).toEqual({
        status: 0,
        stdout: replacedOnce(replacedOnce(xml, REAL_EMULATOR_LINE, WRAPPER_EMULATOR_LINE), OTHER_LABEL + OUR_LABEL, OTHER_LABEL),
        stderr: "",
      });
      expect(logResults()).toEqual([
        `${op} 0 adopted for attach = wrapper: <emulator> ${QEMU} -> ${WRAPPER}; removed <seclabel type='static' model='apparmor'> label libvirt-${UUID}`,
      ]);
    });

    it("keeps CRLF line ends and every other byte", () => {
      const xml = incomingXml({ nl: "\r\n" });
      const r = incoming(op, xml);
      expect(r.stdout).toBe(replacedOnce(xml, `<emulator>${QEMU}</emulator>\r\n    <disk`, `<emulator>${WRAPPER}</emulator>\r\n    <disk`));
    });

    it("passes a domain it cannot adopt on unchanged, with one warning; require_attach is prepare's", () => {
      const xml = incomingXml({ emulator: "/opt/other/qemu-system-x86_64" });
      const r = incoming(op, xml);
      const reason = `<emulator> /opt/other/qemu-system-x86_64 is not in emulator_dir /usr/bin: the wrapper would run a different QEMU`;
      expect(r).toEqual({
        status: 0,
        stdout: "",
        stderr: `virt-aa-hook: warning: ${NAME}: -: cannot adopt it for attach = "wrapper": ${reason}; passed on unchanged (prepare applies require_attach)\n`,
      });
      expect(logResults()).toEqual([`${op} 0 not adopted for attach = wrapper: XML passed on unchanged`]);
      expect(t.read(LOG)).toContain(`warn: guest=${JSON.stringify(NAME)} op=${op} ${JSON.stringify(`cannot adopt it for attach = "wrapper": ${reason}; passed on unchanged (prepare applies require_attach)`)}`);
    });

    it("does not point the domain at a wrapper link this host lacks", () => {
      fs.rmSync(t.at(WRAPPER));
      const r = incoming(op, incomingXml());
      expect(r.status).toBe(0);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(
        `virt-aa-hook: warning: ${NAME}: -: cannot adopt it for attach = "wrapper": ${WRAPPER}: wrapper link missing: run install.sh again after installing this QEMU; passed on unchanged (prepare applies require_attach)\n`,
      );
    });
  });

  describe('attach = "seclabel"', () => {
    beforeEach(() => configure({ attach: "seclabel" }));

    it("adds exactly our static label as the last child of <domain>; the adopted XML then passes unchanged", () => {
      const xml = incomingXml();
      const r = incoming(op, xml);
      expect(r).toEqual({ status: 0, stdout: replacedOnce(xml, `${DAC}</domain>`, `${DAC}${OUR_LABEL}</domain>`), stderr: "" });
      unchanged(incoming(op, r.stdout));
      expect(logResults()).toEqual([
        `${op} 0 adopted for attach = seclabel: added <seclabel type='static' model='apparmor'> label libvirt-${UUID}`,
        `${op} 0 already adopted for attach = seclabel: XML passed on unchanged`,
      ]);
      expect(written()).toEqual([]);
    });

    it("from a wrapper host: back to the real QEMU, another profile's label replaced by ours", () => {
      const xml = incomingXml({ emulator: WRAPPER, seclabels: DAC + OTHER_LABEL });
      const r = incoming(op, xml);
      expect(r.stdout).toBe(replacedOnce(replacedOnce(xml, WRAPPER_EMULATOR_LINE, REAL_EMULATOR_LINE), `${DAC}${OTHER_LABEL}`, `${DAC}${OUR_LABEL}`));
      expect(logResults()).toEqual([
        `${op} 0 adopted for attach = seclabel: <emulator> ${WRAPPER} -> ${QEMU}; removed <seclabel type='static' model='apparmor'> label libvirt-${OTHER_UUID}; added <seclabel type='static' model='apparmor'> label libvirt-${UUID}`,
      ]);
    });

    it("our label given twice is kept once, and the log says one was removed", () => {
      const xml = incomingXml({ seclabels: DAC + OUR_LABEL + OUR_LABEL });
      const r = incoming(op, xml);
      expect(r.stdout).toBe(replacedOnce(xml, `${DAC}${OUR_LABEL}${OUR_LABEL}`, `${DAC}${OUR_LABEL}`));
      expect(logResults()).toEqual([`${op} 0 adopted for attach = seclabel: removed <seclabel type='static' model='apparmor'> label libvirt-${UUID}`]);
    });

    it("refuses to label a domain that turns every security driver off", () => {
      const r = incoming(op, incomingXml({ seclabels: "  <seclabel type='none'/>\n" }));
      expect(r.stdout).toBe("");
      expect(r.status).toBe(0);
      expect(r.stderr).toMatch(/^virt-aa-hook: warning: .*: -: cannot adopt it for attach = "seclabel": <seclabel type='none'\/> turns off every security driver: remove it, or use attach = "wrapper"; passed on unchanged \(prepare applies require_attach\)\n$/);
    });
  });

  describe('attach = "helper"', () => {
    beforeEach(() => configure({ attach: "helper" }));

    it("removes our static label (libvirt then labels dynamically and runs virt-aa-helper)", () => {
      const xml = incomingXml({ seclabels: DAC + OUR_LABEL });
      const r = incoming(op, xml);
      expect(r).toEqual({ status: 0, stdout: replacedOnce(xml, DAC + OUR_LABEL, DAC), stderr: "" });
      expect(logResults()).toEqual([`${op} 0 adopted for attach = helper: removed <seclabel type='static' model='apparmor'> label libvirt-${UUID}`]);
    });

    it("from a wrapper host: back to the real QEMU", () => {
      const xml = incomingXml({ emulator: WRAPPER });
      expect(incoming(op, xml).stdout).toBe(replacedOnce(xml, WRAPPER_EMULATOR_LINE, REAL_EMULATOR_LINE));
    });

    it("a dynamically labelled domain passes unchanged", () => {
      unchanged(incoming(op, incomingXml({ seclabels: DYNAMIC_LABEL + DAC })));
      expect(logResults()).toEqual([`${op} 0 already adopted for attach = helper: XML passed on unchanged`]);
    });
  });

  describe('attach = "none" and mode = "off"', () => {
    it("attach = none rewrites nothing, not even a domain adopted on another host", () => {
      configure({ attach: "none" });
      unchanged(incoming(op, incomingXml({ emulator: WRAPPER, seclabels: OUR_LABEL })));
      expect(logResults()).toEqual([`${op} 0 nothing to do`]);
    });

    it("mode = off rewrites nothing", () => {
      configure({ attach: "wrapper", mode: "off" });
      unchanged(incoming(op, incomingXml()));
      expect(logResults()).toEqual([`${op} 0 mode off`]);
    });
  });

  describe("the edit never lands outside the real element", () => {
    beforeEach(() => configure({ attach: "wrapper" }));

    it("an emulator only in metadata, a comment and CDATA is no emulator: nothing is printed", () => {
      const xml = incomingXml().replace(`    <emulator>${QEMU}</emulator>\n`, "");
      const r = incoming(op, xml);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(
        `virt-aa-hook: warning: ${NAME}: -: cannot adopt it for attach = "wrapper": no <devices><emulator>: cannot point it at the wrapper; passed on unchanged (prepare applies require_attach)\n`,
      );
    });

    it("two <devices> with an emulator each: refused, nothing printed", () => {
      const xml = incomingXml().replace("</devices>\n", `</devices>\n  <devices>\n    <emulator>${QEMU}</emulator>\n  </devices>\n`);
      const r = incoming(op, xml);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(
        `virt-aa-hook: warning: ${NAME}: -: cannot adopt it for attach = "wrapper": domain XML has 2 <domain><devices><emulator> elements; passed on unchanged (prepare applies require_attach)\n`,
      );
    });

    it("a name that spells an emulator element stays as it is", () => {
      const name = `x</name><devices><emulator>${QEMU}</emulator></devices>`;
      const xml = incomingXml({ name: `x&lt;/name&gt;&lt;devices&gt;&lt;emulator&gt;${QEMU}&lt;/emulator&gt;&lt;/devices&gt;` });
      const r = callBundle(t, [name, op, "begin", "-"], xml);
      expect(r).toEqual({ status: 0, stdout: replacedOnce(xml, REAL_EMULATOR_LINE, WRAPPER_EMULATOR_LINE), stderr: "" });
    });

    it("a name with a control character is refused, nothing printed", () => {
      const r = callBundle(t, ["a\nb", op, "begin", "-"], incomingXml({ name: "a&#10;b" }));
      expect(r.stdout).toBe("");
      expect(r.status).toBe(0);
      expect(r.stderr).toBe(
        'virt-aa-hook: warning: a\\x0ab: -: cannot adopt it for attach = "wrapper": cannot read domain XML: <name> contains control character U+000A; passed on unchanged (prepare applies require_attach)\n',
      );
    });

    it("bytes that are not UTF-8 are never re-encoded: nothing printed", () => {
      const xml = Buffer.concat([Buffer.from(incomingXml().replace("</domain>", "<!-- ")), Buffer.from([0xff, 0xfe]), Buffer.from(" -->\n</domain>\n")]);
      const r = incoming(op, xml);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain('cannot adopt it for attach = "wrapper": the XML is not valid UTF-8; passed on unchanged');
    });

    it("input that is not a domain: nothing printed, exit 0", () => {
      const r = incoming(op, "");
      expect(r.stdout).toBe("");
      expect(r.status).toBe(0);
      expect(r.stderr).toContain("cannot read domain XML");
    });
  });

  it("an invalid config fails the call (exit 1), prints nothing and names file, line and key", () => {
    fs.writeFileSync(t.at("/etc/libvirt/virt-aa-hook.conf"), 'attach = "wrapper"\nmode = "lax"\n');
    const r = incoming(op, incomingXml());
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(new RegExp(`^virt-aa-hook: error: ${NAME}: -: cannot read config /etc/libvirt/virt-aa-hook\\.conf: line 2: mode: .*\\n$`));
    expect(logResults()).toEqual([expect.stringMatching(new RegExp(`^${op} 1 error: cannot read config .* \\(config\\)$`))]);
  });
});

it("the other operations still print nothing on stdout", () => {
  configure({ attach: "wrapper", mode: "complain" });
  for (const [op, sub] of [["stopped", "end"], ["release", "end"], ["attach", "begin"], ["teleport", "begin"]] as const) {
    unchanged(callHook(t, [NAME, op, sub, "-"], incomingXml()));
  }
});

it("adopting at migrate loads none of the builtins the hot path avoids (docs/performance.md)", () => {
  configure({ attach: "wrapper", mode: "complain" });
  const AVOIDED = ["child_process", "net", "crypto", "perf_hooks", "assert"];
  /** node's own list of the builtins it loaded in one migrate call, written as the call exits. */
  const builtins = (preloadAlso: string): string[] => {
    const list = t.at("/loaded.json");
    fs.writeFileSync(t.at("/preload.cjs"), `${preloadAlso}process.on("exit", () => require("fs").writeFileSync(${JSON.stringify(list)}, JSON.stringify(process.moduleLoadList)));\n`);
    const r = spawnSync(TEST_NODE, ["-r", t.at("/preload.cjs"), BUNDLE, "hook", "--root", t.root, "--", NAME, "migrate", "begin", "-"], { input: incomingXml(), env: { LC_ALL: "C" } });
    expect(r.stdout.toString()).toContain(`<emulator>${WRAPPER}</emulator>`);
    return (JSON.parse(fs.readFileSync(list, "utf8")) as string[]).filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice(13));
  };
  expect(builtins("").filter((m) => AVOIDED.includes(m))).toEqual([]);
  // Negative control: the list does show a builtin loaded late (here by the preload itself).
  expect(builtins('require("perf_hooks");\n')).toContain("perf_hooks");
});

/**
 * libvirt's own domain parser, in the virsh process (the test driver, `test:///default`: no
 * daemon): defines the XML and prints it back as libvirt read it.
 */
function libvirtReads(xml: string): { emulator: string | undefined; seclabels: string[]; metadataEmulator: string | undefined } {
  const file = t.at("/adopted.xml");
  fs.writeFileSync(file, xml);
  const r = spawnSync("/usr/bin/virsh", ["-q", "-c", "test:///default", `define ${file}; dumpxml --security-info ${UUID}`], { encoding: "utf8", env: { LC_ALL: "C" } });
  expect(r.status, r.stderr).toBe(0);
  const devices = /<devices>([\s\S]*?)<\/devices>/.exec(r.stdout)![1]!;
  return {
    emulator: /<emulator>([^<]*)<\/emulator>/.exec(devices)?.[1],
    seclabels: [...r.stdout.matchAll(/^ {2}<seclabel [^\n]*(?:\n {4}<label>[^<]*<\/label>)?/gm)].map((m) => m[0].replace(/\s+/g, " ").trim()),
    metadataEmulator: /<app:info[^>]*>\s*<emulator>([^<]*)<\/emulator>/.exec(r.stdout)?.[1],
  };
}

describe("libvirt's own parser reads the printed XML as adopted, the traps as they were", () => {
  const ours = `<seclabel type='static' model='apparmor' relabel='no'> <label>libvirt-${UUID}</label>`;
  const dac = "<seclabel type='dynamic' model='dac' relabel='yes'/>";

  it("negative control: the input as libvirt reads it", () => {
    expect(libvirtReads(incomingXml())).toEqual({ emulator: QEMU, seclabels: [dac], metadataEmulator: QEMU });
  });

  it.each([
    ["wrapper", incomingXml({ seclabels: DAC + OUR_LABEL }), { emulator: WRAPPER, seclabels: [dac], metadataEmulator: QEMU }],
    ["seclabel", incomingXml({ emulator: WRAPPER }), { emulator: QEMU, seclabels: [dac, ours], metadataEmulator: QEMU }],
    ["helper", incomingXml({ emulator: WRAPPER, seclabels: DAC + OUR_LABEL }), { emulator: QEMU, seclabels: [dac], metadataEmulator: QEMU }],
  ] as const)("attach = %s", (attach, xml, expected) => {
    configure({ attach, mode: "complain" });
    const r = incoming("migrate", xml);
    expect(r.status).toBe(0);
    expect(r.stdout).not.toBe("");
    expect(libvirtReads(r.stdout)).toEqual(expected);
  });
});
