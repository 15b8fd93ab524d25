import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Graphics, Video } from "../../src/domain/model.js";
import { graphicsRules as graphicsRulesWithOrigin, videoRules as videoRulesWithOrigin } from "../../src/rules/graphics.js";
import { glRules as glRulesWithOrigin } from "../../src/rules/gl.js";
import { deviceNumber, drmDevice, firstRenderNode } from "../../src/host/drm.js";
import { GuestError } from "../../src/errors.js";
import { Layout } from "../../src/layout.js";
import { buildProfile } from "../../src/pipeline.js";
import type { Rule } from "../../src/ir.js";
import { compileGuest } from "../helpers/apparmor.js";
import { baseDomain, expectPathError, ruleContext, tempRoot, writeHostFile, withoutOrigins } from "./fixtures.js";
import { canMknod, charDevice, fakeDrmGpu, link } from "./hosttree.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const graphicsRules = withoutOrigins(graphicsRulesWithOrigin);
const videoRules = withoutOrigins(videoRulesWithOrigin);
const glRules = withoutOrigins(glRulesWithOrigin);

let root: string;
let cleanup: () => void;
beforeEach(() => ({ root, cleanup } = tempRoot()));
afterEach(() => cleanup());

const gfx = (...graphics: Graphics[]) => graphicsRules(ruleContext(baseDomain({ devices: { graphics } }), root));
const g = (type: string, extra: Partial<Graphics> = {}): Graphics => ({ type, sockets: [], glEnabled: false, ...extra });
const r = (path: string, perms: string, source: string, suffix: Rule["suffix"] = ""): Rule => ({ path, suffix, perms, source });

/** The first `renderD*` entry of `dir` in the kernel's readdir order, computed independently. */
function firstInRawOrder(dir: string): string | undefined {
  const d = fs.opendirSync(dir);
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) if (e.name.startsWith("renderD")) return e.name;
  } finally {
    d.closeSync();
  }
  return undefined;
}

describe("graphics", () => {
  it("grants every listen socket", () => {
    expect(gfx(g("vnc", { sockets: ["/run/vnc/a.sock", "/run/vnc/b.sock"] }), g("spice", { sockets: ["/run/spice.sock"] }))).toEqual([
      r("/run/vnc/a.sock", "rw", "graphics vnc socket"),
      r("/run/vnc/b.sock", "rw", "graphics vnc socket"),
      r("/run/spice.sock", "rw", "graphics spice socket"),
    ]);
  });

  it("grants an explicit GL render node", () => {
    expect(gfx(g("spice", { glEnabled: true, glRendernode: "/dev/dri/renderD129" }))).toEqual([
      r("/dev/dri/renderD129", "rw", "graphics spice rendernode"),
    ]);
    expect(gfx(g("egl-headless", { glRendernode: "/dev/dri/renderD130" }))).toEqual([
      r("/dev/dri/renderD130", "rw", "graphics egl-headless rendernode"),
    ]);
  });

  it.skipIf(!canMknod)("picks libvirt's node when GL names none: the first renderD* entry in readdir order", () => {
    charDevice(root, "/dev/dri/renderD129", 226, 129);
    charDevice(root, "/dev/dri/renderD128", 226, 128);
    charDevice(root, "/dev/dri/card0", 226, 0);
    const first = `/dev/dri/${firstInRawOrder(path.join(root, "dev/dri"))}`;
    expect(firstRenderNode(ruleContext(baseDomain(), root).fs)).toBe(first);
    expect(gfx(g("spice", { glEnabled: true }), g("egl-headless"), g("dbus", { glEnabled: true }))).toEqual([
      r(first, "rw", "graphics spice rendernode"),
      r(first, "rw", "graphics egl-headless rendernode"),
      r(first, "rw", "graphics dbus rendernode"),
    ]);
  });

  it("takes a renderD* entry whatever its type, as virHostGetDRMRenderNode does (the policy then judges it)", () => {
    writeHostFile(root, "/dev/dri/renderD128", "");
    writeHostFile(root, "/dev/dri/card0", "");
    expect(gfx(g("egl-headless"))).toEqual([r("/dev/dri/renderD128", "rw", "graphics egl-headless rendernode")]);
  });

  it.skipIf(!canMknod)("grants no render node without GL, or for sdl/vnc", () => {
    charDevice(root, "/dev/dri/renderD128");
    expect(gfx(g("spice"), g("dbus"), g("vnc", { glEnabled: true }), g("sdl", { glEnabled: true }))).toEqual([]);
  });

  it("grants nothing when GL needs a node and the host has none (libvirt fails the start itself)", () => {
    expect(gfx(g("egl-headless"))).toEqual([]);
    fs.mkdirSync(path.join(root, "dev/dri"), { recursive: true });
    writeHostFile(root, "/dev/dri/card0", "");
    expect(gfx(g("egl-headless"))).toEqual([]);
  });

  it("grants sdl's xauth file read-only, and nothing for sdl without one", () => {
    expect(gfx(g("sdl", { xauth: "/home/alice/.Xauthority" }), g("sdl"), g("vnc", { xauth: "/home/alice/.Xauthority" }))).toEqual([
      r("/home/alice/.Xauthority", "r", "graphics sdl xauth"),
    ]);
  });

  it("rejects relative sockets, render nodes and xauth files", () => {
    expectPathError(() => gfx(g("vnc", { sockets: ["vnc.sock"] })), "vnc.sock", "graphics vnc socket: path is not absolute");
    expectPathError(() => gfx(g("spice", { glEnabled: true, glRendernode: "renderD128" })), "renderD128", "graphics spice rendernode: path is not absolute");
    expectPathError(() => gfx(g("sdl", { xauth: ".Xauthority" })), ".Xauthority", "graphics sdl xauth: path is not absolute");
  });
});

describe("video", () => {
  const videos = (...v: Video[]) => videoRules(ruleContext(baseDomain({ devices: { videos: v } }), root));

  it("grants the render node of a 3D-accelerated video device", () => {
    expect(
      videos(
        { model: "vga", accel3d: false, vhostUser: false },
        { model: "virtio", accel3d: true, vhostUser: true, rendernode: "/dev/dri/renderD128" },
        { model: "virtio", accel3d: false, vhostUser: false, rendernode: "/dev/dri/renderD129" },
      ),
    ).toEqual([r("/dev/dri/renderD128", "rw", "video 1 rendernode")]);
  });

  it.skipIf(!canMknod)("grants libvirt's node to a vhost-user-gpu with none named, and nothing to plain virgl", () => {
    charDevice(root, "/dev/dri/renderD128");
    expect(videos({ model: "virtio", accel3d: true, vhostUser: true }, { model: "virtio", accel3d: true, vhostUser: false })).toEqual([
      r("/dev/dri/renderD128", "rw", "video 0 rendernode"),
    ]);
  });

  it("grants /dev/udmabuf to blob resources only", () => {
    expect(videos({ model: "virtio", accel3d: false, vhostUser: false, blob: true }, { model: "virtio", accel3d: true, vhostUser: false })).toEqual([
      r("/dev/udmabuf", "rw", "video 0 blob"),
    ]);
  });

  it("rejects a relative render node", () => {
    expectPathError(() => videos({ accel3d: true, vhostUser: true, rendernode: "dri/x" }), "dri/x", "video 0 rendernode: path is not absolute");
  });
});

describe("host DRM discovery (host/drm.ts)", () => {
  it("splits a 64-bit dev_t as glibc does", () => {
    expect(deviceNumber(0xe280)).toEqual({ major: 226, minor: 128 });
    // major 0x12345, minor 0x6789a: glibc's makedev spreads both over the high and low words.
    const dev = (0x12345n & 0xfffn) << 8n | (0x12345n & 0xfffff000n) << 32n | (0x6789an & 0xffn) | (0x6789an & 0xffffff00n) << 12n;
    expect(deviceNumber(Number(dev))).toEqual({ major: 0x12345, minor: 0x6789a });
  });

  it.skipIf(!canMknod)("finds the render node's device through /sys/dev/char, as libdrm does", () => {
    fakeDrmGpu(root, "0000:00:02.0", [0, 128]);
    const fsys = ruleContext(baseDomain(), root).fs;
    expect(drmDevice(fsys, "/dev/dri/renderD128")).toEqual({
      minorDir: "/sys/devices/pci0000:00/0000:00:02.0/drm/renderD128",
      deviceDir: "/sys/devices/pci0000:00/0000:00:02.0",
      bus: "pci",
    });
    // Not DRM: a character device whose /sys/dev/char entry has no device/drm; a block device; nothing.
    charDevice(root, "/dev/ttyS0", 4, 64);
    writeHostFile(root, "/sys/devices/platform/serial8250/tty/ttyS0/uevent", "");
    link(root, "/sys/dev/char/4:64", "../../devices/platform/serial8250/tty/ttyS0");
    expect(drmDevice(fsys, "/dev/ttyS0")).toBeUndefined();
    expect(drmDevice(fsys, "/dev/dri/renderD200")).toBeUndefined();
  });
});

/** A host with Mesa's GL configuration as Debian 12 installs it, plus glvnd's /etc dir empty. */
function plantMesaConfig(): void {
  writeHostFile(root, "/usr/share/glvnd/egl_vendor.d/50_mesa.json", '{"ICD":{"library_path":"libEGL_mesa.so.0"}}\n');
  writeHostFile(root, "/usr/share/drirc.d/00-mesa-defaults.conf", "<driconf/>\n");
  writeHostFile(root, "/usr/share/drirc.d/README", "not a .conf: Mesa skips it\n");
  fs.mkdirSync(path.join(root, "etc/glvnd/egl_vendor.d"), { recursive: true });
}

const GUEST = "6a1e3c2b-9d84-4f0a-b1c2-d3e4f5a6b7c8";
const xml = (devices: string) => `<domain type='kvm' id='7'><name>vm1</name><uuid>${GUEST}</uuid><devices>${devices}</devices></domain>\n`;
const build = (devices: string) => buildProfile(xml(devices), { layout: new Layout(root) });
/** The rules of the families under test (graphics, video, gl), canonical and judged. */
const glPart = (devices: string) => build(devices).rules.filter((x) => /^(?:graphics|video|gl) /.test(x.source));

const GPU = "/sys/devices/pci0000:00/0000:00:02.0";
/** What a GL guest using renderD128 of GPU gets besides the node itself (Mesa config, no NVIDIA). */
const glFiles = (node = "renderD128", dev = GPU, extra: Rule[] = []): Rule[] => [
  r("/dev/dri", "r", "gl dri", "/"),
  r(`${dev}/drm/${node}/uevent`, "r", `gl ${node} sysfs`),
  r(`${dev}/drm`, "r", `gl ${node} sysfs`, "/"),
  r(`${dev}/uevent`, "r", `gl ${node} sysfs`),
  r(`${dev}/revision`, "r", `gl ${node} sysfs`),
  r(`${dev}/vendor`, "r", `gl ${node} sysfs`),
  r(`${dev}/device`, "r", `gl ${node} sysfs`),
  r(`${dev}/subsystem_vendor`, "r", `gl ${node} sysfs`),
  r(`${dev}/subsystem_device`, "r", `gl ${node} sysfs`),
  ...extra,
  r("/etc/glvnd/egl_vendor.d", "r", "gl config", "/"),
  r("/usr/share/glvnd/egl_vendor.d", "r", "gl config", "/"),
  r("/usr/share/drirc.d", "r", "gl config", "/"),
  r("/usr/share/glvnd/egl_vendor.d/50_mesa.json", "r", "gl config"),
  r("/usr/share/drirc.d/00-mesa-defaults.conf", "r", "gl config"),
];
const strip = (rules: Rule[]) => rules.map(({ path: p, suffix, perms, source }) => ({ path: p, suffix, perms, source }));

describe.skipIf(!canMknod)("GL guests through the pipeline, exact rules, compiled by the real parser", () => {
  beforeEach(() => {
    fakeDrmGpu(root, "0000:00:02.0", [0, 128]);
    fakeDrmGpu(root, "0000:01:00.0", [1, 129]); // a second GPU: its sysfs is never granted
    plantMesaConfig();
  });

  async function expectCompiles(devices: string): Promise<void> {
    const { filesText } = build(devices);
    const compiled = await compileGuest(GUEST, filesText);
    expect(compiled.stderr).toBe("");
    expect(compiled.ok).toBe(true);
  }

  it("egl-headless with a render node", async () => {
    const devices = "<graphics type='egl-headless'><gl rendernode='/dev/dri/renderD128'/></graphics>";
    expect(strip(glPart(devices))).toEqual([r("/dev/dri/renderD128", "rw", "graphics egl-headless rendernode"), ...glFiles()]);
    await expectCompiles(devices);
  });

  it("spice and dbus with <gl enable='yes' rendernode=...>, and virgl video", async () => {
    const devices =
      "<graphics type='spice' autoport='yes'><listen type='none'/><gl enable='yes' rendernode='/dev/dri/renderD129'/></graphics>" +
      "<video><model type='virtio' heads='1' primary='yes'><acceleration accel3d='yes'/></model></video>";
    expect(strip(glPart(devices))).toEqual([
      r("/dev/dri/renderD129", "rw", "graphics spice rendernode"),
      ...glFiles("renderD129", "/sys/devices/pci0000:00/0000:01:00.0"),
    ]);
    await expectCompiles(devices);
    const dbus = "<graphics type='dbus'><gl enable='yes' rendernode='/dev/dri/renderD128'/></graphics>";
    // libvirt's private bus for the D-Bus display (rules/dbus.ts), then the render path.
    expect(strip(glPart(dbus))).toEqual([
      r("/dev/dri/renderD128", "rw", "graphics dbus rendernode"),
      r("/run/libvirt/qemu/dbus/7-vm1-dbus.sock", "rw", "graphics dbus 0"),
      ...glFiles(),
    ]);
    await expectCompiles(dbus);
  });

  it("spice with GL and no node: libvirt's first node, and its GPU's sysfs only", async () => {
    const first = firstInRawOrder(path.join(root, "dev/dri"))!;
    const dev = first === "renderD128" ? GPU : "/sys/devices/pci0000:00/0000:01:00.0";
    const devices = "<graphics type='spice'><gl enable='yes'/></graphics>";
    expect(strip(glPart(devices))).toEqual([r(`/dev/dri/${first}`, "rw", "graphics spice rendernode"), ...glFiles(first, dev)]);
    await expectCompiles(devices);
  });

  it("vhost-user-gpu with its own render node", async () => {
    const devices = "<video><driver name='vhostuser'/><model type='virtio' heads='1'><acceleration accel3d='yes' rendernode='/dev/dri/renderD128'/></model></video>";
    expect(strip(glPart(devices))).toEqual([r("/dev/dri/renderD128", "rw", "video 0 rendernode"), ...glFiles()]);
    await expectCompiles(devices);
  });

  it("virtio blob resources: /dev/udmabuf", async () => {
    charDevice(root, "/dev/udmabuf", 10, 125);
    const devices = "<graphics type='vnc' port='-1'/><video><model type='virtio' heads='1' blob='on'/></video>";
    expect(strip(glPart(devices))).toEqual([r("/dev/udmabuf", "rw", "video 0 blob")]);
    await expectCompiles(devices);
  });

  it("sdl with GL and xauth: the xauth file read-only, and the default node's sysfs", async () => {
    const first = firstInRawOrder(path.join(root, "dev/dri"))!;
    const dev = first === "renderD128" ? GPU : "/sys/devices/pci0000:00/0000:01:00.0";
    writeHostFile(root, "/home/alice/.Xauthority", "cookie");
    const devices = "<graphics type='sdl' display=':0' xauth='/home/alice/.Xauthority'><gl enable='yes'/></graphics>";
    expect(strip(glPart(devices))).toEqual([r("/home/alice/.Xauthority", "r", "graphics sdl xauth"), ...glFiles(first, dev)]);
    await expectCompiles(devices);
  });

  /** A host with NVIDIA's nodes for two GPUs (minors 0 and 1), UVM and its tools, and NVIDIA's EGL JSONs. */
  function plantNvidiaNodes(): void {
    for (const [name, major, minor] of [
      ["nvidiactl", 195, 255], ["nvidia0", 195, 0], ["nvidia1", 195, 1], ["nvidia-modeset", 195, 254],
      ["nvidia-uvm", 511, 0], ["nvidia-uvm-tools", 511, 1],
    ] as const) {
      charDevice(root, `/dev/${name}`, major, minor);
    }
    writeHostFile(root, "/dev/nvidia-not-a-node", "");
    writeHostFile(root, "/usr/share/glvnd/egl_vendor.d/10_nvidia.json", "{}\n");
    writeHostFile(root, "/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json", "{}\n");
  }
  /** Make a fake GPU NVIDIA's: its driver link and the driver's /proc information with its minor. */
  function makeNvidia(dev: string, pci: string, minor: number): void {
    link(root, `${dev}/driver`, "../../../bus/pci/drivers/nvidia");
    writeHostFile(root, `/proc/driver/nvidia/gpus/${pci}/information`, `Model: \t\t NVIDIA Test\nBus Location: \t ${pci}\nDevice Minor: \t ${minor}\nGPU Excluded:\t No\n`);
  }
  const nvidiaConfig = [
    r("/etc/glvnd/egl_vendor.d", "r", "gl config", "/"),
    r("/usr/share/glvnd/egl_vendor.d", "r", "gl config", "/"),
    r("/usr/share/egl/egl_external_platform.d", "r", "gl config", "/"),
    r("/usr/share/drirc.d", "r", "gl config", "/"),
    r("/usr/share/glvnd/egl_vendor.d/10_nvidia.json", "r", "gl config"),
    r("/usr/share/glvnd/egl_vendor.d/50_mesa.json", "r", "gl config"),
    r("/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json", "r", "gl config"),
    r("/usr/share/drirc.d/00-mesa-defaults.conf", "r", "gl config"),
  ];

  it("NVIDIA's nodes only for an NVIDIA render node: that GPU's node, control and modeset, never UVM", async () => {
    plantNvidiaNodes();
    const dev2 = "/sys/devices/pci0000:00/0000:01:00.0";
    makeNvidia(dev2, "0000:01:00.0", 1);
    const devices = "<graphics type='egl-headless'><gl rendernode='/dev/dri/renderD129'/></graphics>";
    expect(strip(glPart(devices))).toEqual([
      r("/dev/dri/renderD129", "rw", "graphics egl-headless rendernode"),
      ...glFiles("renderD129", dev2).slice(0, 9),
      ...nvidiaConfig,
      r("/dev/nvidia-modeset", "rw", "gl nvidia"),
      r("/dev/nvidia1", "rw", "gl nvidia"),
      r("/dev/nvidiactl", "rw", "gl nvidia"),
      r("/proc/driver/nvidia/params", "r", "gl nvidia"),
      r("/proc/modules", "r", "gl nvidia"),
    ]);
    await expectCompiles(devices);
  });

  it("negative control: an Intel render node on a host with NVIDIA GPUs gets no NVIDIA node", async () => {
    plantNvidiaNodes();
    makeNvidia("/sys/devices/pci0000:00/0000:01:00.0", "0000:01:00.0", 1);
    const devices = "<graphics type='egl-headless'><gl rendernode='/dev/dri/renderD128'/></graphics>";
    expect(strip(glPart(devices))).toEqual([
      r("/dev/dri/renderD128", "rw", "graphics egl-headless rendernode"),
      ...glFiles().slice(0, 9),
      ...nvidiaConfig,
    ]);
    await expectCompiles(devices);
  });

  it("a kernel without `revision`: libdrm falls back to `config`, which is then granted", () => {
    fs.rmSync(path.join(root, GPU, "revision"));
    const devices = "<graphics type='egl-headless'><gl rendernode='/dev/dri/renderD128'/></graphics>";
    const expected = glFiles().filter((x) => !x.path.endsWith("/revision"));
    expected.splice(8, 0, r(`${GPU}/config`, "r", "gl renderD128 sysfs"));
    expect(strip(glPart(devices))).toEqual([r("/dev/dri/renderD128", "rw", "graphics egl-headless rendernode"), ...expected]);
  });

  it("/etc/drirc when the host has one; a vendor JSON linked out of its directory is left out, not refused", () => {
    writeHostFile(root, "/etc/drirc", "<driconf/>\n");
    writeHostFile(root, "/etc/secret.json", "{}\n");
    link(root, "/etc/glvnd/egl_vendor.d/90_evil.json", "../../secret.json");
    const devices = "<graphics type='egl-headless'><gl rendernode='/dev/dri/renderD128'/></graphics>";
    const rules = strip(glPart(devices));
    expect(rules).toContainEqual(r("/etc/drirc", "r", "gl config"));
    expect(rules.some((x) => x.path.includes("secret") || x.path.includes("90_evil"))).toBe(false);
  });

  // ---- negative controls ----

  it("a non-GL guest gets none of it; a VNC guest no render node", () => {
    const plain = "<graphics type='vnc' port='-1'/><graphics type='spice' autoport='yes'/><video><model type='virtio' heads='1'/></video>";
    expect(glPart(plain)).toEqual([]);
    const rules = build(plain).rules;
    expect(rules.some((x) => x.path.startsWith("/dev/dri") || x.path.startsWith("/sys/") || x.path.includes("glvnd") || x.path.includes("drirc"))).toBe(false);
    // <gl> under vnc is not libvirt's, and spice with GL off is plain spice.
    expect(glPart("<graphics type='vnc'><gl enable='yes'/></graphics><graphics type='spice'><gl enable='no'/></graphics>")).toEqual([]);
  });

  it("another GPU's sysfs is not granted to a guest on the first", () => {
    const rules = glPart("<graphics type='egl-headless'><gl rendernode='/dev/dri/renderD128'/></graphics>");
    expect(rules.filter((x) => x.path.includes("0000:01:00.0"))).toEqual([]);
    expect(rules.filter((x) => x.path.startsWith("/sys/")).every((x) => x.path.startsWith(`${GPU}/`) && x.perms === "r")).toBe(true);
  });

  it("a hostile rendernode is judged as a device: /dev/sda, a card node, a file are refused", () => {
    charDevice(root, "/dev/sda", 8, 0); // a char node with a block name still is no render node
    for (const [node, reason] of [
      ["/dev/sda", "/dev/sda is not a device node a <graphics> or <video> may use"],
      ["/dev/dri/card0", "/dev/dri/card0 is not a device node a <graphics> or <video> may use"],
      ["/etc/shadow", "restricted location /etc is never granted to guests"],
    ]) {
      let thrown: unknown;
      try {
        build(`<graphics type='egl-headless'><gl rendernode='${node}'/></graphics>`);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(GuestError);
      expect((thrown as GuestError).reason).toContain(reason);
    }
    // The GL family itself derives no sysfs from a node that is not a DRM render node.
    const ctx = ruleContext(baseDomain({ devices: { graphics: [g("egl-headless", { glEnabled: true, glRendernode: "/dev/sda" })] } }), root);
    expect(glRules(ctx).filter((x) => x.path.startsWith("/sys/"))).toEqual([]);
  });

  it("an SDL xauth that is not an X authority file is refused", () => {
    writeHostFile(root, "/home/alice/.ssh/id_rsa", "key");
    let thrown: unknown;
    try {
      build("<graphics type='sdl' display=':0' xauth='/home/alice/.ssh/id_rsa'/>");
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(GuestError);
    expect((thrown as GuestError).reason).toMatch(/^graphics sdl xauth: \/home\/alice\/\.ssh\/id_rsa is not named like an X authority file/);
  });
});
