/**
 * seclabel across stop, libvirtd restart and reboot: release keeps the profile of a domain defined
 * with our static label loaded; load-adopted loads it again after a "reboot" and releases the ones
 * whose domain is gone; a domain never adopted is left to libvirt's AppArmor driver. The real
 * hooks/qemu and bundle, the real apparmor_parser loading into a fake securityfs, in a temp root.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { profileOwner } from "../../src/attach/ownership.js";
import { DEFAULT_CONFIG } from "../../src/config.js";
import { Layout } from "../../src/layout.js";
import { defaultTestConfig, FAKE_SECURITYFS, makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callHook, domainXml, installHook, UUID } from "../lifecycle/harness.js";
import { TEST_NODE } from "../helpers/node.js";

const NAME = `libvirt-${UUID}`;
const PROFILE = `/etc/apparmor.d/libvirt/${NAME}`;
const FILES = `${PROFILE}.files`;
const STATE = `/var/lib/virt-aa-hook/${UUID}.json`;
const REPLACE = `${FAKE_SECURITYFS}/.replace`;
const REMOVE = `${FAKE_SECURITYFS}/.remove`;
const LOG = "/var/log/libvirt/virt-aa-hook.log";
const DISK = "/var/lib/libvirt/images/vm1.img";
const SECLABEL = `  <seclabel type='static' model='apparmor' relabel='no'>\n    <label>${NAME}</label>\n  </seclabel>\n`;

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-keep-");
  installHook(t);
  fs.mkdirSync(t.at("/var/lib/libvirt/images"), { recursive: true });
  fs.writeFileSync(t.at(DISK), Buffer.alloc(4096));
  t.writeConfig({ ...defaultTestConfig(), attach: "seclabel" });
});
afterEach(() => t.remove());

const op = (o: string, sub: string) => ["vm1", o, sub, "-"] as [string, string, string, string];
/** A domain XML, with our static label when adopted. */
const xml = (adopted: boolean, extra: { id?: number; uuid?: string } = {}) => {
  const d = domainXml({ disks: [DISK], ...(extra.id !== undefined ? { id: extra.id } : {}), ...(extra.uuid ? { uuid: extra.uuid } : {}) });
  return adopted ? d.replace("</domain>", `${SECLABEL.replaceAll(UUID, extra.uuid ?? UUID)}</domain>`) : d;
};
const define = (text: string) => {
  fs.mkdirSync(t.at("/etc/libvirt/qemu"), { recursive: true });
  fs.writeFileSync(t.at("/etc/libvirt/qemu/vm1.xml"), text);
};
const ok = (r: { status: number | null; stdout: string; stderr: string }) => expect(r).toEqual({ status: 0, stdout: "", stderr: "" });
const reset = () => {
  fs.writeFileSync(t.at(REPLACE), "");
  fs.writeFileSync(t.at(REMOVE), "");
};
const replaced = () => fs.readFileSync(t.at(REPLACE));
const removed = () => fs.readFileSync(t.at(REMOVE), "latin1");
const lastLog = () => t.read(LOG).trimEnd().split("\n").at(-1)!;
const cli = (...args: string[]) => {
  const r = spawnSync(TEST_NODE, [BUNDLE, "--root", t.root, ...args], { encoding: "utf8", env: { LC_ALL: "C" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};
/** The profile, .files and record as they are: what "kept" must leave byte for byte. */
const ours = () => [PROFILE, FILES, STATE].map((p) => (t.exists(p) ? t.read(p) : undefined));

describe("release of a domain defined with our static label", () => {
  it("keeps its profile loaded and its files; the same release without the definition unloads and removes them", () => {
    define(xml(true));
    ok(callHook(t, op("prepare", "begin"), xml(true, { id: 3 })));
    const before = ours();
    expect(before.every((x) => x !== undefined)).toBe(true);
    reset();
    ok(callHook(t, op("release", "end"), xml(true, { id: 3 })));
    expect(removed()).toBe("");
    expect(ours()).toEqual(before);
    expect(lastLog()).toMatch(
      new RegExp(`guest="vm1" op="release" exit=0 ms=\\d+ result="kept ${NAME} loaded: /etc/libvirt/qemu/vm1.xml defines the domain with that static label \\(loaded unchanged rules\\)"$`),
    );

    // libvirt's own driver removes its files when a guest adopted while running under a dynamic
    // label stops (before this hook runs): release makes them again and loads them.
    fs.rmSync(t.at(FILES));
    fs.rmSync(t.at(PROFILE));
    reset();
    ok(callHook(t, op("release", "end"), xml(true, { id: 3 })));
    expect(t.read(FILES)).toBe(before[1]);
    expect(t.exists(PROFILE)).toBe(true);
    expect(replaced().includes(Buffer.from(NAME))).toBe(true);
    expect(removed()).toBe("");

    // Negative control: once the domain is no longer defined, the same release unloads and removes.
    fs.rmSync(t.at("/etc/libvirt/qemu/vm1.xml"));
    ok(callHook(t, op("release", "end"), xml(true, { id: 3 })));
    expect(removed()).toContain(NAME);
    expect(ours()).toEqual([undefined, undefined, undefined]);
  });

  it("does not keep it when the definition has another UUID or no longer carries the label", () => {
    const other = "0d0e0f00-1111-4222-8333-444455556666";
    for (const def of [xml(true, { uuid: other }), xml(false)]) {
      define(def);
      ok(callHook(t, op("prepare", "begin"), xml(true, { id: 3 })));
      reset();
      ok(callHook(t, op("release", "end"), xml(true, { id: 3 })));
      expect(removed()).toContain(NAME);
      expect(ours()).toEqual([undefined, undefined, undefined]);
    }
  });
});

describe("virt-aa-hook load-adopted", () => {
  it("loads the kept profile after a reboot, and releases it once the domain is undefined", () => {
    define(xml(true));
    ok(callHook(t, op("prepare", "begin"), xml(true, { id: 3 })));
    ok(callHook(t, op("release", "end"), xml(true, { id: 3 })));
    // Reboot: the kernel holds nothing.
    reset();
    const boot = cli("load-adopted");
    expect(boot.stderr).toBe("");
    expect(boot.status).toBe(0);
    expect(boot.stdout).toMatch(new RegExp(`^vm1: ${NAME}: (loaded|loaded unchanged rules|loaded new rules)[^\\n]*\\n$`));
    expect(replaced().includes(Buffer.from(NAME))).toBe(true);
    expect(t.read(FILES)).toContain(DISK);

    // virsh undefine runs no hook: the next load-adopted releases what was kept.
    fs.rmSync(t.at("/etc/libvirt/qemu/vm1.xml"));
    reset();
    const after = cli("load-adopted");
    expect(after).toEqual({
      status: 0,
      stdout: `vm1: ${NAME}: no longer defined with its label nor running: unloaded, removed .files, removed profile\n`,
      stderr: "",
    });
    expect(removed()).toContain(NAME);
    expect(ours()).toEqual([undefined, undefined, undefined]);
  });

  it("keeps the profile of a running guest whose domain is transient (libvirt's status XML names it)", () => {
    ok(callHook(t, op("prepare", "begin"), xml(true, { id: 3 })));
    fs.mkdirSync(t.at("/run/libvirt/qemu"), { recursive: true });
    fs.writeFileSync(t.at("/run/libvirt/qemu/vm1.xml"), `<domstatus state='running'>\n${xml(true, { id: 3 })}</domstatus>\n`);
    const before = ours();
    reset();
    expect(cli("load-adopted")).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(removed()).toBe("");
    expect(ours()).toEqual(before);
  });

  it("reports a domain whose profile cannot be made, and still loads the others (exit 1)", () => {
    define(xml(true).replace(DISK, "/etc/shadow"));
    const r = cli("load-adopted");
    expect(r).toEqual({
      status: 1,
      stdout: "",
      stderr: "virt-aa-hook: error: vm1: /etc/shadow: disk vda: restricted location /etc is never granted to guests\n",
    });
    expect(t.exists(FILES)).toBe(false);
  });
});

describe("a domain never adopted, next to libvirt's AppArmor driver", () => {
  beforeEach(() => {
    fs.writeFileSync(t.at("/etc/libvirt/qemu.conf"), 'security_driver = "apparmor"\n');
  });

  it("is left to libvirt: prepare, start and release write, load and remove nothing of libvirt's", () => {
    // What libvirt's virt-aa-helper wrote for it: must stay byte for byte.
    fs.writeFileSync(t.at(PROFILE), "# libvirt's profile\n");
    fs.writeFileSync(t.at(FILES), "# libvirt's files\n");
    for (const [o, sub] of [["prepare", "begin"], ["start", "begin"], ["release", "end"]] as const) {
      ok(callHook(t, op(o, sub), xml(false, { id: 3 })));
      expect(lastLog()).toContain(`left to libvirt's AppArmor driver (/etc/libvirt/qemu.conf: security_driver = \\"apparmor\\"): not adopted, no static label ${NAME}`);
    }
    expect(replaced().length).toBe(0);
    expect(removed()).toBe("");
    expect([t.read(PROFILE), t.read(FILES), t.exists(STATE)]).toEqual(["# libvirt's profile\n", "# libvirt's files\n", false]);
  });

  it("negative control: the same domain adopted is the hook's (files written and loaded)", () => {
    ok(callHook(t, op("prepare", "begin"), xml(true, { id: 3 })));
    expect(replaced().includes(Buffer.from(NAME))).toBe(true);
    expect(t.read(FILES)).toContain(DISK);
  });

  it("once un-adopted, its next prepare releases what the hook had made, so libvirt's helper finds no profile in its way", () => {
    ok(callHook(t, op("prepare", "begin"), xml(true, { id: 3 })));
    reset();
    ok(callHook(t, op("prepare", "begin"), xml(false, { id: 4 })));
    expect(removed()).toContain(NAME);
    expect(ours()).toEqual([undefined, undefined, undefined]);
    expect(lastLog()).toContain("released what virt-aa-hook had made for it: unloaded, removed .files");
  });
});

describe("profileOwner", () => {
  const layout = () => new Layout(t.root);
  const conf = (attach: "wrapper" | "seclabel" | "helper" | "none", requireAttach = false) => ({ ...DEFAULT_CONFIG, attach, requireAttach });
  it("decides by attach mode, libvirt's driver, the domain's label and require_attach", () => {
    const unadopted = xml(false);
    fs.writeFileSync(t.at("/etc/libvirt/qemu.conf"), 'security_driver = "apparmor"\n');
    expect(profileOwner(layout(), conf("seclabel"), unadopted).owner).toBe("libvirt");
    expect(profileOwner(layout(), conf("none"), unadopted).owner).toBe("libvirt");
    expect(profileOwner(layout(), conf("seclabel"), xml(true)).owner).toBe("hook");
    expect(profileOwner(layout(), conf("wrapper"), unadopted).owner).toBe("hook");
    expect(profileOwner(layout(), conf("seclabel", true), unadopted).owner).toBe("hook");
    expect(profileOwner(layout(), conf("seclabel"), "<domain><uuid>bad</uuid></domain>").owner).toBe("hook");
    fs.writeFileSync(t.at("/etc/libvirt/qemu.conf"), 'security_driver = "none"\n');
    expect(profileOwner(layout(), conf("seclabel"), unadopted).owner).toBe("hook");
    // Unset: libvirt takes AppArmor when the kernel has it.
    fs.writeFileSync(t.at("/etc/libvirt/qemu.conf"), "");
    expect(profileOwner(layout(), conf("seclabel"), unadopted).owner).toBe("hook");
    fs.mkdirSync(t.at("/sys/module/apparmor/parameters"), { recursive: true });
    fs.writeFileSync(t.at("/sys/module/apparmor/parameters/enabled"), "Y\n");
    expect(profileOwner(layout(), conf("seclabel"), unadopted).owner).toBe("libvirt");
  });
});

describe("helper mode: libvirt's driver runs our virt-aa-helper, so every guest is the hook's", () => {
  const layout = () => new Layout(t.root);
  const conf = (attach: "seclabel" | "helper", requireAttach = false) => ({ ...DEFAULT_CONFIG, attach, requireAttach });
  const NONE = "  <seclabel type='none'/>\n";
  const withLabel = (label: string) => xml(false, { id: 3 }).replace("</domain>", `${label}</domain>`);
  beforeEach(() => {
    fs.writeFileSync(t.at("/etc/libvirt/qemu.conf"), 'security_driver = "apparmor"\n');
  });

  it("profileOwner: hook for a dynamically labelled, a statically labelled and an unlabelled domain; negative control: seclabel leaves the first to libvirt", () => {
    for (const x of [xml(false), xml(true), withLabel(NONE)]) expect(profileOwner(layout(), conf("helper"), x)).toEqual({ owner: "hook" });
    expect(profileOwner(layout(), conf("seclabel"), xml(false)).owner).toBe("libvirt");
  });

  it("a domain libvirt labels dynamically: prepare writes and loads its profile (nothing is left to libvirt)", () => {
    t.writeConfig({ ...defaultTestConfig(), attach: "helper" });
    ok(callHook(t, op("prepare", "begin"), xml(false, { id: 3 })));
    expect(replaced().includes(Buffer.from(NAME))).toBe(true);
    expect(t.read(FILES)).toContain(DISK);
    expect(lastLog()).not.toContain("left to libvirt");
  });

  describe("require_attach = yes", () => {
    beforeEach(() => t.writeConfig({ ...defaultTestConfig(), attach: "helper", require_attach: "yes" }));
    const refused = (where: string, why: string) => ({
      status: 1,
      stdout: "",
      stderr: `virt-aa-hook: error: vm1: ${where}: ${why} (attach = "helper", require_attach = "yes"); run: virt-aa-hook adopt vm1\n`,
    });
    const result = (r: { status: number | null; stdout: string; stderr: string }) => ({ status: r.status, stdout: r.stdout, stderr: r.stderr });

    it("refuses <seclabel type='none'/> (libvirt runs no virt-aa-helper; QEMU would run unconfined), writing nothing", () => {
      expect(result(callHook(t, op("prepare", "begin"), withLabel(NONE)))).toEqual(
        refused("<seclabel>", "<seclabel type='none'/> turns off every security driver: libvirt runs no virt-aa-helper for it and its QEMU runs unconfined"),
      );
      expect([t.exists(FILES), replaced().length]).toEqual([false, 0]);
    });

    it("refuses another static AppArmor label (QEMU would not run in its own profile)", () => {
      const other = "  <seclabel type='static' model='apparmor' relabel='no'>\n    <label>unconfined</label>\n  </seclabel>\n";
      expect(result(callHook(t, op("prepare", "begin"), withLabel(other)))).toEqual(
        refused("<seclabel>", `<seclabel type='static' model='apparmor'> (label unconfined): libvirt runs no virt-aa-helper for it and its QEMU does not run in ${NAME}`),
      );
    });

    it("negative controls: a dynamically labelled domain and one with our static label (still confined) prepare", () => {
      ok(callHook(t, op("prepare", "begin"), xml(false, { id: 3 })));
      ok(callHook(t, op("prepare", "begin"), xml(true, { id: 3 })));
      expect(replaced().includes(Buffer.from(NAME))).toBe(true);
    });
  });
});
