import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { HostError } from "../../src/errors.js";
import { HostFs } from "../../src/hostfs.js";
import { Layout } from "../../src/layout.js";
import { defaultQemuConf, loadQemuConf, parseQemuConf, parseVirConf, qemuConfManagedRoots } from "../../src/host/qemu-conf.js";
import { tempRootsPerTest } from "../rules/fixtures.js";
import { qemuConfOf, type HookContext } from "../../src/hook/context.js";
import { DEFAULT_CONFIG } from "../../src/config.js";

const layout = new Layout("/");
const FILE = "/etc/libvirt/qemu.conf";

const root = tempRootsPerTest();

function hostError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HostError);
    return (err as HostError).message;
  }
  throw new Error("no error");
}

describe("libvirt's defaults (qemu_conf.c virQEMUDriverConfigNew)", () => {
  it("gives every setting libvirt's default when qemu.conf sets none", () => {
    expect(defaultQemuConf(layout)).toEqual({
      file: FILE,
      memoryBackingDir: "/var/lib/libvirt/qemu/ram",
      hugetlbfsMount: undefined,
      nvram: [
        { loader: "/usr/share/OVMF/OVMF_CODE.fd", template: "/usr/share/OVMF/OVMF_VARS.fd" },
        { loader: "/usr/share/OVMF/OVMF_CODE.secboot.fd", template: "/usr/share/OVMF/OVMF_VARS.fd" },
        { loader: "/usr/share/AAVMF/AAVMF_CODE.fd", template: "/usr/share/AAVMF/AAVMF_VARS.fd" },
        { loader: "/usr/share/AAVMF/AAVMF32_CODE.fd", template: "/usr/share/AAVMF/AAVMF32_VARS.fd" },
      ],
      stdioHandler: "logd",
      autoDumpPath: "/var/lib/libvirt/qemu/dump",
      vncTls: { enabled: false, certDir: "/etc/pki/qemu" },
      spiceTls: { enabled: false, certDir: "/etc/pki/qemu" },
      chardevTls: { enabled: false, certDir: "/etc/pki/qemu" },
      nbdTls: { enabled: false, certDir: "/etc/pki/qemu" },
      migrateTls: { enabled: false, certDir: "/etc/pki/qemu" },
      backupTlsCertDir: "/etc/pki/qemu",
      defaultTlsCertDir: "/etc/pki/qemu",
    });
    // Debian's shipped qemu.conf is all comments: the same values.
    expect(parseQemuConf('# comment\n#memory_backing_dir = "/x"\n\n', layout)).toEqual(defaultQemuConf(layout));
  });

  it("reads no file on a host without qemu.conf, and the root's file when there is one", () => {
    const r = root();
    const l = new Layout(r);
    expect(loadQemuConf(new HostFs(l))).toEqual(defaultQemuConf(l));
    fs.mkdirSync(path.join(r, "etc/libvirt"), { recursive: true });
    fs.writeFileSync(path.join(r, "etc/libvirt/qemu.conf"), 'memory_backing_dir = "/srv/ram"\n');
    expect(loadQemuConf(new HostFs(l)).memoryBackingDir).toBe("/srv/ram/libvirt/qemu");
  });

  it("is read once per hook call: the first profile build reads it, later ones reuse it", () => {
    const r = root();
    fs.mkdirSync(path.join(r, "etc/libvirt"), { recursive: true });
    const file = path.join(r, "etc/libvirt/qemu.conf");
    fs.writeFileSync(file, 'memory_backing_dir = "/srv/one"\n');
    const ctx: HookContext = { layout: new Layout(r), config: DEFAULT_CONFIG, guest: "vm1", op: "prepare", warnings: [] };
    expect(ctx.qemu).toBeUndefined();
    const first = qemuConfOf(ctx);
    fs.writeFileSync(file, 'memory_backing_dir = "/srv/two"\n');
    expect(qemuConfOf(ctx)).toBe(first);
    expect(first.memoryBackingDir).toBe("/srv/one/libvirt/qemu");
  });

  it("takes /etc/pki/libvirt-<user> as a TLS user's cert dir when it exists (SET_TLS_X509_CERT_DEFAULT)", () => {
    const r = root();
    fs.mkdirSync(path.join(r, "etc/pki/libvirt-vnc"), { recursive: true });
    const conf = loadQemuConf(new HostFs(new Layout(r)));
    expect(conf.vncTls.certDir).toBe("/etc/pki/libvirt-vnc");
    expect(conf.spiceTls.certDir).toBe("/etc/pki/qemu");
  });
});

describe("virConf syntax", () => {
  it("reads strings in either quote, triple-quoted strings, integers, lists over several lines with comments, and an optional ';'", () => {
    const text = [
      'a = "x y"  # trailing comment',
      "b = 'single'",
      "c = -42;",
      'd = """multi',
      'line"""',
      "e = [",
      '  "one",   # first',
      "",
      "  'two',",
      "]",
      "f = []",
      "g=1",
    ].join("\n");
    const values = Object.fromEntries([...parseVirConf(text, FILE)].map(([k, v]) => [k, v]));
    expect(values).toEqual({
      a: { value: { kind: "string", value: "x y" }, line: 1 },
      b: { value: { kind: "string", value: "single" }, line: 2 },
      c: { value: { kind: "int", value: -42 }, line: 3 },
      d: { value: { kind: "string", value: "multi\nline" }, line: 4 },
      e: { value: { kind: "list", value: [{ kind: "string", value: "one" }, { kind: "string", value: "two" }] }, line: 6 },
      f: { value: { kind: "list", value: [] }, line: 11 },
      g: { value: { kind: "int", value: 1 }, line: 12 },
    });
  });

  it("negative control for the memory_backing_dir refusals: dedicated dirs, /dev/shm and libvirt's default dir are kept", () => {
    for (const dir of ["/srv/ram", "/dev/shm", "/var/lib/libvirt/qemu/ram", "/srv//ram/./"]) {
      expect(parseQemuConf(`memory_backing_dir = "${dir}"\n`, layout).memoryBackingDir).toBe(`${dir === "/srv//ram/./" ? "/srv/ram" : dir}/libvirt/qemu`);
    }
  });

  it("lets the last assignment win", () => {
    expect(parseQemuConf('memory_backing_dir = "/a"\nmemory_backing_dir = "/b"\n', layout).memoryBackingDir).toBe("/b/libvirt/qemu");
  });

  it.each([
    ['memory_backing_dir = "/srv/ram\n', "/etc/libvirt/qemu.conf: line 1: memory_backing_dir: unterminated string"],
    ['\n\nnvram = [ "/a:/b" "/c:/d" ]\n', "/etc/libvirt/qemu.conf: line 3: nvram: expecting a separator in list"],
    ["\nx = [\n 1,\n", "/etc/libvirt/qemu.conf: line 2: x: unterminated list"],
    ['memory_backing_dir "/srv"\n', "/etc/libvirt/qemu.conf: line 1: memory_backing_dir: expecting an assignment"],
    ["stdio_handler = logd\n", "/etc/libvirt/qemu.conf: line 1: stdio_handler: expecting a value"],
    ['a = "x" b = "y"\n', "/etc/libvirt/qemu.conf: line 1: a: expecting a separator"],
    ['= "x"\n', "/etc/libvirt/qemu.conf: line 1: expecting a name"],
    ["x = [ [ 1 ] ]\n", "/etc/libvirt/qemu.conf: line 1: x: lists cannot contain lists"],
  ])("refuses a syntax error naming file, line and key: %j", (text, message) => {
    expect(hostError(() => parseQemuConf(text, layout))).toBe(message);
  });

  it.each([
    ["memory_backing_dir = 1\n", "/etc/libvirt/qemu.conf: line 1: memory_backing_dir: expected a string, found an integer"],
    ['\nmemory_backing_dir = "ram"\n', '/etc/libvirt/qemu.conf: line 2: memory_backing_dir: path is not absolute: "ram"'],
    ['vnc_tls = "1"\n', '/etc/libvirt/qemu.conf: line 1: vnc_tls: expected 0 or 1, found a string'],
    ["vnc_tls = 2\n", "/etc/libvirt/qemu.conf: line 1: vnc_tls: expected 0 or 1, found an integer"],
    ['nvram = [ "/a/CODE.fd" ]\n', '/etc/libvirt/qemu.conf: line 1: nvram: expected "LOADER:TEMPLATE", found "/a/CODE.fd"'],
    ['nvram = [ "CODE.fd:/a/VARS.fd" ]\n', '/etc/libvirt/qemu.conf: line 1: nvram: loader path is not absolute: "CODE.fd"'],
    ["nvram = [ 1 ]\n", "/etc/libvirt/qemu.conf: line 1: nvram: expected a list of strings, found an integer"],
    ['stdio_handler = "journal"\n', '/etc/libvirt/qemu.conf: line 1: stdio_handler: unknown stdio handler "journal" (expected "logd" or "file")'],
    ['hugetlbfs_mount = [ "hugepages" ]\n', '/etc/libvirt/qemu.conf: line 1: hugetlbfs_mount: path is not absolute: "hugepages"'],
    // A degenerate memory_backing_dir (review18 F10): it would become a managed root over libvirt's state.
    ['\nmemory_backing_dir = "/"\n', '/etc/libvirt/qemu.conf: line 2: memory_backing_dir: "/" would make /var/lib/libvirt/qemu part of every guest\'s RAM dir; name a dedicated directory'],
    ['memory_backing_dir = "/var/lib/libvirt"\n', '/etc/libvirt/qemu.conf: line 1: memory_backing_dir: "/var/lib/libvirt" would make /var/lib/libvirt/qemu part of every guest\'s RAM dir; name a dedicated directory'],
    ['memory_backing_dir = "/run"\n', '/etc/libvirt/qemu.conf: line 1: memory_backing_dir: "/run" would make /run/libvirt part of every guest\'s RAM dir; name a dedicated directory'],
    ['memory_backing_dir = "/var/lib/libvirt/images"\n', '/etc/libvirt/qemu.conf: line 1: memory_backing_dir: "/var/lib/libvirt/images" would make /var/lib/libvirt/images part of every guest\'s RAM dir; name a dedicated directory'],
    ['memory_backing_dir = "/etc/ram"\n', '/etc/libvirt/qemu.conf: line 1: memory_backing_dir: "/etc/ram" is inside /etc; name a dedicated directory'],
    ['memory_backing_dir = "/srv/a/../ram"\n', '/etc/libvirt/qemu.conf: line 1: memory_backing_dir: path has a ".." component: "/srv/a/../ram"'],
  ])("refuses a value of the wrong type or form naming file, line and key: %j", (text, message) => {
    expect(hostError(() => parseQemuConf(text, layout))).toBe(message);
  });

  it("names the root's file in errors when it is read from a root", () => {
    const r = root();
    fs.mkdirSync(path.join(r, "etc/libvirt"), { recursive: true });
    fs.writeFileSync(path.join(r, "etc/libvirt/qemu.conf"), "\n\nmemory_backing_dir = [\n");
    expect(hostError(() => loadQemuConf(new HostFs(new Layout(r))))).toBe("/etc/libvirt/qemu.conf: line 3: memory_backing_dir: unterminated list");
  });

  it("ignores keys it does not use, of any type", () => {
    expect(parseQemuConf('security_driver = [ "apparmor" ]\nmax_core = "unlimited"\nremote_display_port_min = 5900\n', layout)).toEqual(defaultQemuConf(layout));
  });
});

describe("the settings", () => {
  it("hugetlbfs_mount: a string is a list of one; a list as given; \"\" and [] are none; unset is detection", () => {
    expect(parseQemuConf('hugetlbfs_mount = "/dev/hugepages1G/"\n', layout).hugetlbfsMount).toEqual(["/dev/hugepages1G"]);
    expect(parseQemuConf('hugetlbfs_mount = [ "/mnt/h2M", "/mnt/h1G" ]\n', layout).hugetlbfsMount).toEqual(["/mnt/h2M", "/mnt/h1G"]);
    expect(parseQemuConf('hugetlbfs_mount = ""\n', layout).hugetlbfsMount).toEqual([]);
    expect(parseQemuConf("hugetlbfs_mount = []\n", layout).hugetlbfsMount).toEqual([]);
    expect(parseQemuConf("", layout).hugetlbfsMount).toBeUndefined();
  });

  it("nvram: LOADER:TEMPLATE pairs replace libvirt's list", () => {
    expect(parseQemuConf('nvram = [\n  "/opt/fw/CODE.fd:/opt/fw/VARS.fd",\n]\n', layout).nvram).toEqual([{ loader: "/opt/fw/CODE.fd", template: "/opt/fw/VARS.fd" }]);
  });

  it("TLS: a user's own dir, else default_tls_x509_cert_dir; the switches; migrate_tls_force", () => {
    const conf = parseQemuConf(
      ['default_tls_x509_cert_dir = "/etc/pki/mine"', 'vnc_tls_x509_cert_dir = "/etc/pki/vnc-certs"', "vnc_tls = 1", "spice_tls = 0", "chardev_tls = 1", "migrate_tls_force = 1"].join("\n"),
      layout,
    );
    expect([conf.vncTls, conf.spiceTls, conf.chardevTls, conf.nbdTls, conf.migrateTls, conf.backupTlsCertDir]).toEqual([
      { enabled: true, certDir: "/etc/pki/vnc-certs" },
      { enabled: false, certDir: "/etc/pki/mine" },
      { enabled: true, certDir: "/etc/pki/mine" },
      { enabled: false, certDir: "/etc/pki/mine" },
      { enabled: true, certDir: "/etc/pki/mine" },
      "/etc/pki/mine",
    ]);
  });

  it("managed roots: the moved memory_backing_dir and auto_dump_path, but never /dev/shm (it keeps its own class)", () => {
    expect(qemuConfManagedRoots(parseQemuConf('memory_backing_dir = "/srv/ram"\nauto_dump_path = "/srv/dumps"\n', layout), layout)).toEqual(["/srv/ram/libvirt/qemu", "/srv/dumps"]);
    expect(qemuConfManagedRoots(parseQemuConf('memory_backing_dir = "/dev/shm"\n', layout), layout)).toEqual(["/var/lib/libvirt/qemu/dump"]);
    expect(layout.libvirtManagedRoots(["/srv/ram", "/var/lib/libvirt/qemu/dump"])).toEqual([
      "/var/lib/libvirt/qemu",
      "/var/lib/libvirt/qemu/channel/target",
      "/srv/ram",
      "/run/libvirt",
      "/run/libvirt/qemu/swtpm",
      "/var/lib/libvirt/swtpm",
      "/var/log/swtpm/libvirt/qemu",
      "/var/log/libvirt",
    ]);
  });
});
