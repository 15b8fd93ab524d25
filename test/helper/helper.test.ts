/**
 * Our virt-aa-helper driven exactly as libvirt 9.x's AppArmor driver drives its own
 * (/work/notes/issue17-research.md §1.3 and §6): the real launcher and bundle in a temp root, the
 * real apparmor_parser loading into a stand-in securityfs, the qemu hook running beside it as it
 * does in helper mode. Each scenario replays libvirt's call sequence and checks the exact `.files`
 * after each step; the negative controls check that a refused call exits 1 with one line and
 * changes nothing, and that the XML on stdin (with a secret in it) never reaches the log or stderr.
 */
import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadLayout } from "../../src/config.js";
import type { RuntimeGrant } from "../../src/ir.js";
import { buildProfile } from "../../src/pipeline.js";
import { renderProfile } from "../../src/render/index.js";
import { readState } from "../../src/store/state.js";
import { FAKE_SECURITYFS, makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { callHook } from "../lifecycle/harness.js";
import { callHelper, installHelper, OUR_HELPER, type Run } from "./harness.js";

const UUID = "6a1e3c2b-9d84-4f0a-b1c2-d3e4f5a6b7c8";
const UUID_B = "0f9e8d7c-6b5a-4938-a271-605f4e3d2c1b";
const P = `libvirt-${UUID}`;
const PROFILE = `/etc/apparmor.d/libvirt/${P}`;
const FILES = `${PROFILE}.files`;
const STATE = `/var/lib/virt-aa-hook/${UUID}.json`;
const REPLACE = `${FAKE_SECURITYFS}/.replace`;
const REMOVE = `${FAKE_SECURITYFS}/.remove`;
const LOG = "/var/log/libvirt/virt-aa-hook.log";
const IMG = "/var/lib/libvirt/images";
const TOP = `${IMG}/vm1.qcow2`;
const BASE = `${IMG}/base.qcow2`;
const SOURCE = "libvirt virt-aa-helper -F";
const SECRET = "s3cr3t-Pa55w0rd-7f1c";

interface DiskSpec {
  path: string;
  dev: string;
  backing?: string[];
  readonly?: boolean;
  device?: "disk" | "cdrom";
  /** `<mirror>` of a running copy job (the destination). */
  mirror?: string;
}

function diskXml(d: DiskSpec): string {
  let chain = "<backingStore/>";
  for (const b of [...(d.backing ?? [])].reverse()) {
    chain = `<backingStore type='file'><format type='qcow2'/><source file='${b}'/>${chain}</backingStore>`;
  }
  const mirror = d.mirror ? `\n      <mirror type='file' job='copy' ready='yes'><format type='qcow2'/><source file='${d.mirror}'/></mirror>` : "";
  return `    <disk type='file' device='${d.device ?? "disk"}'>
      <driver name='qemu' type='${d.device === "cdrom" ? "raw" : "qcow2"}'/>
      <source file='${d.path}'/>
      ${chain}${mirror}
      <target dev='${d.dev}' bus='${d.device === "cdrom" ? "sata" : "virtio"}'/>${d.readonly ? "\n      <readonly/>" : ""}
    </disk>`;
}

/** The live XML libvirt sends (formatted SECURE: the VNC password is in it). */
function liveXml(disks: DiskSpec[], o: { uuid?: string; name?: string; id?: number } = {}): string {
  return `<domain type='kvm' id='${o.id ?? 7}'>
  <name>${o.name ?? "vm1"}</name>
  <uuid>${o.uuid ?? UUID}</uuid>
  <memory unit='KiB'>1048576</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
${disks.map(diskXml).join("\n")}
    <graphics type='vnc' port='5900' autoport='yes' listen='127.0.0.1' passwd='${SECRET}'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
  </devices>
</domain>
`;
}

const VDA: DiskSpec = { path: TOP, dev: "vda", backing: [BASE] };

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-helper-");
  installHelper(t);
  // Log everything the hook and the helper can say: the secret must not be in it anyway.
  fs.appendFileSync(t.at("/etc/libvirt/virt-aa-hook.conf"), 'log_level = "debug"\n');
  fs.mkdirSync(t.at(IMG), { recursive: true });
  for (const f of ["vm1.qcow2", "base.qcow2", "data.qcow2", "data-base.qcow2", "snap1.qcow2", "copy.qcow2", "b.qcow2", "cd1.iso", "cd2.iso"]) {
    fs.writeFileSync(t.at(`${IMG}/${f}`), Buffer.alloc(4096));
  }
  fs.mkdirSync(t.at("/var/lib/libvirt/qemu/save"), { recursive: true });
  fs.writeFileSync(t.at("/var/lib/libvirt/qemu/save/vm1.save"), Buffer.alloc(4096));
});
afterEach(() => t.remove());

/** What our generator gives this XML, plus these runtime grants (rendered after the XML's rules). */
function expected(xml: string, grants: RuntimeGrant[] = []): string {
  const { layout } = loadLayout(t.root);
  return buildProfile(xml, { layout, grants }).filesText;
}
const libvirtGrant = (path: string, write = true): RuntimeGrant => ({ path, write, by: "libvirt", source: SOURCE });
const grantLine = (path: string, perms = "rwk") => `  "${path}" ${perms},  # ${SOURCE}\n`;

function ok(r: Run): void {
  expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: "", stderr: "" });
}
function refused(r: Run, line: string | RegExp): void {
  expect(r.status).toBe(1);
  expect(r.stdout).toBe("");
  const lines = r.stderr.split("\n");
  expect(lines).toHaveLength(2); // one line and its newline
  if (typeof line === "string") expect(lines[0]).toBe(line);
  else expect(lines[0]).toMatch(line);
}
const regen = (xml: string) => callHelper(t, ["-r", "-u", P], xml);
const append = (xml: string, file: string) => callHelper(t, ["-r", "-u", P, "-F", file], xml);
const grants = () => readState(t.at(STATE))?.grants;
const loadedCount = () => fs.readFileSync(t.at(REPLACE)).toString("latin1").split(P).length - 1;
function clearLoaded(): void {
  fs.writeFileSync(t.at(REPLACE), "");
}
/** prepare and start through the qemu hook, then libvirt's GenSecurityLabel -r: a guest start. */
function start(disks: DiskSpec[] = [VDA]): string {
  const xml = liveXml(disks);
  ok(callHook(t, ["vm1", "prepare", "begin", "-"], xml));
  ok(regen(xml));
  ok(callHook(t, ["vm1", "start", "begin", "-"], xml));
  expect(t.read(FILES)).toBe(expected(xml));
  return xml;
}

describe("guest start and restore", () => {
  it("-c without the hook's prepare creates the profile from the template, writes the .files and loads", () => {
    const xml = liveXml([VDA]);
    ok(callHelper(t, ["-c", "-u", P], xml));
    expect(t.read(PROFILE)).toBe(renderProfile(t.read("/etc/apparmor.d/libvirt/TEMPLATE.qemu"), P, `libvirt/${P}.files`));
    expect(t.read(FILES)).toBe(expected(xml));
    expect(t.read(FILES)).toContain(`"${TOP}" rwk,`);
    expect(t.read(FILES)).toContain(`"${BASE}" rk,`);
    expect(loadedCount()).toBe(1);
    expect(readState(t.at(STATE))).toMatchObject({ uuid: UUID, name: "vm1", loadedAs: "enforce" });
  });

  it("an admin's per-guest profile is never overwritten", () => {
    const mine = `# edited by the admin\n${renderProfile(t.read("/etc/apparmor.d/libvirt/TEMPLATE.qemu"), P, `libvirt/${P}.files`)}`;
    fs.writeFileSync(t.at(PROFILE), mine);
    ok(callHelper(t, ["-c", "-u", P], liveXml([VDA])));
    expect(t.read(PROFILE)).toBe(mine);
    ok(callHelper(t, ["-D", "-u", P]));
    expect(t.read(PROFILE)).toBe(mine);
  });

  it("after the hook's prepare, libvirt's -r finds nothing to change: no write, no parser run", () => {
    const xml = liveXml([VDA]);
    ok(callHook(t, ["vm1", "prepare", "begin", "-"], xml));
    const ino = fs.statSync(t.at(FILES)).ino;
    const mtime = fs.statSync(t.at(FILES)).mtimeMs;
    clearLoaded();
    ok(regen(xml));
    expect(fs.readFileSync(t.at(REPLACE)).length).toBe(0);
    expect(fs.statSync(t.at(FILES)).ino).toBe(ino);
    expect(fs.statSync(t.at(FILES)).mtimeMs).toBe(mtime);
    expect(t.read(LOG)).toMatch(/guest="vm1" op="helper -r" exit=0 ms=\d+ result="libvirt-[0-9a-f-]+: regenerated: unchanged"\n$/);
  });

  it("restore: start, then -F the save file; the next regeneration drops it", () => {
    const xml = start();
    const SAVE = `${IMG}/vm1.save`;
    fs.writeFileSync(t.at(SAVE), Buffer.alloc(4096));
    clearLoaded();
    ok(append(xml, SAVE));
    expect(t.read(FILES)).toBe(expected(xml) + grantLine(SAVE));
    expect(grants()).toEqual([libvirtGrant(SAVE)]);
    expect(loadedCount()).toBe(1);
    ok(regen(xml));
    expect(t.read(FILES)).toBe(expected(xml));
    expect(t.read(FILES)).not.toContain(SAVE);
    expect(grants()).toBeUndefined();
  });

  it("managedsave's image, which the XML grants read-only, is granted read-write by -F (QEMU writes it through the fd)", () => {
    const xml = start();
    const SAVE = "/var/lib/libvirt/qemu/save/vm1.save";
    expect(t.read(FILES)).toContain(`  "${SAVE}" r,  # managed save image\n`);
    ok(append(xml, SAVE));
    expect(t.read(FILES)).toBe(expected(xml, [libvirtGrant(SAVE)]));
    expect(t.read(FILES)).toContain(`  "${SAVE}" rwk,  # managed save image, ${SOURCE}\n`);
  });

  it("a descriptor that is a pipe (pipe:[123]) is skipped with exit 0, as libvirt's helper does", () => {
    const xml = start();
    const before = t.read(FILES);
    clearLoaded();
    ok(append(xml, "pipe:[123]"));
    expect(t.read(FILES)).toBe(before);
    expect(loadedCount()).toBe(0);
    expect(grants()).toBeUndefined();
  });
});

describe("hotplug and removal", () => {
  it("disk hotplug (-F per chain element, XML without the disk), then detach (regen without it): the grants are gone", () => {
    const xml = start();
    const DATA = `${IMG}/data.qcow2`;
    const DATA_BASE = `${IMG}/data-base.qcow2`;
    ok(append(xml, DATA));
    ok(append(xml, DATA_BASE));
    expect(t.read(FILES)).toBe(expected(xml) + grantLine(DATA) + grantLine(DATA_BASE));
    expect(grants()).toEqual([libvirtGrant(DATA), libvirtGrant(DATA_BASE)]);

    // Some later regeneration while the disk is attached: the XML's own rules take over.
    const withDisk = liveXml([VDA, { path: DATA, dev: "vdb", backing: [DATA_BASE] }]);
    ok(regen(withDisk));
    expect(t.read(FILES)).toBe(expected(withDisk));
    expect(t.read(FILES)).toContain(`  "${DATA}" rwk,  # disk vdb\n`);
    expect(t.read(FILES)).toContain(`  "${DATA_BASE}" rk,  # disk vdb backing 1\n`);
    expect(grants()).toBeUndefined();

    // detach-disk: libvirt removes it from the live XML, then regenerates.
    clearLoaded();
    ok(regen(xml));
    expect(t.read(FILES)).toBe(expected(xml));
    expect(t.read(FILES)).not.toContain(DATA);
    expect(loadedCount()).toBe(1);
  });

  it("detach right after the hotplug (no regeneration in between) drops the -F grants", () => {
    const xml = start();
    const DATA = `${IMG}/data.qcow2`;
    ok(append(xml, DATA));
    expect(t.read(FILES)).toContain(grantLine(DATA));
    ok(regen(xml));
    expect(t.read(FILES)).toBe(expected(xml));
    expect(t.read(FILES)).not.toContain(DATA);
  });

  it("change-media: the new medium of a read-only cdrom; the old one goes at the regeneration", () => {
    const CD1 = `${IMG}/cd1.iso`;
    const CD2 = `${IMG}/cd2.iso`;
    const cd = (path: string): DiskSpec => ({ path, dev: "sda", device: "cdrom", readonly: true });
    const xml = start([VDA, cd(CD1)]);
    expect(t.read(FILES)).toContain(`  "${CD1}" rk,  # disk sda\n`);
    // Not in the XML yet: libvirt is about to hand it over, and the XML cannot say how.
    ok(append(xml, CD2));
    expect(t.read(FILES)).toBe(expected(xml) + grantLine(CD2));
    const after = liveXml([VDA, cd(CD2)]);
    ok(regen(after));
    expect(t.read(FILES)).toBe(expected(after));
    expect(t.read(FILES)).toContain(`  "${CD2}" rk,  # disk sda\n`);
    expect(t.read(FILES)).not.toContain(CD1);
  });

  it("-F for a path the XML already grants (a read-only disk's top, the writable top) adds nothing and reloads nothing", () => {
    const CD1 = `${IMG}/cd1.iso`;
    const xml = start([VDA, { path: CD1, dev: "sda", device: "cdrom", readonly: true }]);
    const before = t.read(FILES);
    clearLoaded();
    ok(append(xml, CD1));
    ok(append(xml, TOP));
    expect(grants()).toBeUndefined();
    expect(t.read(FILES)).toBe(before);
    expect(t.read(FILES)).toContain(`  "${CD1}" rk,  # disk sda\n`);
    expect(loadedCount()).toBe(0);
    expect(t.read(LOG)).toContain(`result="${CD1}: libvirt-${UUID}: ${CD1} is already granted rk by the domain XML: unchanged"`);
  });

  it("what libvirt sends at every start (private and channel trees, the master key) adds nothing", () => {
    const xml = start();
    const before = t.read(FILES);
    clearLoaded();
    ok(append(xml, "/var/lib/libvirt/qemu/domain-7-vm1/{,**}"));
    ok(append(xml, "/var/lib/libvirt/qemu/channel/target/domain-7-vm1/{,**}"));
    ok(append(xml, "/var/lib/libvirt/qemu/domain-7-vm1/master-key.aes"));
    expect(grants()).toBeUndefined();
    expect(t.read(FILES)).toBe(before);
    expect(loadedCount()).toBe(0);
  });
});

describe("snapshots and block jobs", () => {
  it("snapshot --disk-only: -F the overlay; the old top stays until a regeneration makes it a backing layer", () => {
    const xml = start();
    const SNAP = `${IMG}/snap1.qcow2`;
    ok(append(xml, SNAP));
    expect(t.read(FILES)).toBe(expected(xml) + grantLine(SNAP));
    const after = liveXml([{ path: SNAP, dev: "vda", backing: [TOP, BASE] }]);
    ok(regen(after));
    expect(t.read(FILES)).toBe(expected(after));
    expect(t.read(FILES)).toContain(`  "${SNAP}" rwk,  # disk vda\n`);
    expect(t.read(FILES)).toContain(`  "${TOP}" rk,  # disk vda backing 1\n`);
    expect(grants()).toBeUndefined();
  });

  it("blockcommit --active --pivot: the base is writable from -F on, and the top after the pivot's regeneration", () => {
    const xml = start();
    expect(t.read(FILES)).toContain(`  "${BASE}" rk,  # disk vda backing 1\n`);
    ok(append(xml, BASE));
    expect(grants()).toEqual([libvirtGrant(BASE)]);
    expect(t.read(FILES)).toBe(expected(xml, [libvirtGrant(BASE)]));
    expect(t.read(FILES)).toMatch(new RegExp(`"${BASE}" rwk,`));
    expect(t.read(FILES)).not.toMatch(new RegExp(`"${BASE}" rk,`));
    // At the pivot: -F the base again, then the regeneration with the base as <source>.
    ok(append(xml, BASE));
    const pivoted = liveXml([{ path: BASE, dev: "vda", backing: [] }]);
    ok(regen(pivoted));
    expect(t.read(FILES)).toBe(expected(pivoted));
    expect(t.read(FILES)).toContain(`  "${BASE}" rwk,  # disk vda\n`);
    expect(t.read(FILES)).not.toContain(TOP);
  });

  it("blockcommit (not active): the base is writable only until the job's regeneration", () => {
    const xml = start([{ path: `${IMG}/snap1.qcow2`, dev: "vda", backing: [TOP, BASE] }]);
    ok(append(xml, BASE));
    ok(append(xml, TOP));
    expect(t.read(FILES)).toBe(expected(xml, [libvirtGrant(BASE), libvirtGrant(TOP)]));
    const done = liveXml([{ path: `${IMG}/snap1.qcow2`, dev: "vda", backing: [BASE] }]);
    ok(regen(done));
    expect(t.read(FILES)).toBe(expected(done));
    expect(t.read(FILES)).toContain(`  "${BASE}" rk,  # disk vda backing 1\n`);
    expect(t.read(FILES)).not.toContain(TOP);
  });

  it("blockcopy + pivot: the destination survives the pivot's regeneration while it is the <mirror>", () => {
    const COPY = `${IMG}/copy.qcow2`;
    const xml = start();
    ok(append(xml, COPY));
    expect(t.read(FILES)).toBe(expected(xml) + grantLine(COPY));
    // The job runs: the live XML shows the destination as <mirror>. At the pivot libvirt
    // regenerates while <source> is still the old image (qemu_blockjob.c ConcludedCopyPivot).
    const atPivot = liveXml([{ ...VDA, mirror: COPY }]);
    ok(regen(atPivot));
    expect(grants()).toEqual([libvirtGrant(COPY)]);
    expect(t.read(FILES)).toBe(expected(atPivot, [libvirtGrant(COPY)]));
    expect(t.read(FILES)).toContain(grantLine(COPY));
    // The next regeneration sees the new image as the source: the old chain and the grant go.
    const after = liveXml([{ path: COPY, dev: "vda", backing: [] }]);
    ok(regen(after));
    expect(t.read(FILES)).toBe(expected(after));
    expect(t.read(FILES)).toContain(`  "${COPY}" rwk,  # disk vda\n`);
    expect(t.read(FILES)).not.toContain(TOP);
    expect(grants()).toBeUndefined();
  });

  it("negative control: without the <mirror> in the XML, the same regeneration takes the destination away", () => {
    const COPY = `${IMG}/copy.qcow2`;
    const xml = start();
    ok(append(xml, COPY));
    ok(regen(xml));
    expect(t.read(FILES)).not.toContain(COPY);
    expect(grants()).toBeUndefined();
  });
});

describe("stop", () => {
  it("-D unloads, removes the .files, the record (and its grants) and our profile; the release hook finds nothing", () => {
    const xml = start();
    ok(append(xml, `${IMG}/data.qcow2`));
    ok(callHelper(t, ["-D", "-u", P]));
    expect(t.read(REMOVE)).toBe(`${P}\0`);
    expect(t.exists(FILES)).toBe(false);
    expect(t.exists(PROFILE)).toBe(false);
    expect(t.exists(STATE)).toBe(false);
    ok(callHook(t, ["vm1", "stopped", "end", "-"], liveXml([VDA])));
    ok(callHook(t, ["vm1", "release", "end", "-"], liveXml([VDA])));
    // -D of a guest that is not loaded (any more) is not an error.
    ok(callHelper(t, ["-D", "-u", P]));
  });

  it("-R unloads only; not loaded is not an error", () => {
    start();
    ok(callHelper(t, ["-R", "-u", P]));
    expect(t.read(REMOVE)).toBe(`${P}\0`);
    expect(t.exists(FILES) && t.exists(PROFILE) && t.exists(STATE)).toBe(true);
    ok(callHelper(t, ["-R", "-u", P]));
  });
});

describe("refusals: exit 1, one line, nothing changed", () => {
  function unchanged(fn: () => void): void {
    const files = t.read(FILES);
    const state = t.read(STATE);
    clearLoaded();
    fn();
    expect(t.read(FILES)).toBe(files);
    expect(t.read(STATE)).toBe(state);
    expect(loadedCount()).toBe(0);
  }

  it("-F /etc/shadow", () => {
    const xml = start();
    unchanged(() => refused(append(xml, "/etc/shadow"), /^virt-aa-hook: error: vm1: \/etc\/shadow: .*restricted location \/etc/));
  });

  it("-F another running guest's disk", () => {
    const B_DISK = `${IMG}/b.qcow2`;
    const xmlB = liveXml([{ path: B_DISK, dev: "vda", backing: [] }], { uuid: UUID_B, name: "vmb", id: 8 });
    ok(callHook(t, ["vmb", "prepare", "begin", "-"], xmlB));
    const xml = start();
    unchanged(() => refused(append(xml, B_DISK), /^virt-aa-hook: error: vm1: \/var\/lib\/libvirt\/images\/b\.qcow2: .*by running guest vmb \(0f9e8d7c-6b5a-4938-a271-605f4e3d2c1b\)/));
  });

  it("-F a shared base another running guest reads (a commit into it would corrupt that guest)", () => {
    const xmlB = liveXml([{ path: `${IMG}/b.qcow2`, dev: "vda", backing: [BASE] }], { uuid: UUID_B, name: "vmb", id: 8 });
    ok(callHook(t, ["vmb", "prepare", "begin", "-"], xmlB));
    const xml = start(); // both read BASE: fine
    unchanged(() => refused(append(xml, BASE), /^virt-aa-hook: error: vm1: \/var\/lib\/libvirt\/images\/base\.qcow2: .*running guest vmb/));
  });

  it("a whole tree the XML does not grant", () => {
    const xml = start();
    unchanged(() =>
      refused(append(xml, "/var/lib/libvirt/qemu/ram/7-vm1/{,**}"), /^virt-aa-hook: error: vm1: \/var\/lib\/libvirt\/qemu\/ram\/7-vm1\/\{,\*\*\}: libvirt asks for a whole directory tree/),
    );
    // One the XML grants already (the private directory) is met without a grant.
    clearLoaded();
    ok(append(xml, "/var/lib/libvirt/qemu/domain-7-vm1/{,**}"));
    expect(t.read(FILES)).toBe(expected(xml));
    expect(loadedCount()).toBe(0);
  });

  it("an XML whose UUID is not -u's", () => {
    const xml = start();
    const other = `libvirt-${UUID_B}`;
    refused(callHelper(t, ["-r", "-u", other], xml), `virt-aa-hook: error: vm1: <uuid>: given uuid does not match XML uuid (-u ${other})`);
    refused(callHelper(t, ["-r", "-u", other, "-F", `${IMG}/data.qcow2`], xml), `virt-aa-hook: error: vm1: <uuid>: given uuid does not match XML uuid (-u ${other})`);
    expect(t.exists(`/etc/apparmor.d/libvirt/${other}`)).toBe(false);
    expect(t.exists(`/etc/apparmor.d/libvirt/${other}.files`)).toBe(false);
    unchanged(() => refused(callHelper(t, ["-r", "-u", P], liveXml([VDA], { uuid: UUID_B })), /given uuid does not match XML uuid/));
  });

  it("bad command lines", () => {
    start();
    unchanged(() => {
      refused(callHelper(t, ["-r", "-u", "libvirt-../../../etc/passwd"], liveXml([VDA])), /^virt-aa-hook: error: -: -: invalid UUID "libvirt-\.\.\/\.\.\/\.\.\/etc\/passwd"/);
      refused(callHelper(t, ["-r", "-u", UUID], liveXml([VDA])), /^virt-aa-hook: error: -: -: invalid UUID/);
      refused(callHelper(t, ["-r", "-u", P.toUpperCase()], liveXml([VDA])), /^virt-aa-hook: error: -: -: invalid UUID/);
      refused(callHelper(t, ["-r"], liveXml([VDA])), /^virt-aa-hook: error: -: -: invalid UUID/);
      refused(callHelper(t, ["-u", P], liveXml([VDA])), "virt-aa-hook: error: -: -: bad command: no mode (-a, -c, -r, -R or -D)");
      refused(callHelper(t, ["-r", "-u", P, "-p", "probe"], liveXml([VDA])), "virt-aa-hook: error: -: -: unsupported option -p");
      refused(callHelper(t, ["-r", "-u", P], ""), `virt-aa-hook: error: ${P}: XML: no domain XML on stdin (-c and -r read the domain's definition)`);
      refused(callHelper(t, ["-r", "-u", P], "<domain>"), /^virt-aa-hook: error: -: XML: /);
    });
  });

  it("-h prints the usage and exits 0", () => {
    const r = callHelper(t, ["-h"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("virt-aa-helper mode [options] [extra file] [< def.xml]");
    expect(r.stderr).toBe("");
  });
});

describe("the XML on stdin is never logged or echoed", () => {
  it("a planted password appears in no log line and no stderr, whether the call passes or fails", () => {
    const outputs: string[] = [];
    const run = (r: Run) => {
      outputs.push(r.stdout, r.stderr);
      return r;
    };
    const xml = liveXml([VDA]);
    expect(xml).toContain(SECRET);
    run(callHelper(t, ["-c", "-u", P], xml));
    run(regen(xml));
    run(append(xml, `${IMG}/data.qcow2`));
    run(append(xml, "/etc/shadow"));
    run(append(xml, "pipe:[9]"));
    run(callHelper(t, ["-r", "-u", `libvirt-${UUID_B}`], xml));
    run(callHelper(t, ["-r", "-d", "-u", P], xml));
    run(callHelper(t, ["-r", "-u", P], xml.replace("<vcpu>1</vcpu>", "<vcpu>x</vcpu>")));
    run(callHelper(t, ["-r", "-u", P], xml.replace("</domain>", "")));
    run(callHelper(t, ["-D", "-u", P]));
    const log = t.read(LOG);
    expect(log.split("\n").length).toBeGreaterThan(10);
    expect(log).not.toContain(SECRET);
    for (const o of outputs) expect(o).not.toContain(SECRET);
    // and nothing of ours on disk holds it
    for (const dir of ["/etc/apparmor.d/libvirt", "/var/lib/virt-aa-hook", "/run/virt-aa-hook"]) {
      if (!t.exists(dir)) continue;
      for (const f of fs.readdirSync(t.at(dir), { recursive: true }) as string[]) {
        const p = t.at(`${dir}/${f}`);
        if (fs.statSync(p).isFile()) expect(fs.readFileSync(p, "utf8")).not.toContain(SECRET);
      }
    }
  });
});

describe("the launcher", () => {
  it("works on the root it was run in, by either name, with an empty environment", () => {
    const xml = liveXml([VDA]);
    ok(callHelper(t, ["-c", "-u", P], xml, OUR_HELPER));
    expect(t.read(FILES)).toBe(expected(xml));
    ok(callHelper(t, ["-D", "-u", P], undefined, OUR_HELPER));
    expect(t.exists(FILES)).toBe(false);
  });
});

describe('mode = "off": libvirt\'s own helper does the work', () => {
  // A stand-in for /usr/lib/libvirt/virt-aa-helper.real: the real one writes the machine's own
  // /etc/apparmor.d (its paths are compiled in) and loads into the kernel, which a test must not.
  // It records its arguments, environment and stdin, and exits with the code it is told.
  function fakeReal(exit: number): void {
    fs.writeFileSync(
      t.at("/usr/lib/libvirt/virt-aa-helper.real"),
      `#!/bin/sh\nprintf '%s\\n' "$@" > "${t.at("/real.argv")}"\nenv > "${t.at("/real.env")}"\ncat > "${t.at("/real.stdin")}"\nexit ${exit}\n`,
    );
    fs.chmodSync(t.at("/usr/lib/libvirt/virt-aa-helper.real"), 0o755);
    fs.appendFileSync(t.at("/etc/libvirt/virt-aa-hook.conf"), 'mode = "off"\n');
  }

  it("each call goes unchanged to virt-aa-helper.real, and its exit is ours; nothing of ours is written", () => {
    fakeReal(0);
    const xml = liveXml([VDA]);
    ok(callHelper(t, ["-r", "-u", P, "-F", `${IMG}/data.qcow2`], xml));
    expect(t.read("/real.argv")).toBe(`-r\n-u\n${P}\n-F\n${IMG}/data.qcow2\n`);
    expect(t.read("/real.stdin")).toBe(xml);
    expect(t.exists(FILES) || t.exists(PROFILE) || t.exists(STATE)).toBe(false);
  });

  it("its failure is exit 1 with one line", () => {
    fakeReal(3);
    refused(callHelper(t, ["-c", "-u", P], liveXml([VDA])), `virt-aa-hook: error: ${P}: -: mode = "off": libvirt's own virt-aa-helper failed (exit 3)`);
  });

  it("missing: exit 1", () => {
    fs.appendFileSync(t.at("/etc/libvirt/virt-aa-hook.conf"), 'mode = "off"\n');
    refused(
      callHelper(t, ["-D", "-u", P]),
      `virt-aa-hook: error: ${P}: /usr/lib/libvirt/virt-aa-helper.real: mode = "off" hands this call to libvirt's own virt-aa-helper, which is missing`,
    );
  });
});

describe("hostile -F paths", () => {
  it("glob and quote characters are granted as the one literal file they name (the parser compiles it)", () => {
    const xml = start();
    const odd = `${IMG}/a*b[1]{x,y}"q.qcow2`;
    const r = append(xml, odd);
    ok(r);
    expect(grants()).toEqual([libvirtGrant(odd)]);
    expect(t.read(FILES)).toBe(expected(xml, [libvirtGrant(odd)]));
    expect(t.read(FILES)).toContain(`  "${IMG}/a\\*b\\[1\\]\\{x\\,y\\}\\042q.qcow2" rwk,  # ${SOURCE}\n`);
  });

  it("a path with a newline (to end the rule and start another) is refused, nothing written", () => {
    const xml = start();
    const sneaky = `${IMG}/x" rwk,\n  /** rwk, #`;
    const before = t.read(FILES);
    refused(append(xml, sneaky), /^virt-aa-hook: error: vm1: \/var\/lib\/libvirt\/images\/x" rwk,\\x0a  \/\*\* rwk, #: control character in path$/);
    expect(t.read(FILES)).toBe(before);
  });
});

describe("descriptors libvirt labels at start (SetTapFDLabel)", () => {
  it("-F /dev/net/tun and a macvtap /dev/tapN are granted; the next regeneration drops them", () => {
    const xml = start();
    ok(append(xml, "/dev/net/tun"));
    ok(append(xml, "/dev/tap7"));
    expect(t.read(FILES)).toBe(expected(xml) + grantLine("/dev/net/tun") + grantLine("/dev/tap7"));
    ok(regen(xml));
    expect(t.read(FILES)).toBe(expected(xml));
  });
});

describe("-d (dry run)", () => {
  it("prints the .files the call would write, on stderr, and changes nothing", () => {
    const xml = start();
    const before = t.read(FILES);
    const state = t.read(STATE);
    clearLoaded();
    const DATA = `${IMG}/data.qcow2`;
    const r = callHelper(t, ["-r", "-d", "-u", P, "-F", DATA], xml);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`virt-aa-helper (dry run): ${FILES}:\n${expected(xml, [libvirtGrant(DATA)])}`);
    const d = callHelper(t, ["-D", "-d", "-u", P]);
    expect(d.stderr).toBe(`virt-aa-helper (dry run): would unload ${P}, remove ${FILES} and the record\n`);
    expect(t.read(FILES)).toBe(before);
    expect(t.read(STATE)).toBe(state);
    expect(loadedCount()).toBe(0);
    expect(fs.readFileSync(t.at(REMOVE)).length).toBe(0);
  });
});

describe("exit codes are 0 and 1 only", () => {
  it("an invalid config fails the call with exit 1 and one line", () => {
    const xml = start();
    fs.appendFileSync(t.at("/etc/libvirt/virt-aa-hook.conf"), 'no_such_key = "1"\n');
    refused(regen(xml), /^virt-aa-hook: error: libvirt-6a1e3c2b-9d84-4f0a-b1c2-d3e4f5a6b7c8: .*no_such_key/);
    refused(callHelper(t, ["-D", "-u", P]), /^virt-aa-hook: error: libvirt-6a1e3c2b-9d84-4f0a-b1c2-d3e4f5a6b7c8: .*no_such_key/);
  });

  it("a lock held by another call (lock_timeout) is exit 1, nothing written", () => {
    const xml = start();
    fs.appendFileSync(t.at("/etc/libvirt/virt-aa-hook.conf"), 'lock_timeout = "1"\n');
    // Another call's live lock: proper-lockfile's lock directory, just made (stale only after 5 s).
    const lock = t.at(`/run/virt-aa-hook/locks/${UUID}.lock`);
    fs.mkdirSync(lock, { recursive: true });
    const before = t.read(FILES);
    const r = append(xml, `${IMG}/data.qcow2`);
    expect(r.status).toBe(1);
    expect(r.stderr.split("\n")).toHaveLength(2);
    expect(r.stderr).toMatch(/^virt-aa-hook: error: vm1: /);
    expect(t.read(FILES)).toBe(before);
    expect(grants()).toBeUndefined();
  });
});

describe("a regeneration never adds an image file libvirt did not announce", () => {
  it("-r with a backing layer that was never granted (no -F) is refused; -c (a creation) judges the chain on its own", () => {
    const xml = start();
    const SNEAKY = `${IMG}/b.qcow2`;
    const widened = liveXml([{ path: TOP, dev: "vda", backing: [BASE, SNEAKY] }]);
    const before = t.read(FILES);
    refused(regen(widened), /^virt-aa-hook: error: vm1: \/var\/lib\/libvirt\/images\/b\.qcow2: disk vda backing 2: not granted at all when the guest was prepared/);
    expect(t.read(FILES)).toBe(before);
    // Once libvirt announced it (-F), the same regeneration is fine.
    ok(append(xml, SNEAKY));
    ok(regen(widened));
    expect(t.read(FILES)).toBe(expected(widened));
  });
});
