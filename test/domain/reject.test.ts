import { describe, expect, it } from "vitest";
import { GuestError } from "../../src/errors.js";
import { parseDomain } from "../../src/domain/index.js";

const UUID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

/** A valid guest "g1" with `devices` inside <devices> and `extra` before it. */
function guest(devices = "", extra = "", rootAttrs = " type='kvm'"): string {
  return `<domain${rootAttrs}><name>g1</name><uuid>${UUID}</uuid>${extra}<devices>${devices}</devices></domain>`;
}

/** The GuestError parseDomain throws, as its three parts. */
function rejection(xml: string | Buffer): [string, string, string] {
  try {
    parseDomain(xml);
  } catch (err) {
    if (err instanceof GuestError) return [err.guest, err.path, err.reason];
    throw err;
  }
  throw new Error("parseDomain accepted the input");
}

function elapsedMs(run: () => void): number {
  const start = performance.now();
  run();
  return performance.now() - start;
}

describe("document screening (before the parser)", () => {
  it("rejects an oversized document by size alone, at once", () => {
    const huge = Buffer.alloc(50 * 1024 * 1024, 0x20);
    let result: [string, string, string] | undefined;
    const ms = elapsedMs(() => (result = rejection(huge)));
    expect(result).toEqual(["-", "XML", "document is 52428800 bytes, more than the limit of 16777216"]);
    expect(ms).toBeLessThan(50);
    const hugeText = " ".repeat(16 * 1024 * 1024 + 1);
    expect(rejection(hugeText)).toEqual(["-", "XML", "document is 16777217 bytes, more than the limit of 16777216"]);
  });

  it("rejects invalid UTF-8", () => {
    expect(rejection(Buffer.from([0x3c, 0x64, 0xff, 0x3e]))).toEqual(["-", "XML", "document is not valid UTF-8"]);
  });

  it("rejects NUL and other XML-illegal characters, with their position", () => {
    expect(rejection(`<domain>\n  <name>a\u0000</name>`)).toEqual(["-", "XML", "character U+0000 is not allowed in XML (line 2, column 10)"]);
    expect(rejection(guest().replace("g1", "g\u001b1"))).toEqual(["-", "XML", "character U+001B is not allowed in XML (line 1, column 27)"]);
    expect(rejection(guest().replace("g1", "g\ud8001"))).toEqual(["-", "XML", "character U+D800 is not allowed in XML (line 1, column 27)"]);
  });

  it("rejects any DTD: billion laughs and external entities never reach the parser", () => {
    const laughs = `<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>\n<domain><name>&lol2;</name></domain>`;
    expect(rejection(laughs)).toEqual(["-", "XML", "<!DOCTYPE> declarations are not allowed (line 2, column 1)"]);
    const external = `<domain><!ENTITY x SYSTEM "file:///etc/shadow"><name>x</name></domain>`;
    expect(rejection(external)).toEqual(["-", "XML", "<!ENTITY> declarations are not allowed (line 1, column 9)"]);
  });

  it("rejects a declared encoding other than UTF-8", () => {
    expect(rejection(`<?xml version="1.0" encoding="ISO-8859-1"?>${guest()}`)).toEqual([
      "-",
      "XML",
      'encoding "ISO-8859-1" is not supported (expected UTF-8)',
    ]);
  });

  it("bounds nesting depth: 256 levels pass, 257 are rejected quickly", () => {
    const nested = (levels: number) => `<domain><name>g1</name><uuid>${UUID}</uuid><metadata>${"<a>".repeat(levels)}${"</a>".repeat(levels)}</metadata></domain>`;
    expect(parseDomain(nested(254)).name).toBe("g1"); // domain + metadata + 254 = 256
    expect(rejection(nested(255))).toEqual(["-", "XML", `elements are nested more than 256 levels deep (line 1, column ${82 + 254 * 3 + 1})`]);
    const deep = "<domain>" + "<a>".repeat(1_000_000);
    let result: [string, string, string] | undefined;
    const ms = elapsedMs(() => (result = rejection(deep)));
    expect(result).toEqual(["-", "XML", `elements are nested more than 256 levels deep (line 1, column ${8 + 255 * 3 + 1})`]);
    expect(ms).toBeLessThan(500);
  });

  it("bounds the number of elements and attributes", () => {
    const many = `<domain><name>g1</name><uuid>${UUID}</uuid><metadata>${"<a b='1'/>".repeat(125_000)}</metadata></domain>`;
    expect(rejection(many)).toEqual(["-", "XML", `more than 250000 elements and attributes (line 1, column ${82 + 124_998 * 10 + 1})`]);
  });

  it("rejects '<' inside an attribute value", () => {
    expect(rejection(guest(`<disk type='file'><source file='/a<b'/></disk>`))).toEqual(["-", "XML", "'<' is not allowed in an attribute value (line 1, column 127)"]);
  });
});

describe("malformed XML becomes a clear error", () => {
  it.each([
    ["unclosed tag", `<domain><name>g1</name>`, "malformed XML at line 1, column 1: Unclosed tag 'domain'."],
    ["mismatched tags", `<domain><name>g1</uuid></domain>`, "malformed XML at line 1, column 17: Expected closing tag 'name' (opened in line 1, col 9) instead of closing tag 'uuid'."],
    ["garbage", `hello`, "malformed XML at line 1, column 1: char 'h' is not expected."],
    ["empty input", ``, "malformed XML at line 1: Start tag expected."],
    ["duplicate attribute", guest(`<disk type='file' type='block'/>`), "malformed XML at line 1, column 111: Attribute 'type' is repeated."],
    ["attribute without value", guest(`<disk readonly/>`), "malformed XML at line 1, column 99: boolean attribute 'readonly' is not allowed."],
    ["trailing text", `${guest()}junk`, "malformed XML at line 1, column 112: Extra text at the end"],
    ["a reserved JavaScript name", guest(`<constructor/>`), 'malformed XML: [SECURITY] Invalid name: "constructor" is a reserved JavaScript keyword that could cause prototype pollution'],
  ])("%s", (_label, xml, reason) => {
    expect(rejection(xml)).toEqual(["-", "XML", reason]);
  });

  it("rejects a root other than <domain>, and two roots", () => {
    expect(rejection(`<network><name>n</name></network>`)).toEqual(["-", "<network>", "root element is <network>, expected <domain>"]);
    expect(rejection(`${guest()}${guest()}`)).toEqual(["-", "XML", "malformed XML at line 1, column 130: Multiple possible root nodes found."]);
  });

  it("accepts arbitrary element names inside <metadata>", () => {
    expect(parseDomain(guest("", "<metadata><app:x xmlns:app='urn:a'><constructor/><__proto__/></app:x></metadata>")).name).toBe("g1");
  });
});

// fast-xml-parser's validator lets these through, and its parser then built a tree libvirt's
// libxml2 never builds (it refuses the first four): an end tag closing the wrong element, a stray
// "=", CDATA outside the root, a name split at a character JavaScript calls a space. The reader
// refuses them or, for a name XML allows, reads it as libxml2 does.
describe("malformed XML the validator lets through", () => {
  it.each([
    ["an end tag written as self-closing", guest(`<disk type='file'><target dev='vda'/></readonly/></disk>`), "malformed XML: end tag </readonly/> at offset 129 does not close <disk>"],
    ["an end tag with attributes", guest(`<disk type='file'></target dev='vda'/></disk>`), "malformed XML: end tag </target dev='vda'/> at offset 110 does not close <disk>"],
    ["a stray '=' in a tag", guest(`<disk type='file'><target dev='vda'=/></disk>`), "malformed XML: malformed attribute in <target> at offset 127"],
    ["CDATA before the root", `<![CDATA[x]]>${guest()}`, "malformed XML: CDATA section outside the root element at offset 0"],
    ["an element name after U+3000", guest(`<\u3000disk type='file'/>`), 'malformed XML: invalid element name "\u3000disk" at offset 92'],
  ])("refuses %s", (_label, xml, reason) => {
    expect(rejection(xml)).toEqual(["-", "XML", reason]);
  });

  it("reads a name holding U+1680 (an XML name character) as one name, as libvirt does", () => {
    // The old tree split "x\u1680file" at U+1680 and read a file= attribute libvirt never sees.
    const domain = parseDomain(guest(`<disk type='file' device='cdrom'><source x\u1680file='/srv/other.img'/><target dev='sda'/></disk>`));
    expect(domain.devices.disks).toEqual([{ type: "file", device: "cdrom", readonly: false, shareable: false, target: "sda" }]);
  });
});

describe("identity", () => {
  const withName = (name: string) => `<domain type='kvm'><name>${name}</name><uuid>${UUID}</uuid></domain>`;

  it("requires exactly one non-empty, one-line, slash-free <name> of at most 1024 characters", () => {
    expect(rejection(`<domain><uuid>${UUID}</uuid></domain>`)).toEqual(["-", "<name>", "missing element"]);
    expect(rejection(`<domain><name>a</name><name>b</name><uuid>${UUID}</uuid></domain>`)).toEqual(["-", "<name>", "duplicate element: found 2, expected exactly one"]);
    expect(rejection(withName(""))).toEqual(["-", "<name>", "empty domain name"]);
    expect(rejection(withName("x".repeat(1025)))).toEqual(["-", "<name>", "domain name is 1025 characters, more than 1024"]);
    expect(parseDomain(withName("x".repeat(1024))).name).toHaveLength(1024);
    expect(rejection(withName("web\n01"))).toEqual(["-", "<name>", "domain name contains control character U+000A"]);
    expect(rejection(withName("web&#10;01"))).toEqual(["-", "<name>", "domain name contains control character U+000A"]);
    expect(rejection(withName("web&#x85;01"))).toEqual(["-", "<name>", "domain name contains control character U+0085"]);
    expect(rejection(withName("../etc/web"))).toEqual(["-", "<name>", 'domain name contains "/"']);
  });

  it("keeps names as text, decoding the predefined entities", () => {
    expect(parseDomain(withName("1e3")).name).toBe("1e3");
    expect(parseDomain(withName("0x10")).name).toBe("0x10");
    expect(parseDomain(withName("a&amp;b&lt;&gt;&quot;&apos;&#233;&#x263A;")).name).toBe("a&b<>\"'é☺");
    expect(rejection(withName("a&nbsp;b"))).toEqual(["-", "<name>", 'unknown entity "&nbsp;"']);
    expect(rejection(withName("a & b"))).toEqual(["-", "XML", "malformed XML at line 1, column 28: char '&' is not expected."]);
    expect(rejection(withName("a&#;b"))).toEqual(["-", "<name>", 'unknown entity "&#;"']);
  });

  it("requires exactly one valid <uuid>, normalised to lower-case 8-4-4-4-12", () => {
    const withUuid = (uuids: string) => `<domain><name>g1</name>${uuids}</domain>`;
    expect(parseDomain(withUuid("<uuid>0B1C2D3E4F5061728394A5B6C7D8E9F0</uuid>")).uuid).toBe(UUID);
    expect(parseDomain(withUuid("<uuid>\n  0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0\n</uuid>")).uuid).toBe(UUID);
    expect(rejection(withUuid(""))).toEqual(["g1", "<uuid>", "missing element"]);
    expect(rejection(withUuid(`<uuid>${UUID}</uuid><uuid>11111111-2222-3333-4444-555555555555</uuid>`))).toEqual([
      "g1",
      "<uuid>",
      "duplicate element: found 2, expected exactly one",
    ]);
    for (const bad of ["not-a-uuid", "0b1c2d3e-4f5061-72-8394-a5b6c7d8e9f0", "0b1c2d3e4f5061728394a5b6c7d8e9f", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9fg", "", "../../etc"]) {
      expect(rejection(withUuid(`<uuid>${bad}</uuid>`))).toEqual(["g1", "<uuid>", `invalid UUID "${bad}"`]);
    }
  });

  it("reads the runtime id strictly; -1 and absence mean not running", () => {
    const withId = (id: string) => guest("", "", ` type='kvm' id='${id}'`);
    expect(parseDomain(withId("0")).id).toBe(0);
    expect(parseDomain(withId("42")).id).toBe(42);
    expect(parseDomain(withId("-1")).id).toBeUndefined();
    expect("id" in parseDomain(guest())).toBe(false);
    for (const bad of ["abc", "1e3", "0x10", "07", "-2", " 1", "4294967296"]) {
      const reason = bad === "4294967296" ? `attribute "id": number "${bad}" is out of range (at most 2147483647)` : `attribute "id": invalid number "${bad}"`;
      expect(rejection(withId(bad))).toEqual(["g1", "<domain>", reason]);
    }
  });

  it("defaults a missing domain type to qemu (grants least) and checks a present one", () => {
    expect(parseDomain(guest("", "", "")).type).toBe("qemu");
    expect(rejection(guest("", "", " type='kvm qemu'"))).toEqual(["g1", "<domain>", 'attribute "type": invalid value "kvm qemu"']);
  });
});

describe("device values", () => {
  it("names the element at fault, with an index only when there are several", () => {
    const twoDisks = `<disk type='file'><source file='/a'/></disk><disk type='file'><source file='/b'/><source file='/c'/></disk>`;
    expect(rejection(guest(twoDisks))).toEqual(["g1", "devices/disk[2]/source", "duplicate element: found 2, expected at most one"]);
    expect(rejection(guest(`<disk type='file'><source file='/a'/><readonly/><readonly/></disk>`))).toEqual([
      "g1",
      "devices/disk/readonly",
      "duplicate element: found 2, expected at most one",
    ]);
    expect(rejection(guest("", "<os><loader readonly='maybe'>/x</loader></os>"))).toEqual(["g1", "os/loader", 'attribute "readonly": invalid value "maybe" (expected yes or no)']);
  });

  it("parses PCI and USB addresses as libvirt's strtoul(..., 0) does, rejecting junk", () => {
    const pci = (attrs: string) => guest(`<hostdev mode='subsystem' type='pci'><source><address ${attrs}/></source></hostdev>`);
    expect(parseDomain(pci("domain='0x0000' bus='0x0a' slot='010' function='7'")).devices.hostdevs).toStrictEqual([
      { type: "pci", domain: 0, bus: 10, slot: 8, function: 7 },
    ]);
    expect(parseDomain(pci("bus='0x3'")).devices.hostdevs).toStrictEqual([{ type: "pci", domain: 0, bus: 3, slot: 0, function: 0 }]);
    expect(rejection(pci("bus='0x1g'"))).toEqual(["g1", "devices/hostdev/source/address", 'attribute "bus": invalid number "0x1g"']);
    expect(rejection(pci("bus='08'"))).toEqual(["g1", "devices/hostdev/source/address", 'attribute "bus": invalid number "08"']);
    expect(rejection(pci("bus='-1'"))).toEqual(["g1", "devices/hostdev/source/address", 'attribute "bus": invalid number "-1"']);
    expect(rejection(pci("slot='0x20'"))).toEqual(["g1", "devices/hostdev/source/address", 'attribute "slot": number "0x20" is out of range (at most 31)']);
    expect(rejection(pci("function='8'"))).toEqual(["g1", "devices/hostdev/source/address", 'attribute "function": number "8" is out of range (at most 7)']);
    expect(rejection(guest(`<hostdev mode='subsystem' type='pci'><source/></hostdev>`))).toEqual(["g1", "devices/hostdev/source/address", "missing element"]);
    const usb = guest(`<hostdev mode='subsystem' type='usb'><source><address bus='1' device='1a'/></source></hostdev>`);
    expect(rejection(usb)).toEqual(["g1", "devices/hostdev/source/address", 'attribute "device": invalid number "1a"']);
  });

  it("rejects hostdev types, modes and identifiers it cannot map safely", () => {
    expect(rejection(guest(`<hostdev mode='subsystem' type='quantum'><source/></hostdev>`))).toEqual(["g1", "devices/hostdev", 'unsupported hostdev type "quantum"']);
    expect(rejection(guest(`<hostdev mode='other' type='usb'/>`))).toEqual(["g1", "devices/hostdev", 'unsupported hostdev mode "other"']);
    expect(rejection(guest(`<hostdev mode='subsystem' type='mdev'><source><address uuid='../../x'/></source></hostdev>`))).toEqual([
      "g1",
      "devices/hostdev/source/address",
      'attribute "uuid": invalid UUID "../../x"',
    ]);
    expect(rejection(guest(`<hostdev mode='subsystem' type='scsi'><source><adapter name='../sda'/></source></hostdev>`))).toEqual([
      "g1",
      "devices/hostdev/source/adapter",
      'attribute "name": invalid SCSI adapter "../sda" (expected scsi_hostN)',
    ]);
  });

  it("decodes entities in paths and normalises literal whitespace in attributes as XML requires", () => {
    const disk = (file: string) => guest(`<disk type='file'><source file='${file}'/></disk>`);
    expect(parseDomain(disk("/img/a&amp;b&#x20;c[1].img")).devices.disks[0]!.path).toBe("/img/a&b c[1].img");
    expect(parseDomain(disk("/img/a\tb\nc")).devices.disks[0]!.path).toBe("/img/a b c");
    expect(parseDomain(disk("/img/a&#10;b")).devices.disks[0]!.path).toBe("/img/a\nb");
    expect(parseDomain(Buffer.from(`\ufeff${disk("/img/x")}`.replace(/></g, ">\r\n<"))).devices.disks[0]!.path).toBe("/img/x");
    expect(rejection(disk("/img/&foo;"))).toEqual(["g1", "devices/disk/source", 'unknown entity "&foo;"']);
    expect(rejection(disk("/img/&#0;"))).toEqual(["g1", "devices/disk/source", 'character reference "&#0;" is not allowed in XML']);
    expect(rejection(disk(`/${"a".repeat(4096)}`))).toEqual(["g1", "devices/disk/source", 'attribute "file" is 4097 characters, more than 4096']);
  });

  it("refuses CDATA where a value is read (libvirt never writes it; its meaning would differ)", () => {
    expect(rejection(guest("", "<os><kernel><![CDATA[/boot/vmlinuz]]></kernel></os>"))).toEqual(["g1", "os/kernel", "CDATA sections are not supported here"]);
  });

  it("rejects shmem names that would leave /dev/shm", () => {
    for (const name of ["../../etc/passwd", "..", ""]) {
      expect(rejection(guest(`<shmem name='${name}'/>`))).toEqual(["g1", "devices/shmem", `attribute "name": invalid shared memory name "${name}"`]);
    }
  });

  it("requires what libvirt requires, and never crashes on what it leaves out", () => {
    expect(rejection(guest(`<rng model='virtio'/>`))).toEqual(["g1", "devices/rng/backend", "missing element"]);
    expect(rejection(guest(`<tpm><backend/></tpm>`))).toEqual(["g1", "devices/tpm/backend", 'missing attribute "type"']);
    expect(rejection(guest(`<graphics/>`))).toEqual(["g1", "devices/graphics", 'missing attribute "type"']);
    expect(rejection(guest(`<disk><backingStore><source file='/x'/></backingStore></disk>`))).toEqual(["g1", "devices/disk/backingStore", 'missing attribute "type"']);
    const bare = `<disk/><filesystem/><serial/><channel/><interface type='user'/><input type='mouse'/><video/><memory model='dimm'/><vsock/><tpm><backend type='emulator'/></tpm><smartcard mode='passthrough' type='spicevmc'/>`;
    expect(parseDomain(guest(bare, "<os/><memoryBacking/><seclabel/><sysinfo type='fwcfg'><entry name='x'/></sysinfo>")).devices).toStrictEqual({
      disks: [{ type: "file", device: "disk", readonly: false, shareable: false }],
      filesystems: [{ type: "mount", readonly: false }],
      chardevs: [
        { source: "serial 0", type: "pty" },
        { source: "channel 0", type: "pty" },
        { source: "smartcard 0", type: "spicevmc" },
      ],
      graphics: [],
      videos: [{ accel3d: false, vhostUser: false }],
      inputs: [{ type: "mouse" }],
      interfaces: [{ type: "user" }],
      rngs: [],
      shmems: [],
      memoryDevices: [{ model: "dimm" }],
      tpms: [{ backend: "emulator" }],
      vsocks: [{}],
      hostdevs: [],
      pstores: [],
      smartcards: [],
      dbusDisplays: [],
    });
  });

  it("libvirt 10-12 devices: faults located at the element", () => {
    expect(rejection(guest(`<pstore backend='other'><path>/x</path></pstore>`))).toEqual(["g1", "devices/pstore", 'unsupported pstore backend "other"']);
    expect(rejection(guest(`<pstore backend='acpi-erst'/>`))).toEqual(["g1", "devices/pstore/path", "missing element"]);
    expect(rejection(guest(`<pstore backend='acpi-erst'><path/></pstore>`))).toEqual(["g1", "devices/pstore/path", "missing pstore file path"]);
    expect(rejection(guest(`<smartcard mode='other'/>`))).toEqual(["g1", "devices/smartcard", 'unsupported smartcard mode "other"']);
    expect(rejection(guest(`<smartcard/>`))).toEqual(["g1", "devices/smartcard", 'missing attribute "mode"']);
    expect(rejection(guest(`<hostdev mode='subsystem' type='pci'><driver iommufd='maybe'/><source><address bus='1'/></source></hostdev>`))).toEqual([
      "g1",
      "devices/hostdev/driver",
      'attribute "iommufd": invalid value "maybe" (expected yes or no)',
    ]);
    const devices = parseDomain(
      guest(
        `<pstore backend='acpi-erst'><path>/srv/p.raw</path><size unit='KiB'>8</size></pstore><smartcard mode='host'/><smartcard mode='host-certificates'><certificate>c1</certificate><database>/srv/db</database></smartcard>` +
          `<graphics type='dbus' p2p='yes'/><graphics type='dbus' address='unix:path=/srv/bus'/><graphics type='vnc'/>` +
          `<interface type='direct'><target dev='macvtap0'/><alias name='net0'/></interface><interface type='user'><backend type='passt'/><target dev='x'/><alias name='net1'/></interface>` +
          `<hostdev mode='subsystem' type='pci'><driver name='vfio' iommufd='yes'/><source><address bus='1'/></source></hostdev>`,
      ),
    ).devices;
    expect([devices.pstores, devices.smartcards, devices.dbusDisplays, devices.interfaces, devices.hostdevs]).toStrictEqual([
      [{ backend: "acpi-erst", path: "/srv/p.raw" }],
      [{ mode: "host" }, { mode: "host-certificates", database: "/srv/db" }],
      [{ p2p: true }, { p2p: false, address: "unix:path=/srv/bus" }],
      [{ type: "direct", targetDev: "macvtap0" }, { type: "user", alias: "net1", backendType: "passt" }],
      [{ type: "pci", driver: "vfio", iommufd: true, domain: 0, bus: 1, slot: 0, function: 0 }],
    ]);
  });

  it("reads the 8.5+ NVRAM source forms", () => {
    const nvram = (inner: string) => parseDomain(guest("", `<os>${inner}</os>`)).os.nvram;
    expect(nvram("<nvram type='block'><source dev='/dev/vg0/vars'/></nvram>")).toStrictEqual({ path: "/dev/vg0/vars", type: "block" });
    expect(nvram("<nvram type='network'><source protocol='iscsi' name='iqn.x/1'/></nvram>")).toStrictEqual({ type: "network" });
    expect(nvram("<nvram format='qcow2'>/var/lib/libvirt/qemu/nvram/g1_VARS.qcow2</nvram>")).toStrictEqual({
      path: "/var/lib/libvirt/qemu/nvram/g1_VARS.qcow2",
      format: "qcow2",
    });
    expect(nvram("<nvram/>")).toBeUndefined();
  });

  it("renders as the one line the CLI prints", () => {
    try {
      parseDomain(`<domain><name>web&#10;01</name></domain>`);
      expect.unreachable();
    } catch (err) {
      expect((err as GuestError).toLine()).toBe("virt-aa-hook: error: -: <name>: domain name contains control character U+000A");
    }
  });
});
