/**
 * qemu.conf end to end: a qemu.conf under a temp root, read by the real parser, through
 * buildProfile (rules → policy → .files) and the real apparmor_parser. Every setting with a
 * non-default value, and the default path then not granted (negative control).
 */
import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { GuestError, HostError } from "../../src/errors.js";
import { Layout } from "../../src/layout.js";
import { buildProfile } from "../../src/pipeline.js";
import type { Rule } from "../../src/ir.js";
import { compileGuest, exprMatches, guestRuleExprs } from "../helpers/apparmor.js";
import { tempRoot, writeHostFile } from "../rules/fixtures.js";
import { GUEST_UUID, guestXml } from "./fakehost.js";

const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

/** A root with this qemu.conf (none when undefined) and these extra host files. */
function host(qemuConf: string | undefined, files: Record<string, string> = {}): Layout {
  const t = tempRoot();
  cleanups.push(t.cleanup);
  if (qemuConf !== undefined) writeHostFile(t.root, "/etc/libvirt/qemu.conf", qemuConf);
  for (const [p, content] of Object.entries(files)) writeHostFile(t.root, p, content);
  return new Layout(t.root);
}

function rulesOf(layout: Layout, devices: string, extra = ""): Rule[] {
  return buildProfile(guestXml(devices, extra), { layout }).rules.map(({ origin: _o, ...r }) => r);
}
function refusal(layout: Layout, devices: string, extra = ""): string {
  try {
    buildProfile(guestXml(devices, extra), { layout });
  } catch (err) {
    expect(err).toBeInstanceOf(GuestError);
    return (err as GuestError).toLine();
  }
  throw new Error("granted");
}
async function compiled(layout: Layout, devices: string, extra = ""): Promise<string[]> {
  const { filesText } = buildProfile(guestXml(devices, extra), { layout });
  expect(await compileGuest(GUEST_UUID, filesText)).toEqual({ ok: true, stderr: "" });
  return guestRuleExprs(GUEST_UUID, filesText);
}
const grants = (exprs: string[], p: string) => exprs.some((e) => exprMatches(e, p));

const FILE_RAM = "<memoryBacking><source type='file'/></memoryBacking>";
const HUGEPAGES = "<memoryBacking><hugepages/></memoryBacking>";
const disk = (p: string) => `<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${p}'/><target dev='vda'/></disk>`;
const os = (loader: string) => `<os><type arch='x86_64' machine='q35'>hvm</type>${loader}</os>`;

describe("memory_backing_dir", () => {
  it("moves the guest's file-backed RAM dir; the default dir is then not granted", async () => {
    const layout = host('memory_backing_dir = "/srv/ram"\n');
    const rules = rulesOf(layout, "", FILE_RAM);
    // libvirt appends /libvirt/qemu to a memory_backing_dir qemu.conf sets (qemu_conf.c
    // virQEMUDriverConfigLoadMemoryEntry; the lab saw libvirt 9.0 use /srv/lab-ram/libvirt/qemu/3-lab-m).
    expect(rules.filter((r) => r.source === "memory backing")).toEqual([{ path: "/srv/ram/libvirt/qemu/7-vm1", suffix: "{,/**}", perms: "rw", source: "memory backing" }]);
    const exprs = await compiled(layout, "", FILE_RAM);
    expect(grants(exprs, "/srv/ram/libvirt/qemu/7-vm1/pc.ram")).toBe(true);
    expect(grants(exprs, "/srv/ram/7-vm1/pc.ram")).toBe(false);
    expect(grants(exprs, "/var/lib/libvirt/qemu/ram/7-vm1/pc.ram")).toBe(false);
    expect(grants(exprs, "/srv/ram/libvirt/qemu/3-other/pc.ram")).toBe(false);
  });

  it("makes the moved dir a managed root: another guest's RAM dir there is refused to any element", () => {
    const layout = host('memory_backing_dir = "/srv/ram"\n');
    expect(refusal(layout, disk("/srv/ram/libvirt/qemu/3-other/pc.ram"))).toBe(
      "virt-aa-hook: error: vm1: /srv/ram/libvirt/qemu/3-other/pc.ram: disk vda: /srv/ram/libvirt/qemu holds libvirt's runtime state for every guest and for libvirt itself; only this guest's own entries (named after its id, name and UUID) are granted; name a path outside /srv/ram/libvirt/qemu",
    );
    // Negative control: with libvirt's default qemu.conf /srv/ram is an ordinary directory.
    expect(rulesOf(host(undefined), disk("/srv/ram/libvirt/qemu/3-other/pc.ram")).map((r) => r.path)).toContain("/srv/ram/libvirt/qemu/3-other/pc.ram");
  });

  it('= "/dev/shm": the guest\'s own RAM dir there is granted, /dev/shm stays shared memory for everything else', () => {
    const layout = host('memory_backing_dir = "/dev/shm"\n');
    expect(rulesOf(layout, "<shmem name='ivshmem0'><model type='ivshmem-plain'/></shmem>", FILE_RAM).filter((r) => r.path.startsWith("/dev/shm"))).toEqual([
      { path: "/dev/shm/ivshmem0", suffix: "", perms: "rw", source: "shmem ivshmem0" },
      { path: "/dev/shm/libvirt/qemu/7-vm1", suffix: "{,/**}", perms: "rw", source: "memory backing" },
    ]);
    expect(refusal(layout, disk("/dev/shm/3-other/pc.ram"))).toContain("disk vda: /dev/shm holds the shared memory of other host processes");
  });
});

describe("hugetlbfs_mount", () => {
  const mounts = { "/proc/mounts": "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n" };

  it("replaces the detected mounts; the detected one is then not granted", async () => {
    const layout = host('hugetlbfs_mount = [ "/mnt/huge1G", "/mnt/huge2M" ]\n', mounts);
    expect(rulesOf(layout, "", HUGEPAGES).filter((r) => r.source === "hugepages")).toEqual([
      { path: "/mnt/huge1G/libvirt/qemu/7-vm1", suffix: "{,/**}", perms: "rw", source: "hugepages" },
      { path: "/mnt/huge2M/libvirt/qemu/7-vm1", suffix: "{,/**}", perms: "rw", source: "hugepages" },
    ]);
    const exprs = await compiled(layout, "", HUGEPAGES);
    expect(grants(exprs, "/mnt/huge1G/libvirt/qemu/7-vm1/qemu_back_mem.x")).toBe(true);
    expect(grants(exprs, "/dev/hugepages/libvirt/qemu/7-vm1/qemu_back_mem.x")).toBe(false);
    // The configured mounts are managed roots: another guest's hugepage dir is refused.
    expect(refusal(layout, disk("/mnt/huge1G/libvirt/qemu/3-other/x"))).toContain("disk vda: /mnt/huge1G holds libvirt's runtime state");
    // Negative control: unset, the detected mount is used.
    expect(rulesOf(host(undefined, mounts), "", HUGEPAGES).filter((r) => r.source === "hugepages").map((r) => r.path)).toEqual(["/dev/hugepages/libvirt/qemu/7-vm1"]);
  });

  it("= [] means no hugetlbfs: nothing granted", () => {
    expect(rulesOf(host("hugetlbfs_mount = []\n", mounts), "", HUGEPAGES).filter((r) => r.source === "hugepages")).toEqual([]);
  });
});

describe("stdio_handler", () => {
  it('"file": QEMU writes its own log; "logd" (the default): it writes to virtlogd\'s pipe and gets no log rule', async () => {
    const file = host('stdio_handler = "file"\n');
    expect(rulesOf(file, "").filter((r) => r.source === "log")).toEqual([{ path: "/var/log/libvirt/qemu/vm1.log", suffix: "", perms: "w", source: "log" }]);
    expect(grants(await compiled(file, ""), "/var/log/libvirt/qemu/vm1.log")).toBe(true);
    for (const layout of [host(undefined), host('stdio_handler = "logd"\n')]) {
      expect(rulesOf(layout, "").filter((r) => r.source === "log")).toEqual([]);
    }
  });
});

describe("auto_dump_path", () => {
  it("moved: the dump dir holds every guest's memory, so it is a managed root", () => {
    const layout = host('auto_dump_path = "/srv/dumps"\n');
    expect(refusal(layout, disk("/srv/dumps/3-other-2026-12-05-08:00:00"))).toContain("disk vda: /srv/dumps holds libvirt's runtime state");
    expect(rulesOf(host(undefined), disk("/srv/dumps/3-other")).map((r) => r.path)).toContain("/srv/dumps/3-other");
  });
});

describe("nvram (loader:template pairs)", () => {
  const LOADER = "<loader readonly='yes' type='pflash'>/usr/lib/fw/CODE.fd</loader><nvram>/var/lib/libvirt/qemu/nvram/vm1_VARS.fd</nvram>";

  it("a listed loader is firmware the guest may read wherever it is; its template is never granted", async () => {
    const layout = host('nvram = [ "/usr/lib/fw/CODE.fd:/usr/lib/fw/VARS.fd" ]\n');
    expect(rulesOf(layout, "", os(LOADER)).filter((r) => r.source === "loader" || r.source === "nvram")).toEqual([
      { path: "/usr/lib/fw/CODE.fd", suffix: "", perms: "rk", source: "loader" },
      { path: "/var/lib/libvirt/qemu/nvram/vm1_VARS.fd", suffix: "", perms: "rwk", source: "nvram" },
    ]);
    expect(grants(await compiled(layout, "", os(LOADER)), "/usr/lib/fw/CODE.fd")).toBe(true);
    // (The base abstraction lets every process read /usr/lib, so the template's absence is checked in the .files.)
    expect(buildProfile(guestXml("", os(LOADER)), { layout }).filesText).not.toContain("/usr/lib/fw/VARS.fd");
  });

  it("negative controls: unlisted it is a restricted location; listed it is still never writable, nor reachable by a disk", () => {
    expect(refusal(host(undefined), "", os(LOADER))).toBe("virt-aa-hook: error: vm1: /usr/lib/fw/CODE.fd: loader: restricted location /usr is never granted to guests");
    const listed = host('nvram = [ "/usr/lib/fw/CODE.fd:/usr/lib/fw/VARS.fd" ]\n');
    expect(refusal(listed, "", os("<loader readonly='no' type='pflash'>/usr/lib/fw/CODE.fd</loader>"))).toBe(
      "virt-aa-hook: error: vm1: /usr/lib/fw/CODE.fd: loader: restricted location /usr is never granted to guests",
    );
    expect(refusal(listed, disk("/usr/lib/fw/CODE.fd"))).toContain("disk vda: restricted location /usr is never granted to guests");
  });
});

describe("firmware directories", () => {
  it.each([
    ["/usr/local/share/qemu/edk2-x86_64-code.fd", "pflash", "rk"],
    ["/usr/share/qemu-efi-loongarch64/QEMU_EFI.fd", "rom", "r"],
    ["/usr/share/qemu-efi-riscv64/RISCV_VIRT_CODE.fd", "pflash", "rk"],
    ["/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin", "rom", "r"],
  ])("%s is read-only firmware", (p, type, perms) => {
    const layout = host(undefined);
    expect(rulesOf(layout, "", os(`<loader readonly='yes' type='${type}'>${p}</loader>`)).filter((r) => r.source === "loader")).toEqual([{ path: p, suffix: "", perms, source: "loader" }]);
    // Negative control: never writable.
    expect(refusal(layout, "", os(`<loader readonly='no' type='pflash'>${p}</loader>`))).toContain(`loader: only read access is allowed under`);
  });

  it("a relative loader is refused naming the element", () => {
    expect(refusal(host(undefined), "", os("<loader readonly='yes' type='pflash'>OVMF_CODE.fd</loader>"))).toBe("virt-aa-hook: error: vm1: OVMF_CODE.fd: loader: path is not absolute");
  });
});

describe("TLS certificate dirs", () => {
  const SERVER = ["ca-cert.pem", "ca-crl.pem", "server-cert.pem", "server-key.pem", "dh-params.pem"];
  const CLIENT = ["ca-cert.pem", "ca-crl.pem", "client-cert.pem", "client-key.pem"];
  const vnc = "<graphics type='vnc' port='-1' autoport='yes'/>";
  const spice = "<graphics type='spice' autoport='yes'/>";
  const tcp = (mode: string, tls = "") => `<serial type='tcp'><source mode='${mode}' host='127.0.0.1' service='4555'${tls}/><target port='0'/></serial>`;
  const tlsRules = (layout: Layout, devices: string) => rulesOf(layout, devices).filter((r) => r.source.endsWith(" tls"));
  const expected = (dir: string, files: string[], source: string) => files.map((f) => ({ path: `${dir}/${f}`, suffix: "", perms: "r", source }));

  it("vnc_tls with a moved cert dir: that dir's server files, read-only, for a guest with VNC only", async () => {
    const layout = host('vnc_tls = 1\nvnc_tls_x509_cert_dir = "/etc/pki/vnc-certs"\n');
    expect(tlsRules(layout, vnc)).toEqual(expected("/etc/pki/vnc-certs", SERVER, "vnc tls"));
    const exprs = await compiled(layout, vnc);
    expect(grants(exprs, "/etc/pki/vnc-certs/server-key.pem")).toBe(true);
    // Negative controls: no VNC, no vnc_tls, or another user's switch: nothing.
    expect(tlsRules(layout, spice)).toEqual([]);
    expect(tlsRules(host('vnc_tls_x509_cert_dir = "/etc/pki/vnc-certs"\n'), vnc)).toEqual([]);
    expect(tlsRules(host('spice_tls = 1\nvnc_tls_x509_cert_dir = "/etc/pki/vnc-certs"\n'), vnc)).toEqual([]);
  });

  it("spice_tls falls back to default_tls_x509_cert_dir", () => {
    const layout = host('spice_tls = 1\ndefault_tls_x509_cert_dir = "/etc/pki/host-tls"\n');
    expect(tlsRules(layout, spice)).toEqual(expected("/etc/pki/host-tls", SERVER, "spice tls"));
  });

  it("chardev_tls: a TCP server gets server files, a client client files; tls='no' opts out, tls='yes' opts in", () => {
    const on = host('chardev_tls = 1\nchardev_tls_x509_cert_dir = "/etc/pki/chr"\n');
    expect(tlsRules(on, tcp("bind"))).toEqual(expected("/etc/pki/chr", SERVER, "serial 0 tls"));
    expect(tlsRules(on, tcp("connect"))).toEqual(expected("/etc/pki/chr", CLIENT, "serial 0 tls"));
    expect(tlsRules(on, tcp("bind", " tls='no'"))).toEqual([]);
    const off = host('chardev_tls_x509_cert_dir = "/etc/pki/chr"\n');
    expect(tlsRules(off, tcp("connect"))).toEqual([]);
    expect(tlsRules(off, tcp("connect", " tls='yes'"))).toEqual(expected("/etc/pki/chr", CLIENT, "serial 0 tls"));
  });

  it("migrate_tls_force: both endpoints' files of the migration cert dir; without it nothing", () => {
    const forced = host('migrate_tls_force = 1\nmigrate_tls_x509_cert_dir = "/etc/pki/mig"\n');
    expect(tlsRules(forced, "")).toEqual([...expected("/etc/pki/mig", SERVER, "migration tls"), ...expected("/etc/pki/mig", ["client-cert.pem", "client-key.pem"], "migration tls")]);
    expect(tlsRules(host('migrate_tls_x509_cert_dir = "/etc/pki/mig"\n'), "")).toEqual([]);
  });
});

describe("a broken qemu.conf", () => {
  it("refuses to build with a HostError naming the file, the line and the key", () => {
    const layout = host('# comment\nmemory_backing_dir = [ "/srv/ram"\n');
    expect(() => buildProfile(guestXml(""), { layout })).toThrow(HostError);
    expect(() => buildProfile(guestXml(""), { layout })).toThrow("/etc/libvirt/qemu.conf: line 2: memory_backing_dir: unterminated list");
  });

  it("is read from the root, never from the machine", () => {
    const layout = host(undefined);
    expect(fs.existsSync(path.join(layout.root, "etc/libvirt/qemu.conf"))).toBe(false);
    expect(rulesOf(layout, "", FILE_RAM).filter((r) => r.source === "memory backing").map((r) => r.path)).toEqual(["/var/lib/libvirt/qemu/ram/7-vm1"]);
  });
});
