import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Graphics, Video } from "../../src/domain/model.js";
import { defaultRenderNode, graphicsRules as graphicsRulesWithOrigin, videoRules as videoRulesWithOrigin } from "../../src/rules/graphics.js";
import type { Rule } from "../../src/ir.js";
import { baseDomain, expectPathError, ruleContext, tempRoot, writeHostFile, withoutOrigins } from "./fixtures.js";
import { canMknod, charDevice } from "./hosttree.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const graphicsRules = withoutOrigins(graphicsRulesWithOrigin);
const videoRules = withoutOrigins(videoRulesWithOrigin);

let root: string;
let cleanup: () => void;
beforeEach(() => ({ root, cleanup } = tempRoot()));
afterEach(() => cleanup());

const gfx = (...graphics: Graphics[]) => graphicsRules(ruleContext(baseDomain({ devices: { graphics } }), root));
const g = (type: string, extra: Partial<Graphics> = {}): Graphics => ({ type, sockets: [], glEnabled: false, ...extra });
const r = (path: string, perms: string, source: string): Rule => ({ path, suffix: "", perms, source });

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

  it.skipIf(!canMknod)("picks the lowest-numbered render node character device when GL names none", () => {
    charDevice(root, "/dev/dri/renderD129", 226, 129);
    charDevice(root, "/dev/dri/renderD128", 226, 128);
    charDevice(root, "/dev/dri/card0", 226, 0);
    // A regular file named like a render node is not a device: libvirt skips non-DT_CHR entries.
    writeHostFile(root, "/dev/dri/renderD127", "");
    expect(defaultRenderNode(ruleContext(baseDomain(), root).fs)).toBe("/dev/dri/renderD128");
    expect(gfx(g("spice", { glEnabled: true }), g("egl-headless"), g("dbus", { glEnabled: true }))).toEqual([
      r("/dev/dri/renderD128", "rw", "graphics spice rendernode"),
      r("/dev/dri/renderD128", "rw", "graphics egl-headless rendernode"),
      r("/dev/dri/renderD128", "rw", "graphics dbus rendernode"),
    ]);
  });

  it.skipIf(!canMknod)("grants no render node without GL, or for sdl/vnc", () => {
    charDevice(root, "/dev/dri/renderD128");
    expect(gfx(g("spice"), g("dbus"), g("vnc", { glEnabled: true }), g("sdl", { glEnabled: true }))).toEqual([]);
  });

  it("grants nothing when GL needs a node and the host has none (libvirt fails the start itself)", () => {
    writeHostFile(root, "/dev/dri/renderD128", "");
    expect(gfx(g("egl-headless"))).toEqual([]);
  });

  it("rejects relative sockets and render nodes", () => {
    expectPathError(() => gfx(g("vnc", { sockets: ["vnc.sock"] })), "vnc.sock", "graphics vnc socket: path is not absolute");
    expectPathError(() => gfx(g("spice", { glEnabled: true, glRendernode: "renderD128" })), "renderD128", "graphics spice rendernode: path is not absolute");
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

  it("rejects a relative render node", () => {
    expectPathError(() => videos({ accel3d: true, vhostUser: true, rendernode: "dri/x" }), "dri/x", "video 0 rendernode: path is not absolute");
  });
});
