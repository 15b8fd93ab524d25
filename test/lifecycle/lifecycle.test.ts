import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Layout } from "../../src/layout.js";
import { HostFs } from "../../src/hostfs.js";
import { firstRenderNode } from "../../src/host/drm.js";
import { writeHostFile } from "../rules/fixtures.js";
import { fakeDrmGpu } from "../rules/hosttree.js";
import { buildProfile } from "../../src/pipeline.js";
import { renderProfile } from "../../src/render/index.js";
import { FAKE_SECURITYFS, makeTestRoot, PARSER, type TestRoot } from "./fixture.js";
import { callBundle, callHook, domainXml, installHook, tree, UUID } from "./harness.js";

const NAME = `libvirt-${UUID}`;
const PROFILE = `/etc/apparmor.d/libvirt/${NAME}`;
const FILES = `${PROFILE}.files`;
const STATE = `/var/lib/virt-aa-hook/${UUID}.json`;
const REPLACE = `${FAKE_SECURITYFS}/.replace`;
const REMOVE = `${FAKE_SECURITYFS}/.remove`;
const LOG = "/var/log/libvirt/virt-aa-hook.log";
const CACHE = "/var/cache/apparmor/virt-aa-hook";
const STORE = "/var/cache/virt-aa-hook";
const DISK_A = "/var/lib/libvirt/images/vm1.img";
const DISK_B = "/var/lib/libvirt/images/vm1-data.img";

let t: TestRoot;

beforeEach(() => {
  t = makeTestRoot("vaah-life-");
  installHook(t);
  fs.mkdirSync(t.at("/var/lib/libvirt/images"), { recursive: true });
  fs.writeFileSync(t.at(DISK_A), Buffer.alloc(4096));
  fs.writeFileSync(t.at(DISK_B), Buffer.alloc(4096));
});
afterEach(() => t.remove());

const PREPARE = ["vm1", "prepare", "begin", "-"] as [string, string, string, string];
const START = ["vm1", "start", "begin", "-"] as [string, string, string, string];
const STARTED = ["vm1", "started", "begin", "-"] as [string, string, string, string];
const STOPPED = ["vm1", "stopped", "end", "-"] as [string, string, string, string];
const RELEASE = ["vm1", "release", "end", "-"] as [string, string, string, string];
const RECONNECT = ["vm1", "reconnect", "begin", "-"] as [string, string, string, string];

const prepareXml = (disks = [DISK_A]) => domainXml({ id: 7, disks });
const startXml = (disks = [DISK_A]) => domainXml({ id: 7, disks, backingStore: true });
const offXml = (disks = [DISK_A]) => domainXml({ disks, backingStore: true });

function expectedFiles(xml: string): string {
  return buildProfile(xml, { layout: new Layout(t.root) }).filesText;
}
function expectedProfile(): string {
  return renderProfile(t.read("/etc/apparmor.d/libvirt/TEMPLATE.qemu"), NAME, `libvirt/${NAME}.files`);
}
function ok(r: { status: number | null; stdout: string; stderr: string }): void {
  expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
}
function fakeQemu(label: string): void {
  fs.mkdirSync(t.at("/run/libvirt/qemu"), { recursive: true });
  fs.writeFileSync(t.at("/run/libvirt/qemu/vm1.pid"), "4242\n");
  fs.mkdirSync(t.at("/proc/4242/attr/apparmor"), { recursive: true });
  fs.writeFileSync(t.at("/proc/4242/attr/apparmor/current"), label);
}
function logLines(): string[] {
  return t.exists(LOG) ? t.read(LOG).trimEnd().split("\n") : [];
}

describe("the whole start/stop sequence through hooks/qemu", () => {
  it("prepare → start → started → stopped → release creates, loads, checks and cleans up", () => {
    const before = tree(t);

    ok(callHook(t, PREPARE, prepareXml()));
    expect(t.read(PROFILE)).toBe(expectedProfile());
    expect(t.read(FILES)).toBe(expectedFiles(prepareXml()));
    expect(t.read(FILES)).toContain(DISK_A);
    const loaded = fs.readFileSync(t.at(REPLACE));
    expect(loaded.includes(Buffer.from(NAME))).toBe(true);
    const state = JSON.parse(t.read(STATE));
    expect(state).toMatchObject({ version: 1, uuid: UUID, name: "vm1", profileName: NAME, loadedAs: "enforce" });
    expect(state.profileSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(fs.readdirSync(t.at("/etc/apparmor.d/libvirt")).sort()).toEqual(["TEMPLATE.qemu", NAME, `${NAME}.files`].sort());

    // start with the same rules: nothing is rewritten or reloaded.
    fs.writeFileSync(t.at(REPLACE), "");
    const filesIno = fs.statSync(t.at(FILES)).ino;
    ok(callHook(t, START, startXml()));
    expect(fs.readFileSync(t.at(REPLACE)).length).toBe(0);
    expect(fs.statSync(t.at(FILES)).ino).toBe(filesIno);

    fakeQemu(`${NAME} (enforce)\n`);
    ok(callHook(t, STARTED, startXml()));
    ok(callHook(t, STOPPED, offXml()));
    expect(t.exists(PROFILE) && t.exists(FILES)).toBe(true); // stopped destroys nothing
    expect(t.read(REMOVE)).toBe("");

    ok(callHook(t, RELEASE, offXml()));
    expect(t.read(REMOVE)).toBe(`${NAME}\0`);
    expect(t.exists(PROFILE)).toBe(false);
    expect(t.exists(FILES)).toBe(false);
    expect(t.exists(STATE)).toBe(false);
    expect(t.exists(CACHE)).toBe(false); // loads went through the compiled-policy store

    // Exactly what we own is gone: what remains new is the log, our empty directories, the
    // compiled-policy store (kept across release: docs/compiled-store.md), the fake QEMU, and
    // the loaded/removed fake kernel files.
    const added = tree(t).filter((p) => !before.includes(p));
    const [entry] = fs.readdirSync(t.at(`${STORE}/entries`));
    expect(entry).toMatch(new RegExp(`^${NAME}\\.[0-9a-f]{64}$`));
    expect(added.filter((p) => !p.startsWith("/proc/") && !p.startsWith("/run/libvirt/"))).toEqual(
      [
        "/run/virt-aa-hook/", "/run/virt-aa-hook/locks/",
        "/var/cache/", `${STORE}/`, `${STORE}/entries/`, `${STORE}/entries/${entry}`,
        `${STORE}/manifests/`, `${STORE}/manifests/${NAME}.json`, `${STORE}/parser.json`,
        "/var/lib/virt-aa-hook/", "/var/log/", "/var/log/libvirt/", LOG,
      ].sort(),
    );

    const lines = logLines();
    expect(lines).toHaveLength(5);
    for (const [i, op] of ["prepare", "start", "started", "stopped", "release"].entries()) {
      expect(lines[i]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z virt-aa-hook\\[\\d+\\]: guest="vm1" op="${op}" exit=0 ms=\\d+ result="`));
    }
  });

  it("start reloads when libvirt's XML brings different rules, and only then", () => {
    ok(callHook(t, PREPARE, prepareXml()));
    fs.writeFileSync(t.at(REPLACE), "");
    ok(callHook(t, START, startXml([DISK_A, DISK_B])));
    expect(t.read(FILES)).toBe(expectedFiles(startXml([DISK_A, DISK_B])));
    expect(t.read(FILES)).toContain(DISK_B);
    expect(fs.readFileSync(t.at(REPLACE)).includes(Buffer.from(NAME))).toBe(true);
  });

  it.skipIf(process.getuid?.() !== 0)("a GL guest: prepare grants libvirt's pick, start the node libvirt wrote into the XML, with its GPU's sysfs", () => {
    fakeDrmGpu(t.root, "0000:00:02.0", [0, 128]);
    fakeDrmGpu(t.root, "0000:01:00.0", [1, 129]);
    writeHostFile(t.root, "/usr/share/glvnd/egl_vendor.d/50_mesa.json", "{}\n");
    const gl = (xml: string, node?: string) =>
      xml.replace("  </devices>", `    <graphics type='spice'><listen type='none'/><gl enable='yes'${node === undefined ? "" : ` rendernode='${node}'`}/></graphics>\n  </devices>`);
    ok(callHook(t, PREPARE, gl(prepareXml())));
    const first = firstRenderNode(new HostFs(new Layout(t.root)))!;
    expect(t.read(FILES)).toBe(expectedFiles(gl(prepareXml())));
    expect(t.read(FILES)).toContain(`"${first}" rw,`);
    // libvirt picked the other node (its readdir order may differ from ours): start follows the XML.
    const other = first === "/dev/dri/renderD128" ? "/dev/dri/renderD129" : "/dev/dri/renderD128";
    const otherGpu = other === "/dev/dri/renderD128" ? "0000:00:02.0" : "0000:01:00.0";
    ok(callHook(t, START, gl(startXml(), other)));
    const files = t.read(FILES);
    expect(files).toBe(expectedFiles(gl(startXml(), other)));
    expect(files).toContain(`"${other}" rw,`);
    expect(files).toContain(`"/sys/devices/pci0000:00/${otherGpu}/vendor" r,`);
    expect(files).not.toContain(`"${first}" rw,`);
    expect(files.match(/"\/sys\/[^"]*"/g)!.every((p) => p.includes(otherGpu))).toBe(true);
    expect(files).toContain(`"/usr/share/glvnd/egl_vendor.d/50_mesa.json" r,`);
  });

  it("node dist/virt-aa-hook.cjs hook behaves exactly like hooks/qemu", () => {
    const other = makeTestRoot("vaah-life-b-");
    try {
      fs.mkdirSync(other.at("/var/lib/libvirt/images"), { recursive: true });
      fs.writeFileSync(other.at(DISK_A), Buffer.alloc(4096));
      fs.writeFileSync(other.at(DISK_B), Buffer.alloc(4096));
      for (const [args, xml] of [[PREPARE, prepareXml()], [START, startXml()], [RELEASE, offXml()]] as const) {
        const a = callHook(t, args, xml);
        const b = callBundle(other, args, xml);
        expect(b).toEqual(a);
        expect(tree(other).filter((p) => !p.startsWith("/etc/libvirt/"))).toEqual(tree(t).filter((p) => !p.startsWith("/etc/libvirt/")));
      }
    } finally {
      other.remove();
    }
  });
});

describe("operations that must not change anything", () => {
  it.each(["migrate", "restore"])("%s prints nothing, exits 0 and creates no profile", (op) => {
    ok(callHook(t, ["vm1", op, "begin", "-"], prepareXml()));
    expect(t.exists(PROFILE) || t.exists(FILES) || t.exists(STATE)).toBe(false);
  });

  it("attach and unknown operations exit 0 silently", () => {
    ok(callHook(t, ["vm1", "attach", "begin", "-"], prepareXml()));
    ok(callHook(t, ["vm1", "teleport", "begin", "-"], prepareXml()));
    expect(t.exists(PROFILE)).toBe(false);
  });

  it("restore → prepare → start → started is a normal start", () => {
    ok(callHook(t, ["vm1", "restore", "begin", "-"], prepareXml()));
    ok(callHook(t, PREPARE, prepareXml()));
    ok(callHook(t, START, startXml()));
    fakeQemu(`${NAME} (enforce)\n`);
    ok(callHook(t, STARTED, startXml()));
    expect(t.read(FILES)).toBe(expectedFiles(prepareXml()));
  });

  it("passes a fourth argument with a space through unchanged", () => {
    ok(callHook(t, PREPARE, prepareXml()));
    ok(callHook(t, ["vm1", "release", "end", "from snapshot"], offXml()));
    expect(t.exists(FILES)).toBe(false);
  });
});

describe("reconnect", () => {
  it("loads the profile again when the kernel may have lost it, exit 0", () => {
    ok(callHook(t, PREPARE, prepareXml()));
    fs.writeFileSync(t.at(REPLACE), "");
    ok(callHook(t, RECONNECT, startXml()));
    expect(fs.readFileSync(t.at(REPLACE)).includes(Buffer.from(NAME))).toBe(true);
  });

  it("does not reload what the kernel lists as loaded in the same mode", () => {
    ok(callHook(t, PREPARE, prepareXml()));
    fs.writeFileSync(t.at(REPLACE), "");
    fs.writeFileSync(t.at(`${FAKE_SECURITYFS}/profiles`), `${NAME} (enforce)\n`);
    ok(callHook(t, RECONNECT, startXml()));
    expect(fs.readFileSync(t.at(REPLACE)).length).toBe(0);
  });

  it("never kills the guest on failure by default; does with reconnect_failure = fail", () => {
    ok(callHook(t, PREPARE, prepareXml()));
    fs.rmSync(t.at(REPLACE));
    const r = callHook(t, RECONNECT, startXml());
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("");
    // The compiled-policy store's blob has nowhere to go either; the parser, tried next, says why.
    const parserSays = `${PARSER}: Unable to replace "${NAME}".  Profile doesn't exist (exit status 254)`;
    expect(r.stderr).toBe(`virt-aa-hook: warning: vm1: ${PROFILE}: cannot load ${NAME}: ${parserSays}\n`);
    t.writeConfig({ subdomainfs: FAKE_SECURITYFS, features_file: "/usr/share/apparmor-features/features", reconnect_failure: "fail" });
    const s = callHook(t, RECONNECT, startXml());
    expect(s.status).toBe(1);
    expect(s.stderr).toBe(`virt-aa-hook: error: vm1: ${PROFILE}: cannot load ${NAME}: ${parserSays}\n`);
  });
});

describe("failures abort the start and leave earlier files intact", () => {
  it("a failed load (no .replace) exits 1 with one clear line; the previous .files stays", () => {
    ok(callHook(t, PREPARE, prepareXml()));
    const filesBefore = t.read(FILES);
    const profileBefore = t.read(PROFILE);
    const stateBefore = t.read(STATE);
    fs.rmSync(t.at(REPLACE));

    const r = callHook(t, PREPARE, prepareXml([DISK_A, DISK_B]));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      `virt-aa-hook: error: vm1: ${PROFILE}: cannot load ${NAME}: ${PARSER}: Unable to replace "${NAME}".  Profile doesn't exist (exit status 254)\n`,
    );
    expect(t.read(FILES)).toBe(filesBefore);
    expect(t.read(PROFILE)).toBe(profileBefore);
    expect(t.read(STATE)).toBe(stateBefore);
    // No staging directory or temp file is left behind.
    expect(fs.readdirSync(t.at("/etc/apparmor.d/libvirt")).sort()).toEqual(["TEMPLATE.qemu", NAME, `${NAME}.files`].sort());
    expect(logLines().at(-1)).toMatch(/op="prepare" exit=1 ms=\d+ result="error: /);
  });

  it("a first start that cannot load creates no files at all", () => {
    fs.rmSync(t.at(REPLACE));
    const r = callHook(t, PREPARE, prepareXml());
    expect(r.status).toBe(1);
    expect(fs.readdirSync(t.at("/etc/apparmor.d/libvirt"))).toEqual(["TEMPLATE.qemu"]);
    expect(t.exists(STATE)).toBe(false);
  });

  it("a template that does not compile fails with the parser's message and creates nothing", () => {
    fs.writeFileSync(t.at("/etc/apparmor.d/libvirt/TEMPLATE.qemu"), "profile LIBVIRT_TEMPLATE {\n  #include <abstractions/nonexistent>\n}\n");
    const r = callHook(t, PREPARE, prepareXml());
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^virt-aa-hook: error: vm1: ${PROFILE}: cannot load ${NAME}: AppArmor parser error .*Could not open 'abstractions/nonexistent' \\(exit status 1\\)\\n$`));
    expect(r.stderr).not.toContain(".virt-aa-hook-stage");
    expect(fs.readdirSync(t.at("/etc/apparmor.d/libvirt"))).toEqual(["TEMPLATE.qemu"]);
  });

  it("a guest asking for a restricted path is refused before anything is written", () => {
    const r = callHook(t, PREPARE, prepareXml(["/etc/shadow"]));
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^virt-aa-hook: error: vm1: \/etc\/shadow: .+\n$/);
    expect(fs.readdirSync(t.at("/etc/apparmor.d/libvirt"))).toEqual(["TEMPLATE.qemu"]);
    expect(fs.readFileSync(t.at(REPLACE)).length).toBe(0);
  });

  it("an invalid config fails prepare naming file, line and key; release only warns", () => {
    fs.writeFileSync(t.at("/etc/libvirt/virt-aa-hook.conf"), `subdomainfs = "${FAKE_SECURITYFS}"\nmode = "strict"\n`);
    const r = callHook(t, PREPARE, prepareXml());
    expect(r).toEqual({
      status: 1,
      stdout: "",
      stderr: 'virt-aa-hook: error: vm1: -: cannot read config /etc/libvirt/virt-aa-hook.conf: line 2: mode: must be one of enforce, complain, off, not "strict"\n',
    });
    const s = callHook(t, RELEASE, offXml());
    expect(s.status).toBe(0);
    expect(s.stderr).toBe(
      'virt-aa-hook: warning: vm1: -: cannot read config /etc/libvirt/virt-aa-hook.conf: line 2: mode: must be one of enforce, complain, off, not "strict"\n',
    );
  });

  it("started with started_check = enforce fails a QEMU outside its profile", () => {
    t.writeConfig({ subdomainfs: FAKE_SECURITYFS, features_file: "/usr/share/apparmor-features/features", started_check: "enforce" });
    ok(callHook(t, PREPARE, prepareXml()));
    fakeQemu("unconfined\n");
    const r = callHook(t, STARTED, startXml());
    expect(r).toEqual({
      status: 1,
      stdout: "",
      stderr: `virt-aa-hook: error: vm1: /proc/4242/attr/apparmor/current: QEMU (pid 4242) runs as "unconfined", not in its profile ${NAME} (enforce)\n`,
    });
    fakeQemu(`${NAME} (enforce)\n`);
    ok(callHook(t, STARTED, startXml()));
  });

  it("started with the default started_check = warn lets it run, with a warning", () => {
    ok(callHook(t, PREPARE, prepareXml()));
    fakeQemu("unconfined\n");
    const r = callHook(t, STARTED, startXml());
    expect(r.status).toBe(0);
    expect(r.stderr).toBe(`virt-aa-hook: warning: vm1: /proc/4242/attr/apparmor/current: QEMU (pid 4242) runs as "unconfined", not in its profile ${NAME} (enforce)\n`);
  });
});

describe("the admin's profile", () => {
  it("an edited profile survives every event, including release, and is never overwritten", () => {
    ok(callHook(t, PREPARE, prepareXml()));
    const edited = t.read(PROFILE).replace("}\n", '  "/srv/extra/**" r,\n}\n');
    expect(edited).not.toBe(t.read(PROFILE));
    fs.writeFileSync(t.at(PROFILE), edited);

    for (const [args, xml] of [[START, startXml([DISK_A, DISK_B])], [STOPPED, offXml()], [RELEASE, offXml()], [PREPARE, prepareXml()], [START, startXml()], [RECONNECT, startXml()], [STOPPED, offXml()], [RELEASE, offXml()]] as const) {
      ok(callHook(t, args, xml));
      expect(t.read(PROFILE)).toBe(edited);
    }
    expect(t.exists(FILES)).toBe(false);
  });

  it("a profile the admin wrote before the first start is used and never removed", () => {
    const admin = `#include <tunables/global>\nprofile ${NAME} flags=(attach_disconnected) {\n  #include <abstractions/libvirt-qemu>\n  #include <libvirt/${NAME}.files>\n  # hand-made\n}\n`;
    fs.writeFileSync(t.at(PROFILE), admin);
    ok(callHook(t, PREPARE, prepareXml()));
    expect(JSON.parse(t.read(STATE)).profileSha256).toBeUndefined();
    ok(callHook(t, RELEASE, offXml()));
    expect(t.read(PROFILE)).toBe(admin);
  });
});

describe("without AppArmor in the kernel", () => {
  it("no_apparmor = fail (default) refuses the start", () => {
    t.writeConfig({ features_file: "/usr/share/apparmor-features/features" });
    const r = callHook(t, PREPARE, prepareXml());
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      `virt-aa-hook: error: vm1: /sys/module/apparmor/parameters/enabled: cannot load ${NAME}: AppArmor is not enabled in this kernel (set no_apparmor in /etc/libvirt/virt-aa-hook.conf to start guests without it)\n`,
    );
    expect(t.exists(FILES)).toBe(false);
  });

  it("no_apparmor = compile-only writes and compiles, loads nothing", () => {
    t.writeConfig({ features_file: "/usr/share/apparmor-features/features", no_apparmor: "compile-only" });
    ok(callHook(t, PREPARE, prepareXml()));
    expect(t.read(FILES)).toBe(expectedFiles(prepareXml()));
    expect(fs.readFileSync(t.at(REPLACE)).length).toBe(0);
    expect(JSON.parse(t.read(STATE)).loadedAs).toBe("compile-only");
  });

  it("no_apparmor = skip writes nothing", () => {
    t.writeConfig({ no_apparmor: "skip" });
    ok(callHook(t, PREPARE, prepareXml()));
    expect(t.exists(FILES) || t.exists(PROFILE)).toBe(false);
  });
});

describe("complain mode", () => {
  it("loads with -C and reloads when the mode changes back", () => {
    t.writeConfig({ subdomainfs: FAKE_SECURITYFS, features_file: "/usr/share/apparmor-features/features", mode: "complain" });
    ok(callHook(t, PREPARE, prepareXml()));
    expect(JSON.parse(t.read(STATE)).loadedAs).toBe("complain");
    const complainBlob = fs.readFileSync(t.at(REPLACE));
    t.writeConfig({ subdomainfs: FAKE_SECURITYFS, features_file: "/usr/share/apparmor-features/features" });
    fs.writeFileSync(t.at(REPLACE), "");
    ok(callHook(t, START, startXml()));
    expect(JSON.parse(t.read(STATE)).loadedAs).toBe("enforce");
    const enforceBlob = fs.readFileSync(t.at(REPLACE));
    expect(enforceBlob.length).toBeGreaterThan(0);
    expect(enforceBlob.equals(complainBlob)).toBe(false);
  });
});

describe("hostile names", () => {
  it("a guest named --root is a name, not an option", () => {
    const xml = domainXml({ id: 3, name: "--root" });
    ok(callHook(t, ["--root", "prepare", "begin", "-"], xml));
    expect(JSON.parse(t.read(STATE)).name).toBe("--root");
  });
});
