/**
 * Device families libvirt 10–12 added (issue 18): from domain XML through the whole build (parse,
 * rules, policy, render) to the exact `.files` lines, compiled by the real apparmor_parser, with a
 * negative control for each security claim. Host state (sysfs) is a fake tree under a temporary
 * root; nothing reads the real host.
 *
 * The XML snippets are the ones listed in the devices helper's report (helper "corpus" may reuse them).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Layout } from "../../src/layout.js";
import { buildProfile } from "../../src/pipeline.js";
import { GuestError, PathError } from "../../src/errors.js";
import { HostFs } from "../../src/hostfs.js";
import { isWritablePerms, type OriginKind } from "../../src/ir.js";
import { checkRule } from "../../src/policy/index.js";
import { parseGranted, permsFor } from "../../src/render/granted.js";
import { exprLiteral, exprMatches, guestRuleExprs } from "../helpers/apparmor.js";
import { TEST_UUID, tempRoot, writeHostFile } from "./fixtures.js";
import { fakePciDevice, link, mkdir } from "./hosttree.js";

let root: string;
let cleanup: () => void;
beforeEach(() => ({ root, cleanup } = tempRoot()));
afterEach(() => cleanup());

const domainXml = (devices: string, id = " id='7'") =>
  `<domain type='kvm'${id}><name>vm1</name><uuid>${TEST_UUID}</uuid><devices>${devices}</devices></domain>`;

/** The rule lines of the guest's `.files` that do not come from the runtime family (log, pid, private dirs...). */
function deviceLines(devices: string, id?: string): string[] {
  const built = buildProfile(domainXml(devices, id), { layout: new Layout(root) });
  return built.filesText.split("\n").filter((l) => l.startsWith("  ") && !RUNTIME_SOURCES.test(l));
}
const RUNTIME_SOURCES = /# (log|pidfile|private dir|channel dir|hugepages|memory backing)$/;

function refusal(devices: string): { path: string; reason: string } {
  try {
    buildProfile(domainXml(devices), { layout: new Layout(root) });
  } catch (err) {
    if (err instanceof GuestError) return { path: err.path, reason: err.reason };
    throw err;
  }
  throw new Error("expected a refusal");
}

/** What the parser compiles from these lines beyond the template's own rules. */
async function compiled(lines: string[]): Promise<string[]> {
  const baseline = await guestRuleExprs(TEST_UUID, "");
  const exprs = await guestRuleExprs(TEST_UUID, `${lines.join("\n")}\n`);
  for (const b of baseline) {
    const at = exprs.indexOf(b);
    if (at >= 0) exprs.splice(at, 1);
  }
  return exprs;
}

describe("<memory model='sgx-epc'>", () => {
  const SGX = `<memory model='sgx-epc'><source><nodemask>0-1</nodemask></source><target><size unit='KiB'>16384</size><node>0</node></target></memory>`;

  it("grants /dev/sgx_vepc rw and /dev/sgx_provision r once, as libvirt 10+ does", async () => {
    const lines = deviceLines(SGX + SGX);
    expect(lines).toEqual(['  "/dev/sgx_vepc" rw,  # memory 0 sgx-epc', '  "/dev/sgx_provision" r,  # memory 0 sgx-epc']);
    expect((await compiled(lines)).map(exprLiteral).sort()).toEqual(["/dev/sgx_provision", "/dev/sgx_vepc"]);
  });

  it("negative control: the SGX nodes belong to no other element, and no host enclave node is granted", () => {
    expect(deviceLines(`<memory model='dimm'><target><size unit='KiB'>1024</size><node>0</node></target></memory>`)).toEqual([]);
    expect(refusal(`<serial type='dev'><source path='/dev/sgx_vepc'/><target port='0'/></serial>`).reason).toMatch(
      /^serial 0: \/dev\/sgx_vepc is not a device node a chardev of type='dev' may use/,
    );
    expect(refusal(`<memory model='nvdimm'><source><path>/dev/sgx_enclave</path></source><target><size unit='KiB'>1024</size><node>0</node></target></memory>`).reason).toMatch(
      /^memory 0 nvdimm: \/dev\/sgx_enclave is not a device node a <memory> device may use/,
    );
  });
});

describe("<pstore backend='acpi-erst'>", () => {
  const pstore = (p: string) => `<pstore backend='acpi-erst'><path>${p}</path><size unit='KiB'>8</size></pstore>`;

  it("grants the file rw, nothing else", async () => {
    const lines = deviceLines(pstore("/srv/vm1/pstore.raw"));
    expect(lines).toEqual(['  "/srv/vm1/pstore.raw" rw,  # pstore 0 acpi-erst']);
    expect((await compiled(lines)).map(exprLiteral)).toEqual(["/srv/vm1/pstore.raw"]);
  });

  it("a file directly in libvirt's NVRAM directory is the guest's own, like its NVRAM", () => {
    expect(deviceLines(pstore("/var/lib/libvirt/qemu/nvram/vm1_pstore.raw"))).toEqual([
      '  "/var/lib/libvirt/qemu/nvram/vm1_pstore.raw" rw,  # pstore 0 acpi-erst',
    ]);
  });

  it("negative control: another guest's runtime files, restricted places and devices are refused", () => {
    expect(refusal(pstore("/var/lib/libvirt/qemu/domain-3-other/master-key.aes")).reason).toMatch(
      /^pstore 0 acpi-erst: \/var\/lib\/libvirt\/qemu holds libvirt's runtime state for every guest/,
    );
    expect(refusal(pstore("/etc/shadow")).reason).toBe("pstore 0 acpi-erst: restricted location /etc is never granted to guests");
    expect(refusal(pstore("/dev/sda")).reason).toMatch(/^pstore 0 acpi-erst: \/dev\/sda is not a device node a <pstore> may use \(it may use none\)/);
    expect(refusal(pstore("relative.raw"))).toEqual({ path: "relative.raw", reason: "pstore 0: path is not absolute" });
  });

  it("rejects an unknown backend and a missing path at the element", () => {
    expect(refusal(`<pstore backend='other'><path>/srv/x</path></pstore>`).reason).toMatch(/unsupported pstore backend "other"/);
    expect(refusal(`<pstore backend='acpi-erst'/>`).reason).toMatch(/missing element/);
  });
});

describe("iommufd: <hostdev><driver iommufd='yes'/>", () => {
  const hostdev = (bus: string, iommufd = true) =>
    `<hostdev mode='subsystem' type='pci' managed='yes'>${iommufd ? "<driver iommufd='yes'/>" : ""}<source><address domain='0x0000' bus='${bus}' slot='0x00' function='0x0'/></source></hostdev>`;
  const PCI = "/sys/devices/pci0000:00/0000:00:02.0/0000:03:00.0";

  beforeEach(() => {
    fakePciDevice(root, "0000:03:00.0", 17);
    mkdir(root, `${PCI}/vfio-dev/vfio2`);
    fakePciDevice(root, "0000:04:00.0", 18);
    mkdir(root, "/sys/devices/pci0000:00/0000:00:02.0/0000:04:00.0/vfio-dev/vfio3");
  });

  it("adds /dev/iommu and the device's own VFIO cdev to its group's rules", async () => {
    const lines = deviceLines(hostdev("0x03"));
    expect(lines.slice(0, 2)).toEqual(['  "/dev/vfio/vfio" rw,  # hostdev pci 0000:03:00.0', '  "/dev/vfio/17" rw,  # hostdev pci 0000:03:00.0']);
    expect(lines.slice(-2)).toEqual(['  "/dev/iommu" rw,  # hostdev pci 0000:03:00.0', '  "/dev/vfio/devices/vfio2" rw,  # hostdev pci 0000:03:00.0']);
    const exprs = await compiled(lines);
    expect(exprs.map(exprLiteral)).toContain("/dev/vfio/devices/vfio2");
    // Negative control: the other device's node (vfio3) matches no compiled rule.
    expect(exprs.some((e) => exprMatches(e, "/dev/vfio/devices/vfio3"))).toBe(false);
  });

  it("negative control: without iommufd='yes' neither /dev/iommu nor a cdev", () => {
    expect(deviceLines(hostdev("0x03", false)).filter((l) => l.includes("iommu\"") || l.includes("/devices/vfio"))).toEqual([]);
  });

  it("negative control: another element naming a VFIO cdev or /dev/iommu is refused", () => {
    expect(refusal(`<serial type='dev'><source path='/dev/vfio/devices/vfio3'/><target port='0'/></serial>`).reason).toMatch(
      /^serial 0: VFIO devices are granted only to the <hostdev>/,
    );
    expect(refusal(`<input type='evdev'><source dev='/dev/iommu'/></input>`).reason).toMatch(/^input evdev: VFIO devices are granted only to the <hostdev>/);
  });

  it("refuses, naming the sysfs directory, a device without a VFIO cdev", () => {
    fakePciDevice(root, "0000:05:00.0", 19);
    expect(refusal(hostdev("0x05"))).toEqual({
      path: "/sys/bus/pci/devices/0000:05:00.0/vfio-dev",
      reason: "no VFIO device node: is the device bound to vfio-pci on a kernel with VFIO cdev support?",
    });
  });
});

describe("9p <filesystem type='mount'>: the link permission", () => {
  const share = (dir: string, ro = false) =>
    `<filesystem type='mount' accessmode='mapped'><source dir='${dir}'/><target dir='t'/>${ro ? "<readonly/>" : ""}</filesystem>`;

  it("grants rwl on the tree (libvirt 10+), r read-only; the parser accepts l", async () => {
    const lines = deviceLines(share("/srv/share") + share("/srv/ro", true).replace("<target dir='t'/>", "<target dir='r'/>"));
    expect(lines).toEqual(['  "/srv/share{,/**}" rwl,  # filesystem t', '  "/srv/ro{,/**}" r,  # filesystem r']);
    // rwl compiles to the tree and the link pair "<tree>\x00<target>": the kernel grants a link only
    // when the target already has the link path's permissions (AppArmor's link subset rule).
    expect((await compiled(lines)).sort()).toEqual(["/srv/ro(|/[^\\x00]*)", "/srv/share(|/[^\\x00]*)", "/srv/share(|/[^\\x00]*)\\x00/[^/].*"]);
  });

  it("negative control: l is a write (read-only exceptions refuse it) and belongs to 9p only", () => {
    expect(refusal(share("/usr/share/qemu")).reason).toBe('filesystem t: only read access is allowed under /usr/share/qemu (asked for "rwl")');
    const fs = new HostFs(new Layout(root));
    const linkRule = (kind: OriginKind) => ({ path: "/srv/x", suffix: "" as const, perms: "rwl", source: "x", origin: { kind } });
    expect(checkRule(fs, linkRule("filesystem")).perms).toBe("rwl");
    expect(() => checkRule(fs, linkRule("disk"))).toThrow(new PathError("/srv/x", "x: the link permission is granted only to a 9p <filesystem>, not to a <disk>"));
    expect(isWritablePerms("rl")).toBe(true);
    // What earlier hook calls and other guests' .files grant is read back with l (render/granted.ts).
    expect(permsFor(parseGranted('  "/srv/share" rwl,  # filesystem t\n'), "/srv/share")).toBe("rwl");
    expect(isWritablePerms("rk")).toBe(false);
  });
});

describe("<interface type='direct'> (macvtap)", () => {
  const direct = (dev?: string) =>
    `<interface type='direct'><mac address='52:54:00:11:22:33'/><source dev='eth0' mode='bridge'/>${dev === undefined ? "" : `<target dev='${dev}'/>`}<model type='virtio'/></interface>`;
  /** A macvtap link `name` with ifindex `index`, as the kernel shows it. */
  const macvtap = (name: string, index: number) => {
    writeHostFile(root, `/sys/devices/virtual/net/${name}/ifindex`, `${index}\n`);
    mkdir(root, `/sys/devices/virtual/net/${name}/macvtap/tap${index}`);
    link(root, `/sys/class/net/${name}`, `../../devices/virtual/net/${name}`);
  };

  it("grants the tap node of the link the XML names (start XML), and vhost-net", async () => {
    macvtap("macvtap0", 23);
    macvtap("macvtap1", 24);
    const lines = deviceLines(direct("macvtap0"));
    expect(lines).toEqual(['  "/dev/vhost-net" rw,  # interface 0 vhost-net', '  "/dev/tap23" rw,  # interface 0 macvtap macvtap0']);
    const exprs = await compiled(lines);
    expect(exprs.map(exprLiteral).sort()).toEqual(["/dev/tap23", "/dev/vhost-net"]);
    // Negative control: another guest's macvtap node matches nothing.
    expect(exprs.some((e) => exprMatches(e, "/dev/tap24"))).toBe(false);
  });

  it("grants nothing yet without a target dev (prepare XML) or before the link exists", () => {
    expect(deviceLines(direct())).toEqual(['  "/dev/vhost-net" rw,  # interface 0 vhost-net']);
    expect(deviceLines(direct("macvtap9"))).toEqual(['  "/dev/vhost-net" rw,  # interface 0 vhost-net']);
  });

  it("negative control: no element may name a tap node itself", () => {
    macvtap("macvtap1", 24);
    const tapBackend = `<interface type='ethernet'><backend tap='/dev/tap24'/><model type='virtio'/></interface>`;
    expect(refusal(tapBackend).reason).toMatch(/^interface 0 backend tap: \/dev\/tap24 is not a device node a <interface> may use/);
  });

  it("refuses a link that is not a macvtap as libvirt created it, and a name that is no link name", () => {
    writeHostFile(root, "/sys/class/net/weird0/ifindex", "5\n");
    mkdir(root, "/sys/class/net/weird0/macvtap/tap6");
    expect(refusal(direct("weird0")).reason).toBe("interface 0 macvtap weird0: expected one tap<ifindex> entry in macvtap/ (found tap6, ifindex 5)");
    expect(refusal(direct("../../x")).reason).toBe("invalid network interface name");
  });
});

describe("passt and D-Bus sockets libvirt creates per guest", () => {
  const passt = (alias?: string) =>
    `<interface type='user'><mac address='52:54:00:11:22:34'/><backend type='passt'/>${alias === undefined ? "" : `<alias name='${alias}'/>`}<model type='virtio'/></interface>`;

  it("grants the passt socket named after the live alias, rw; nothing at prepare (no alias)", async () => {
    const lines = deviceLines(passt("net0"));
    expect(lines).toEqual(['  "/run/libvirt/qemu/passt/7-vm1-net0.socket" rw,  # interface 0 passt']);
    expect((await compiled(lines)).map(exprLiteral)).toEqual(["/run/libvirt/qemu/passt/7-vm1-net0.socket"]);
    expect(deviceLines(passt())).toEqual([]);
  });

  it("vhost-user with the passt backend needs no <source> of its own", () => {
    const vhu = `<interface type='vhostuser'><backend type='passt'/><alias name='net1'/><model type='virtio'/></interface>`;
    expect(deviceLines(vhu)).toEqual(['  "/run/libvirt/qemu/passt/7-vm1-net1.socket" rw,  # interface 0 passt']);
  });

  it("negative control: an alias cannot leave passt's directory", () => {
    expect(refusal(passt("../../../x")).reason).toBe("interface 0 alias must be a single file name component");
  });

  it("grants the per-guest D-Bus display bus socket, an address's socket, nothing for p2p", async () => {
    const lines = deviceLines(`<graphics type='dbus'/>`);
    expect(lines).toEqual(['  "/run/libvirt/qemu/dbus/7-vm1-dbus.sock" rw,  # graphics dbus 0']);
    expect((await compiled(lines)).map(exprLiteral)).toEqual(["/run/libvirt/qemu/dbus/7-vm1-dbus.sock"]);
    expect(deviceLines(`<graphics type='dbus' address='unix:path=/srv/bus.sock'/>`)).toEqual(['  "/srv/bus.sock" rw,  # graphics dbus 0']);
    expect(deviceLines(`<graphics type='dbus' p2p='yes'/>`)).toEqual([]);
    expect(deviceLines(`<graphics type='dbus'/>`, "")).toEqual([]);
  });

  it("parses the D-Bus address: path= among key=value pairs (guid ignored); anything else refused at the element (review18 F8)", () => {
    expect(deviceLines(`<graphics type='dbus' address='unix:path=/srv/bus,guid=0123456789abcdef0123456789abcdef'/>`)).toEqual(['  "/srv/bus" rw,  # graphics dbus 0']);
    expect(deviceLines(`<graphics type='dbus' address='unix:guid=ab,path=/srv/b%20us'/>`)).toEqual(['  "/srv/b us" rw,  # graphics dbus 0']);
    expect(deviceLines(`<graphics type='dbus' address='unix:abstract=/tmp/x;tcp:host=localhost,port=1'/>`)).toEqual([]);
    for (const address of ["unix:path=/srv/bus,tmpdir=/tmp", "unixexec:path=/bin/sh", "nonce-tcp:host=h,port=1,noncefile=/etc/shadow", "unix:", "garbage"]) {
      expect(refusal(`<graphics type='dbus' address='${address}'/>`).reason).toMatch(/^graphics dbus 0: unsupported D-Bus address /);
    }
    // Each address of a list is judged: the second reaches the system bus.
    expect(refusal(`<graphics type='dbus' address='unix:path=/srv/bus;unix:path=/run/dbus/system_bus_socket'/>`).reason).toBe(
      "graphics dbus 0: restricted location /run/dbus is never granted to guests",
    );
  });

  it("negative control: another guest's dbus or passt socket, the system bus", () => {
    expect(refusal(`<graphics type='dbus' address='unix:path=/run/libvirt/qemu/dbus/3-other-dbus.sock'/>`).reason).toMatch(
      /^graphics dbus 0: \/run\/libvirt holds libvirt's runtime state for every guest/,
    );
    expect(refusal(`<graphics type='dbus' address='unix:path=/run/dbus/system_bus_socket'/>`).reason).toBe(
      "graphics dbus 0: restricted location /run/dbus is never granted to guests",
    );
  });
});

describe("<smartcard mode='host'|'host-certificates'>", () => {
  const certs = (db?: string) =>
    `<smartcard mode='host-certificates'><certificate>cert1</certificate><certificate>cert2</certificate><certificate>cert3</certificate>${db === undefined ? "" : `<database>${db}</database>`}</smartcard>`;
  const NSS = ['  "/etc/pki/nssdb/" r,  # smartcard 0 database', '  "/etc/pki/nssdb/*" rk,  # smartcard 0 database'];

  it("grants libvirt's default NSS database read-only: the directory and the files in it", async () => {
    expect(deviceLines(`<smartcard mode='host'/>`)).toEqual(NSS);
    expect(deviceLines(certs())).toEqual(NSS);
    expect(deviceLines(certs("/etc/pki/nssdb/"))).toEqual(NSS);
    const exprs = await compiled(NSS);
    expect(exprs.some((e) => exprMatches(e, "/etc/pki/nssdb/cert9.db"))).toBe(true);
    expect(exprs.some((e) => exprMatches(e, "/etc/pki/nssdb/sub/key4.db"))).toBe(false);
    expect(exprs.some((e) => exprMatches(e, "/etc/pki/tls/private/host.key"))).toBe(false);
  });

  it("grants a database outside the restricted places like any path the XML names, read-only", () => {
    expect(deviceLines(certs("/srv/nssdb"))).toEqual(['  "/srv/nssdb/" r,  # smartcard 0 database', '  "/srv/nssdb/*" rk,  # smartcard 0 database']);
  });

  it("negative control: a hostile <database> is refused", () => {
    expect(refusal(certs("/etc/ssl/private")).reason).toBe("smartcard 0 database: restricted location /etc is never granted to guests");
    expect(refusal(certs("/etc/pki/nssdb/../../ssl/private")).reason).toBe("smartcard 0 database: restricted location /etc is never granted to guests");
    expect(refusal(certs("/root/.pki/nssdb")).reason).toBe("smartcard 0 database: restricted location /root is never granted to guests");
    expect(refusal(certs("/var/lib/libvirt/qemu")).reason).toMatch(/^smartcard 0 database: \/var\/lib\/libvirt\/qemu holds libvirt's runtime state for every guest/);
    // Through a symlink: judged on where it leads.
    mkdir(root, "/etc/ssl/private");
    link(root, "/srv/db", "/etc/ssl/private");
    expect(refusal(certs("/srv/db"))).toEqual({ path: "/srv/db", reason: "resolves to /etc/ssl/private: smartcard 0 database: restricted location /etc is never granted to guests" });
  });

  it("a <database> is a tree: never over libvirt's images dir (every guest's disks) or above a managed root (review18 F4)", () => {
    mkdir(root, "/var/lib/libvirt/images");
    mkdir(root, "/srv/nss");
    expect(refusal(certs("/var/lib/libvirt")).reason).toMatch(/^smartcard 0 database: recursive access would include /);
    expect(refusal(certs("/var/lib/libvirt/images")).reason).toBe(
      "smartcard 0 database: recursive access would include /var/lib/libvirt/images, where libvirt keeps every guest's images; name a directory of this guest's own below it",
    );
    // Negative control: a database of its own elsewhere is granted.
    expect(deviceLines(certs("/srv/nss"))).toEqual(['  "/srv/nss/" r,  # smartcard 0 database', '  "/srv/nss/*" rk,  # smartcard 0 database']);
  });

  it("passthrough smartcards stay chardevs; an unknown mode is refused at the element", () => {
    expect(deviceLines(`<smartcard mode='passthrough' type='unix'><source mode='connect' path='/srv/cac.sock'/></smartcard>`)).toEqual([
      '  "/srv/cac.sock" rw,  # smartcard 0',
    ]);
    expect(refusal(`<smartcard mode='other'/>`).reason).toMatch(/unsupported smartcard mode "other"/);
  });
});
