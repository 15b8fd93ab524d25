/**
 * The domain's own settings (`<metadata><vah:guest>`, docs/metadata.md) through the shipped bundle
 * and the real hooks/qemu: what `<vah:allow>` grants and what the policy refuses it (exact lines,
 * nothing written), the exclusive-access check on trees both ways, and `<vah:mode>` at prepare,
 * started, explain and status. Every refusal has its negative control. Needs `npm run build`; the
 * device cases need root (mknod), like policy-provenance.test.ts.
 */
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { defaultTestConfig, makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callHook, installHook } from "../lifecycle/harness.js";
import { guestXml as lifecycleGuest, op, UUID_A, UUID_B } from "../lifecycle/guests.js";
import { canMknod, GUEST_UUID, guestXml, plantHost } from "../policy/fakehost.js";
import { TEST_NODE } from "../helpers/node.js";

const NS = "https://virt-aa-hook.org/xmlns/guest/1";
/** `<metadata>` with our element, prefix `vah` as `virsh metadata --key vah` writes it. */
const metadata = (body: string) => `<metadata><vah:guest xmlns:vah="${NS}">${body}</vah:guest></metadata>`;
const allow = (p: string, access: "r" | "rw", tree = false) => `<vah:allow path="${p}" access="${access}"${tree ? ' tree="yes"' : ""}/>`;
const FILES = `/etc/apparmor.d/libvirt/libvirt-${GUEST_UUID}.files`;

function run(t: TestRoot, args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(TEST_NODE, [BUNDLE, ...args, "--root", t.root], { input, env: { LC_ALL: "C" }, cwd: "/", timeout: 20_000 });
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

describe.skipIf(!canMknod)("<vah:allow> through the bundle (a planted host)", () => {
  let t: TestRoot;
  beforeAll(() => {
    t = makeTestRoot("vaah-metadata-");
    plantHost(t.root);
    installHook(t);
    for (const d of ["/var/lib/libvirt/images/vm1-snapshots", "/srv/hotplug", "/srv/iso", "/var/lib/libvirt/qemu/domain-7-vm1"]) fs.mkdirSync(t.at(d), { recursive: true });
    fs.writeFileSync(t.at("/srv/iso/installer.iso"), "");
    fs.symlinkSync("/etc", t.at("/srv/etc-link"));
    execFileSync("/usr/bin/mkfifo", [t.at("/srv/fifo")]);
  });
  afterAll(() => t.remove());

  const explain = (xml: string) => {
    const file = path.join(t.root, "tmp-domain.xml");
    fs.writeFileSync(file, xml);
    return run(t, ["explain", file]);
  };

  it("explain: each entry is a rule with its source, after the devices' rules; --json says the mode and where it comes from", () => {
    const xml = guestXml(
      "",
      metadata(
        "<vah:mode>complain</vah:mode>" +
          allow("/var/lib/libvirt/images/vm1-snapshots/", "rw", true) +
          allow("/srv/iso/installer.iso", "r") +
          allow("/srv/hotplug", "r", true) +
          allow("/srv/iso/not-yet.qcow2", "rw"),
      ),
    );
    const r = explain(xml);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    const lines = r.stdout.split("\n");
    expect(lines.filter((l) => l.includes("# metadata"))).toEqual([
      '  "/var/lib/libvirt/images/vm1-snapshots{,/**}" rwk,  # metadata allow 1',
      '  "/srv/iso/installer.iso" rk,  # metadata allow 2',
      '  "/srv/hotplug{,/**}" rk,  # metadata allow 3',
      '  "/srv/iso/not-yet.qcow2" rwk,  # metadata allow 4',
    ]);
    const json = JSON.parse(run(t, ["explain", "--json", path.join(t.root, "tmp-domain.xml")]).stdout) as {
      mode: string;
      modeFrom: string;
      rules: Array<{ path: string; suffix: string; perms: string; source: string }>;
    };
    // guest_mode = "ignore" (the default): the config's mode; with "any", the domain's.
    expect([json.mode, json.modeFrom]).toEqual(["enforce", "ignored"]);
    t.writeConfig({ ...defaultTestConfig(), guest_mode: "any" });
    const honoured = JSON.parse(run(t, ["explain", "--json", path.join(t.root, "tmp-domain.xml")]).stdout) as { mode: string; modeFrom: string };
    t.writeConfig(defaultTestConfig());
    expect([honoured.mode, honoured.modeFrom]).toEqual(["complain", "metadata"]);
    expect(json.rules.filter((x) => x.source.startsWith("metadata"))).toEqual([
      { path: "/var/lib/libvirt/images/vm1-snapshots", suffix: "{,/**}", perms: "rwk", source: "metadata allow 1" },
      { path: "/srv/iso/installer.iso", suffix: "", perms: "rk", source: "metadata allow 2" },
      { path: "/srv/hotplug", suffix: "{,/**}", perms: "rk", source: "metadata allow 3" },
      { path: "/srv/iso/not-yet.qcow2", suffix: "", perms: "rwk", source: "metadata allow 4" },
    ]);
  });

  it("explain prints exactly the .files the hook writes, settings or not; --json without settings: the config's mode", () => {
    for (const xml of [guestXml(""), guestXml("", metadata("<vah:mode>complain</vah:mode>" + allow("/srv/hotplug", "rw", true)))]) {
      const r = explain(xml);
      expect(callHook(t, ["vm1", "prepare", "begin", "-"], xml).status).toBe(0);
      expect(r).toEqual({ status: 0, stdout: t.read(FILES), stderr: "" });
      callHook(t, ["vm1", "release", "end", "-"], xml);
    }
    explain(guestXml(""));
    const json = JSON.parse(run(t, ["explain", "--json", path.join(t.root, "tmp-domain.xml")]).stdout) as { mode: string; modeFrom: string };
    expect([json.mode, json.modeFrom]).toEqual(["enforce", "config"]);
  });

  const IMAGES = "recursive access would include /var/lib/libvirt/images, where libvirt keeps every guest's images; name a directory of this guest's own below it";
  const ONLY_FILES = "<allow> pre-authorises regular files and directories only (a device or socket belongs in its own element, e.g. <disk type='block'>)";
  /** [case, the entries, the exact error after "vm1: ", the control's entries (granted)] */
  const REFUSED: Array<[string, string, string, string]> = [
    ["a restricted file", allow("/etc/shadow", "r"), "/etc/shadow: metadata allow 1: restricted location /etc is never granted to guests", allow("/srv/iso/installer.iso", "r")],
    ["a restricted file through a symlink", allow("/srv/etc-link/shadow", "r"), "/srv/etc-link/shadow: resolves to /etc/shadow: metadata allow 1: restricted location /etc is never granted to guests", allow("/srv/iso/installer.iso", "r")],
    ["a tree over libvirt's images directory", allow("/var/lib/libvirt/images", "rw", true), `/var/lib/libvirt/images: metadata allow 1: ${IMAGES}`, allow("/var/lib/libvirt/images/vm1-snapshots", "rw", true)],
    ["a tree over /var/lib/libvirt/qemu", allow("/var/lib/libvirt/qemu", "r", true), "/var/lib/libvirt/qemu: metadata allow 1: recursive access would include /var/lib/libvirt/qemu, libvirt's runtime state for other guests and for itself; share a directory of its own instead", allow("/var/lib/libvirt/qemu/domain-7-vm1", "rw", true)],
    ["a tree over /dev/input", allow("/dev/input", "r", true), "/dev/input: metadata allow 1: recursive access would include the device nodes below /dev/input; share a directory of its own instead", allow("/srv/hotplug", "r", true)],
    ["a tree that does not exist", allow("/srv/later", "rw", true), '/srv/later: metadata allow 1: tree="yes" needs an existing directory and /srv/later does not exist; create it before the guest starts', allow("/srv/later", "rw")],
    ["a directory without tree", allow("/srv/hotplug", "rw"), '/srv/hotplug: metadata allow 1: /srv/hotplug is a directory; add tree="yes" to grant it and everything below it', allow("/srv/hotplug", "rw", true)],
    ["a free block device (a <disk type='block'> may have it)", allow("/dev/sdc", "rw"), `/dev/sdc: metadata allow 1: /dev/sdc is a block device; ${ONLY_FILES}`, allow("/srv/iso/installer.iso", "rw")],
    ["a serial line", allow("/dev/ttyS0", "rw"), `/dev/ttyS0: metadata allow 1: /dev/ttyS0 is a character device; ${ONLY_FILES}`, allow("/srv/iso/installer.iso", "rw")],
    ["a VFIO group", allow("/dev/vfio/17", "rw"), `/dev/vfio/17: metadata allow 1: /dev/vfio/17 is a character device; ${ONLY_FILES}`, allow("/srv/iso/installer.iso", "rw")],
    ["a missing device name", allow("/dev/sdz", "rw"), "/dev/sdz: metadata allow 1: /dev/sdz is not a device node a pre-authorised path (<vah:allow> in the domain's metadata) may use (it may use none); name a device of that kind or remove the element", allow("/srv/sdz", "rw")],
    ["a FIFO", allow("/srv/fifo", "rw"), `/srv/fifo: metadata allow 1: /srv/fifo is a FIFO; ${ONLY_FILES}`, allow("/srv/iso/installer.iso", "rw")],
    ["a PCI device's sysfs file", allow("/sys/bus/pci/devices/0000:03:00.0/config", "rw"), "/sys/bus/pci/devices/0000:03:00.0/config: resolves to /sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0/config: metadata allow 1: sysfs files of a host device are granted only to the <hostdev> (or <tpm> passthrough) that assigns that very device, not to a pre-authorised path (<vah:allow> in the domain's metadata); assign the device with a <hostdev> instead", allow("/srv/iso/installer.iso", "rw")],
    ["another guest's QMP socket", allow("/var/lib/libvirt/qemu/domain-3-other/monitor.sock", "rw"), "/var/lib/libvirt/qemu/domain-3-other/monitor.sock: metadata allow 1: /var/lib/libvirt/qemu holds libvirt's runtime state for every guest and for libvirt itself; only this guest's own entries (named after its id, name and UUID) are granted; name a path outside /var/lib/libvirt/qemu", allow("/var/lib/libvirt/qemu/domain-7-vm1/extra.sock", "rw")],
    ["the second entry names the refusal", allow("/srv/iso/installer.iso", "r") + allow("/swapfile", "rw"), "/swapfile: metadata allow 2: active swap area (listed in /proc/swaps): it holds host memory; never give it to a guest", allow("/srv/iso/installer.iso", "r") + allow("/srv/swapfile", "rw")],
  ];

  it.each(REFUSED)("%s: explain and prepare refuse with one line, nothing written; the control is granted", (_case, entries, line, control) => {
    const xml = guestXml("", metadata(entries));
    expect(explain(xml)).toEqual({ status: 1, stdout: "", stderr: `virt-aa-hook: error: vm1: ${line}\n` });
    const r = callHook(t, ["vm1", "prepare", "begin", "-"], xml);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 1, stderr: `virt-aa-hook: error: vm1: ${line}\n` });
    expect(t.exists(FILES)).toBe(false);
    const c = explain(guestXml("", metadata(control)));
    expect({ status: c.status, stderr: c.stderr }).toEqual({ status: 0, stderr: "" });
    expect(c.stdout).toMatch(/[#,] metadata allow 1\n/);
  });
});

describe("trees and other guests' held paths (exclusive access, hook/exclusive.ts)", () => {
  const IMG = "/var/lib/libvirt/images";
  let t: TestRoot;
  beforeEach(() => {
    t = makeTestRoot("vaah-metadata-excl-");
    installHook(t);
    for (const d of [`${IMG}/a-snap`, `${IMG}/b-own`]) fs.mkdirSync(t.at(d), { recursive: true });
    for (const f of [`${IMG}/a-snap/a.qcow2`, `${IMG}/b-own/b.img`, `${IMG}/iso.img`]) fs.writeFileSync(t.at(f), Buffer.alloc(4096));
  });
  afterEach(() => t.remove());

  const A = (disks: (string | { path: string; readonly?: boolean })[], extra = "") => lifecycleGuest({ name: "A", uuid: UUID_A, id: 1, disks, extra });
  const B = (disks: (string | { path: string; readonly?: boolean })[], extra = "") => lifecycleGuest({ name: "B", uuid: UUID_B, id: 2, disks, extra });
  const result = (r: { status: number | null; stderr: string }) => ({ status: r.status, stderr: r.stderr });
  const OK = { status: 0, stderr: "" };

  it("a tree over a file another running guest writes is refused, naming both; nothing of the second guest is written", () => {
    expect(result(callHook(t, op("A", "prepare"), A([`${IMG}/a-snap/a.qcow2`])))).toEqual(OK);
    expect(result(callHook(t, op("B", "prepare"), B([`${IMG}/b-own/b.img`], metadata(allow(`${IMG}/a-snap`, "r", true)))))).toEqual({
      status: 1,
      stderr: `virt-aa-hook: error: B: ${IMG}/a-snap: metadata allow 1: the tree holds ${IMG}/a-snap/a.qcow2, written by running guest A (${UUID_A}) (disk vda); a tree is exclusive like a disk: name a directory of this guest's own\n`,
    });
    expect(t.exists(`/etc/apparmor.d/libvirt/libvirt-${UUID_B}.files`)).toBe(false);
    // Control: a tree of B's own directory.
    expect(result(callHook(t, op("B", "prepare"), B([`${IMG}/b-own/b.img`], metadata(allow(`${IMG}/b-own`, "rw", true)))))).toEqual(OK);
  });

  it("a path inside another running guest's tree is refused; a file both only read is shared", () => {
    expect(result(callHook(t, op("A", "prepare"), A([`${IMG}/a-snap/a.qcow2`], metadata(allow(`${IMG}/b-own`, "rw", true)))))).toEqual(OK);
    expect(JSON.parse(t.read(`/var/lib/virt-aa-hook/${UUID_A}.json`)).holds).toContainEqual({ path: `${IMG}/b-own`, write: true, shareable: false, source: "metadata allow 1", tree: true });
    expect(result(callHook(t, op("B", "prepare"), B([`${IMG}/b-own/b.img`])))).toEqual({
      status: 1,
      stderr: `virt-aa-hook: error: B: ${IMG}/b-own/b.img: disk vda: inside ${IMG}/b-own, a directory tree written by running guest A (${UUID_A}) (metadata allow 1); a tree is exclusive like a disk: name paths outside it\n`,
    });
    // Controls: a path outside the tree; and with A's tree read-only, B reading a file in it.
    expect(result(callHook(t, op("B", "prepare"), B([`${IMG}/iso.img`])))).toEqual(OK);
    expect(result(callHook(t, op("B", "release"), B([`${IMG}/iso.img`])))).toEqual(OK);
    expect(result(callHook(t, op("A", "prepare"), A([`${IMG}/a-snap/a.qcow2`], metadata(allow(`${IMG}/b-own`, "r", true)))))).toEqual(OK);
    expect(result(callHook(t, op("B", "prepare"), B([{ path: `${IMG}/b-own/b.img`, readonly: true }])))).toEqual(OK);
  });

  it("a 9p share is a tree too: over a file another running guest writes it is refused; a share of its own is granted", () => {
    const share = (dir: string) => `<filesystem type='mount' accessmode='passthrough'><source dir='${dir}'/><target dir='t'/></filesystem></devices>`;
    expect(result(callHook(t, op("A", "prepare"), A([`${IMG}/a-snap/a.qcow2`])))).toEqual(OK);
    expect(result(callHook(t, op("B", "prepare"), B([`${IMG}/b-own/b.img`]).replace("</devices>", share(`${IMG}/a-snap`))))).toEqual({
      status: 1,
      stderr: `virt-aa-hook: error: B: ${IMG}/a-snap: filesystem t: the tree holds ${IMG}/a-snap/a.qcow2, written by running guest A (${UUID_A}) (disk vda); a tree is exclusive like a disk: name a directory of this guest's own\n`,
    });
    expect(result(callHook(t, op("B", "prepare"), B([`${IMG}/iso.img`]).replace("</devices>", share(`${IMG}/b-own`))))).toEqual(OK);
  });

  it("released, the tree holds nothing (negative control)", () => {
    expect(result(callHook(t, op("A", "prepare"), A([`${IMG}/a-snap/a.qcow2`], metadata(allow(`${IMG}/b-own`, "rw", true)))))).toEqual(OK);
    expect(result(callHook(t, op("A", "release"), A([`${IMG}/a-snap/a.qcow2`], metadata(allow(`${IMG}/b-own`, "rw", true)))))).toEqual(OK);
    expect(result(callHook(t, op("B", "prepare"), B([`${IMG}/b-own/b.img`])))).toEqual(OK);
  });
});

describe("<vah:mode>: prepare loads in it, started expects it, status shows it", () => {
  let t: TestRoot;
  beforeEach(() => {
    t = makeTestRoot("vaah-metadata-mode-");
    installHook(t);
  });
  afterEach(() => t.remove());

  const PROFILE = `libvirt-${UUID_A}`;
  const xml = (mode?: string) => lifecycleGuest({ name: "A", uuid: UUID_A, id: 1, disks: [], ...(mode ? { extra: metadata(`<vah:mode>${mode}</vah:mode>`) } : {}) });
  const result = (r: { status: number | null; stderr: string }) => ({ status: r.status, stderr: r.stderr });
  function qemuLabel(label: string): void {
    fs.mkdirSync(t.at("/run/libvirt/qemu"), { recursive: true });
    fs.writeFileSync(t.at("/run/libvirt/qemu/A.pid"), "4242\n");
    fs.mkdirSync(t.at("/proc/4242/attr/apparmor"), { recursive: true });
    fs.writeFileSync(t.at("/proc/4242/attr/apparmor/current"), `${label}\n`);
  }
  const record = () => JSON.parse(t.read(`/var/lib/virt-aa-hook/${UUID_A}.json`)) as { loadedAs: string; modeFrom: string };
  const notInProfile = (label: string, mode: string) => ({
    status: 1,
    stderr: `virt-aa-hook: error: A: /proc/4242/attr/apparmor/current: QEMU (pid 4242) runs as ${JSON.stringify(label)}, not in its profile ${PROFILE} (${mode})\n`,
  });

  it("guest_mode = ignore (the default): complain from the metadata is a warning, the guest loads enforce, started expects enforce, status says so", () => {
    t.writeConfig({ ...defaultTestConfig(), started_check: "enforce" });
    expect(result(callHook(t, op("A", "prepare"), xml("complain")))).toEqual({ status: 0, stderr: "" });
    expect([record().loadedAs, record().modeFrom]).toEqual(["enforce", "ignored"]);
    const warnings = t.read("/var/log/libvirt/virt-aa-hook.log").split("\n").filter((l) => l.includes(" warn: "));
    expect(warnings.map((l) => l.slice(l.indexOf("warn: ")))).toEqual([
      `warn: guest="A" op=prepare "metadata/guest/mode: the domain asks for complain mode; not honoured (guest_mode = \\"ignore\\"): the guest runs in enforce mode"`,
    ]);
    qemuLabel(`${PROFILE} (complain)`);
    expect(result(callHook(t, op("A", "started"), xml("complain")))).toEqual(notInProfile(`${PROFILE} (complain)`, "enforce"));
    qemuLabel(`${PROFILE} (enforce)`);
    expect(result(callHook(t, op("A", "started"), xml("complain")))).toEqual({ status: 0, stderr: "" });
    const table = run(t, ["status"]).stdout.split("\n");
    expect(table.find((l) => l.startsWith("A "))).toMatch(/ enforce \(metadata ignored\) +pristine +ok$/);
    // guest_mode = tighten ignores it too.
    t.writeConfig({ ...defaultTestConfig(), guest_mode: "tighten" });
    expect(result(callHook(t, op("A", "prepare"), xml("complain")))).toEqual({ status: 0, stderr: "" });
    expect([record().loadedAs, record().modeFrom]).toEqual(["enforce", "ignored"]);
  });

  it("a running guest is never loosened: complain set on the live XML changes nothing at start or reconnect; the next prepare applies it", () => {
    t.writeConfig({ ...defaultTestConfig(), guest_mode: "any" });
    expect(result(callHook(t, op("A", "prepare"), xml()))).toEqual({ status: 0, stderr: "" });
    expect([record().loadedAs, record().modeFrom]).toEqual(["enforce", "config"]);
    qemuLabel(`${PROFILE} (enforce)`);
    for (const operation of ["start", "reconnect"]) {
      expect(result(callHook(t, op("A", operation), xml("complain"))), operation).toEqual({ status: 0, stderr: "" });
      expect([record().loadedAs, record().modeFrom], operation).toEqual(["enforce", "config"]);
    }
    expect(t.read("/var/log/libvirt/virt-aa-hook.log")).toContain("a running guest's mode is never loosened: it stays enforce until its next start");
    // Control: the next prepare (a new start) applies it.
    expect(result(callHook(t, op("A", "prepare"), xml("complain")))).toEqual({ status: 0, stderr: "" });
    expect([record().loadedAs, record().modeFrom]).toEqual(["complain", "metadata"]);
  });

  it("guest_mode = any: complain from the metadata under mode = enforce: loaded complain, started accepts (complain) and refuses (enforce)", () => {
    t.writeConfig({ ...defaultTestConfig(), started_check: "enforce", guest_mode: "any" });
    expect(result(callHook(t, op("A", "prepare"), xml("complain")))).toEqual({ status: 0, stderr: "" });
    expect([record().loadedAs, record().modeFrom]).toEqual(["complain", "metadata"]);
    qemuLabel(`${PROFILE} (complain)`);
    expect(result(callHook(t, op("A", "started"), xml("complain")))).toEqual({ status: 0, stderr: "" });
    qemuLabel(`${PROFILE} (enforce)`);
    expect(result(callHook(t, op("A", "started"), xml("complain")))).toEqual(notInProfile(`${PROFILE} (enforce)`, "complain"));
    const status = JSON.parse(run(t, ["status", "--json"]).stdout) as Array<{ name: string; loadedAs: string; modeFrom: string }>;
    expect(status.filter((s) => s.name === "A").map((s) => [s.loadedAs, s.modeFrom])).toEqual([["complain", "metadata"]]);
  });

  it("negative control: the same guest without <vah:mode> is loaded enforce and (complain) is refused at started", () => {
    t.writeConfig({ ...defaultTestConfig(), started_check: "enforce" });
    expect(result(callHook(t, op("A", "prepare"), xml()))).toEqual({ status: 0, stderr: "" });
    expect([record().loadedAs, record().modeFrom]).toEqual(["enforce", "config"]);
    qemuLabel(`${PROFILE} (complain)`);
    expect(result(callHook(t, op("A", "started"), xml()))).toEqual(notInProfile(`${PROFILE} (complain)`, "enforce"));
  });

  it("guest_mode = tighten: enforce from the metadata under mode = complain: loaded enforce; the mode change reloads an unchanged guest", () => {
    t.writeConfig({ ...defaultTestConfig(), mode: "complain", started_check: "enforce", guest_mode: "tighten" });
    expect(result(callHook(t, op("A", "prepare"), xml()))).toEqual({ status: 0, stderr: "" });
    expect([record().loadedAs, record().modeFrom]).toEqual(["complain", "config"]);
    expect(result(callHook(t, op("A", "prepare"), xml("enforce")))).toEqual({ status: 0, stderr: "" });
    expect([record().loadedAs, record().modeFrom]).toEqual(["enforce", "metadata"]);
    qemuLabel(`${PROFILE} (enforce)`);
    expect(result(callHook(t, op("A", "started"), xml("enforce")))).toEqual({ status: 0, stderr: "" });
  });

  it("guest_mode = any with require_attach = yes refuses the domain's complain at prepare and in explain, writing nothing; enforce passes (control)", () => {
    t.writeConfig({ ...defaultTestConfig(), require_attach: "yes", guest_mode: "any" });
    const line = `virt-aa-hook: error: A: metadata/guest/mode: the domain asks for complain mode, but require_attach = "yes" requires every guest confined; remove <mode> from the domain's metadata (virsh metadata) or set require_attach = "no"\n`;
    expect(result(callHook(t, op("A", "prepare"), xml("complain")))).toEqual({ status: 1, stderr: line });
    expect(t.exists(`/etc/apparmor.d/libvirt/libvirt-${UUID_A}.files`)).toBe(false);
    expect(run(t, ["explain", "-"], xml("complain"))).toEqual({ status: 1, stdout: "", stderr: line });
    expect(run(t, ["explain", "--json", "-"], xml("complain"))).toEqual({ status: 1, stdout: "", stderr: line });
    expect(result(callHook(t, op("A", "prepare"), xml("enforce")))).toEqual({ status: 0, stderr: "" });
  });

  it("status shows the mode and what set it", () => {
    t.writeConfig({ ...defaultTestConfig(), guest_mode: "any" });
    expect(result(callHook(t, op("A", "prepare"), xml("complain")))).toEqual({ status: 0, stderr: "" });
    const table = run(t, ["status"]).stdout.split("\n");
    expect(table.find((l) => / AS +PROFILE FILE/.test(l))).toBeDefined();
    expect(table.find((l) => l.startsWith("A "))).toMatch(/ complain \(metadata\) +pristine +ok$/);
  });
});
