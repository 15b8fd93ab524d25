import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseDomain, type Devices, type Disk, type Domain } from "../../src/domain/index.js";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/domains/${name}`, import.meta.url));
const example = (name: string) => readFileSync(new URL(`../../examples/${name}`, import.meta.url));

const noDevices: Devices = {
  disks: [],
  filesystems: [],
  chardevs: [],
  graphics: [],
  videos: [],
  inputs: [],
  interfaces: [],
  rngs: [],
  shmems: [],
  memoryDevices: [],
  tpms: [],
  vsocks: [],
  hostdevs: [],
  pstores: [],
  smartcards: [],
  dbusDisplays: [],
};

describe("parseDomain on realistic XML", () => {
  it("minimal guest: 32-digit upper/lower UUID normalised, no id, no devices", () => {
    expect(parseDomain(fixture("minimal.xml"))).toStrictEqual({
      name: "tiny",
      uuid: "5c2a9d10-e3b8-4f7c-a1d2-e3f405162738",
      type: "qemu",
      os: { acpiTables: [] },
      fwcfgFiles: [],
      memoryBacking: { hugepages: false },
      seclabels: [],
      devices: noDevices,
    } satisfies Domain);
  });

  // The same guest at three lifecycle points: libvirt's prepare XML has an id but no backing chain,
  // the start XML adds the chain, the stopped/release XML has no id.
  const dbDisks = (first: Partial<Disk>, second: Partial<Disk>): Disk[] => [
    { type: "file", device: "disk", path: "/var/lib/libvirt/images/db-primary.qcow2", format: "qcow2", readonly: false, shareable: false, target: "vda", ...first },
    { type: "block", device: "disk", path: "/dev/vg0/db-data", format: "raw", readonly: false, shareable: false, target: "vdb", ...second },
  ];
  const db = (id: number | undefined, disks: Disk[], ptyPath: string | undefined): Domain => ({
    name: "db-primary",
    uuid: "a3c1e5f7-2b4d-4e6f-8a0b-1c2d3e4f5a6b",
    ...(id === undefined ? {} : { id }),
    type: "kvm",
    emulator: "/usr/bin/qemu-system-x86_64",
    os: { acpiTables: [] },
    fwcfgFiles: [],
    memoryBacking: { hugepages: false },
    seclabels: [],
    devices: {
      ...noDevices,
      disks,
      chardevs: [
        { source: "serial 0", type: "pty", ...(ptyPath ? { path: ptyPath } : {}) },
        { source: "console 0", type: "pty", ...(ptyPath ? { path: ptyPath } : {}) },
      ],
      interfaces: [{ type: "network", model: "virtio", mac: "52:54:00:aa:bb:cc" }],
    },
  });
  const chain = [
    { type: "file", path: "/var/lib/libvirt/images/snapshots/db-base.snap1", format: "qcow2" },
    { type: "file", path: "/var/lib/libvirt/images/templates/debian-12.qcow2", format: "qcow2" },
  ];

  it("prepare XML: id present, backingStore absent → undefined (read headers later)", () => {
    expect(parseDomain(fixture("prepare.xml"))).toStrictEqual(db(7, dbDisks({}, {}), undefined));
  });

  it("start XML: backing chain outermost first, <backingStore/> → []", () => {
    expect(parseDomain(fixture("start.xml"))).toStrictEqual(
      db(7, dbDisks({ backingStore: chain }, { backingStore: [] }), "/dev/pts/2"),
    );
  });

  it("stopped XML: no id", () => {
    expect(parseDomain(fixture("stopped.xml"))).toStrictEqual(db(undefined, dbDisks({ backingStore: chain }, { backingStore: [] }), undefined));
  });

  it("string and Buffer input give the same model", () => {
    expect(parseDomain(fixture("start.xml").toString("utf8"))).toStrictEqual(parseDomain(fixture("start.xml")));
  });

  it("examples/basic.xml (the README's explain example)", () => {
    expect(parseDomain(example("basic.xml"))).toStrictEqual({
      name: "web01",
      uuid: "6f1a7c52-3b0e-4d6a-9c2e-5a4b3c2d1e0f",
      id: 3,
      type: "kvm",
      emulator: "/usr/bin/qemu-system-x86_64",
      os: {
        loader: { path: "/usr/share/OVMF/OVMF_CODE_4M.fd", readonly: true, type: "pflash" },
        nvram: { path: "/var/lib/libvirt/qemu/nvram/web01_VARS.fd", template: "/usr/share/OVMF/OVMF_VARS_4M.fd" },
        acpiTables: [],
      },
      fwcfgFiles: [],
      memoryBacking: { hugepages: false },
      seclabels: [
        { type: "dynamic", model: "apparmor", relabel: true, label: "libvirt-6f1a7c52-3b0e-4d6a-9c2e-5a4b3c2d1e0f" },
        { type: "dynamic", model: "dac", relabel: true, label: "+64055:+994" },
      ],
      devices: {
        ...noDevices,
        disks: [
          { type: "file", device: "disk", path: "/var/lib/libvirt/images/web01.qcow2", format: "qcow2", readonly: false, shareable: false, target: "vda", backingStore: [] },
          { type: "file", device: "cdrom", path: "/var/lib/libvirt/images/debian-12.5.0-amd64-netinst.iso", format: "raw", readonly: true, shareable: false, target: "sda", backingStore: [] },
        ],
        chardevs: [
          { source: "serial 0", type: "file", path: "/var/log/libvirt/qemu/web01-serial0.log", logFile: "/var/log/libvirt/qemu/web01-serial0-chardev.log" },
          { source: "console 0", type: "file", path: "/var/log/libvirt/qemu/web01-serial0.log", logFile: "/var/log/libvirt/qemu/web01-serial0-chardev.log" },
          {
            source: "channel org.qemu.guest_agent.0",
            type: "unix",
            path: "/var/lib/libvirt/qemu/channel/target/domain-3-web01/org.qemu.guest_agent.0",
            mode: "bind",
          },
        ],
        graphics: [{ type: "vnc", sockets: [], glEnabled: false }],
        videos: [{ model: "virtio", accel3d: false, vhostUser: false }],
        inputs: [{ type: "tablet" }, { type: "mouse" }, { type: "keyboard" }],
        interfaces: [{ type: "network", model: "virtio", mac: "52:54:00:6b:3c:58" }],
        rngs: [{ model: "virtio", backend: "random", path: "/dev/urandom" }],
      },
    } satisfies Domain);
  });

  it("kitchen sink: every device family", () => {
    expect(parseDomain(fixture("kitchen-sink.xml"))).toStrictEqual({
      name: "kitchen-sink",
      uuid: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
      id: 12,
      type: "kvm",
      emulator: "/usr/bin/qemu-system-x86_64",
      os: {
        loader: { path: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd", readonly: true, type: "pflash" },
        nvram: { path: "/var/lib/libvirt/qemu/nvram/kitchen-sink_VARS.fd", template: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd", type: "file" },
        kernel: "/var/lib/libvirt/boot/vmlinuz-6.1",
        initrd: "/var/lib/libvirt/boot/initrd.img-6.1",
        dtb: "/var/lib/libvirt/boot/board.dtb",
        acpiTables: ["/var/lib/libvirt/acpi/slic.dat"],
        shim: "/var/lib/libvirt/boot/shimx64.efi",
      },
      fwcfgFiles: ["/var/lib/libvirt/ignition/kitchen-sink.ign"],
      memoryBacking: { hugepages: true, sourceType: "file" },
      seclabels: [{ type: "static", model: "apparmor", relabel: false, label: "libvirt-0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0" }],
      launchSecurity: "sev",
      devices: {
        disks: [
          {
            type: "file",
            device: "disk",
            path: "/var/lib/libvirt/images/top.qcow2",
            format: "qcow2",
            readonly: false,
            shareable: false,
            target: "vda",
            backingStore: [
              { type: "file", path: "/var/lib/libvirt/images/mid.qcow2", format: "qcow2" },
              { type: "block", path: "/dev/vg0/base", format: "raw" },
            ],
            dataStore: { type: "file", path: "/var/lib/libvirt/images/top.data", format: "raw" },
          },
          {
            type: "block",
            device: "lun",
            path: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4",
            format: "raw",
            readonly: false,
            shareable: true,
            target: "sda",
            reservationsSocket: "/run/libvirt/qemu/pr-helper0.sock",
          },
          { type: "dir", device: "floppy", path: "/srv/floppy", readonly: true, shareable: false, target: "fda" },
          { type: "network", device: "disk", format: "raw", readonly: false, shareable: false, target: "vdb" },
          { type: "volume", device: "disk", format: "qcow2", readonly: false, shareable: false, target: "vdc", volume: { pool: "default", volume: "data.qcow2" } },
          { type: "nvme", device: "disk", format: "raw", readonly: false, shareable: false, target: "vdd", nvmeAddress: { domain: 0, bus: 1, slot: 0, function: 0 } },
          { type: "vhostuser", device: "disk", path: "/run/vhost-user-blk.sock", format: "raw", readonly: false, shareable: false, target: "vde" },
          { type: "file", device: "cdrom", format: "raw", readonly: true, shareable: false, target: "sdb" },
        ],
        filesystems: [
          { type: "mount", driver: "path", accessmode: "mapped", source: "/srv/share", target: "share", readonly: true },
          { type: "mount", driver: "virtiofs", target: "fs1", readonly: false, socket: "/run/virtiofsd/kitchen-sink.sock" },
        ],
        chardevs: [
          { source: "serial 0", type: "pty", path: "/dev/pts/4" },
          { source: "serial 1", type: "udp" },
          { source: "parallel 0", type: "dev", path: "/dev/parport0" },
          { source: "console 0", type: "pty", path: "/dev/pts/4" },
          { source: "channel org.example.pipe", type: "pipe", path: "/var/lib/libvirt/qemu/kitchen-sink.pipe" },
          { source: "channel com.redhat.spice.0", type: "spicevmc" },
          { source: "smartcard 0", type: "tcp", mode: "bind" },
          { source: "redirdev 0", type: "unix", path: "/run/usbredir.sock", mode: "connect" },
          { source: "rng 1 egd", type: "unix", path: "/run/egd.sock", mode: "connect" },
        ],
        graphics: [
          { type: "vnc", sockets: ["/var/lib/libvirt/qemu/domain-12-kitchen-sink/vnc.sock"], glEnabled: false },
          { type: "spice", sockets: ["/run/spice/kitchen-sink.sock"], glRendernode: "/dev/dri/renderD128", glEnabled: true },
          { type: "egl-headless", sockets: [], glRendernode: "/dev/dri/renderD129", glEnabled: true },
        ],
        videos: [
          { model: "virtio", accel3d: true, vhostUser: false, rendernode: "/dev/dri/renderD128" },
          { model: "virtio", accel3d: false, vhostUser: true },
        ],
        inputs: [
          { type: "passthrough", dev: "/dev/input/event1" },
          { type: "evdev", dev: "/dev/input/event2" },
        ],
        interfaces: [
          { type: "bridge", model: "virtio", driver: "vhost", backendTap: "/dev/net/tun", backendVhost: "/dev/vhost-net", mac: "52:54:00:00:00:01" },
          { type: "vhostuser", model: "virtio", socket: "/run/openvswitch/vhu0", mac: "52:54:00:00:00:02" },
          { type: "vdpa", vdpaDev: "/dev/vhost-vdpa-0", mac: "52:54:00:00:00:03" },
          { type: "hostdev", driver: "vfio", mac: "52:54:00:00:00:04" },
        ],
        rngs: [
          { model: "virtio", backend: "random", path: "/dev/hwrng" },
          { model: "virtio", backend: "egd" },
        ],
        shmems: [
          { name: "shared_ram", model: "ivshmem-plain", hasServer: false },
          { name: "doorbell0", model: "ivshmem-doorbell", serverPath: "/run/ivshmem/doorbell0.sock", hasServer: true },
          { name: "doorbell1", model: "ivshmem-doorbell", hasServer: true },
        ],
        memoryDevices: [
          { model: "nvdimm", path: "/var/lib/libvirt/nvdimm/kitchen-sink.img" },
          { model: "virtio-pmem", path: "/var/lib/libvirt/pmem/kitchen-sink.img" },
          { model: "dimm" },
        ],
        tpms: [
          { model: "tpm-crb", backend: "emulator", version: "2.0", persistentState: true },
          { model: "tpm-tis", backend: "passthrough", devicePath: "/dev/tpm0" },
          { model: "tpm-crb", backend: "external", socket: "/run/swtpm/ext.sock" },
        ],
        vsocks: [{ model: "virtio" }],
        hostdevs: [
          { type: "usb", vendor: "0x046d", product: "0xc52b", bus: 1, device: 5 },
          { type: "pci", driver: "vfio", domain: 0, bus: 6, slot: 2, function: 0 },
          { type: "scsi", adapter: "scsi_host0", bus: 0, target: 0, unit: 1 },
          { type: "scsi_host", wwpn: "naa.5001405df3e54061" },
          { type: "mdev", uuid: "c2177883-f1bb-47f0-914d-32a22e3a8804", model: "vfio-pci" },
          { type: "caps", capsType: "storage", block: "/dev/sdf1" },
          { type: "caps", capsType: "misc", char: "/dev/input/event3" },
          // <interface type='hostdev'> is a PCI passthrough too (bus 0x3b = 59).
          { type: "pci", driver: "vfio", domain: 0, bus: 59, slot: 2, function: 1 },
        ],
        pstores: [],
        smartcards: [],
        dbusDisplays: [],
      },
    } satisfies Domain);
  });

  it("examples/kitchen-sink.xml stays identical to the fixture's model", () => {
    expect(parseDomain(example("kitchen-sink.xml"))).toStrictEqual(parseDomain(fixture("kitchen-sink.xml")));
  });
});
