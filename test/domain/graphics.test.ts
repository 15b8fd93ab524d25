/** `<graphics>` and `<video>` as the GL rules need them: GL, render nodes, SDL's xauth, virtio blob. */
import { describe, expect, it } from "vitest";
import { parseDomain } from "../../src/domain/index.js";
import { PathError } from "../../src/errors.js";

const parse = (devices: string) =>
  parseDomain(`<domain type='kvm'><name>vm1</name><uuid>6a1e3c2b-9d84-4f0a-b1c2-d3e4f5a6b7c8</uuid><devices>${devices}</devices></domain>`).devices;

describe("graphics", () => {
  it("reads GL and its render node for egl-headless, spice, dbus and sdl", () => {
    expect(
      parse(
        "<graphics type='egl-headless'><gl rendernode='/dev/dri/renderD128'/></graphics>" +
          "<graphics type='egl-headless'/>" +
          "<graphics type='spice' autoport='yes'><listen type='none'/><gl enable='yes' rendernode='/dev/dri/renderD129'/></graphics>" +
          "<graphics type='dbus'><gl enable='no'/></graphics>" +
          "<graphics type='sdl' display=':0' xauth='/home/alice/.Xauthority' fullscreen='no'><gl enable='yes'/></graphics>",
      ).graphics,
    ).toStrictEqual([
      { type: "egl-headless", sockets: [], glRendernode: "/dev/dri/renderD128", glEnabled: true },
      { type: "egl-headless", sockets: [], glEnabled: true },
      { type: "spice", sockets: [], glRendernode: "/dev/dri/renderD129", glEnabled: true },
      { type: "dbus", sockets: [], glEnabled: false },
      { type: "sdl", sockets: [], glEnabled: true, xauth: "/home/alice/.Xauthority" },
    ]);
  });

  it("xauth is SDL's only (libvirt parses it for sdl alone)", () => {
    expect(parse("<graphics type='vnc' port='-1' xauth='/home/alice/.Xauthority'/>").graphics).toStrictEqual([{ type: "vnc", sockets: [], glEnabled: false }]);
  });

  it("rejects a malformed enable", () => {
    expect(() => parse("<graphics type='spice'><gl enable='maybe'/></graphics>")).toThrow(PathError);
  });
});

describe("video", () => {
  it("reads accel3d, vhost-user, the node and blob='on'", () => {
    expect(
      parse(
        "<video><model type='virtio' heads='1' primary='yes' blob='on'><acceleration accel3d='yes'/></model></video>" +
          "<video><model type='virtio' blob='off'/></video>" +
          "<video><driver name='vhostuser'/><model type='virtio'><acceleration accel3d='yes' rendernode='/dev/dri/renderD128'/></model></video>",
      ).videos,
    ).toStrictEqual([
      { model: "virtio", accel3d: true, vhostUser: false, blob: true },
      { model: "virtio", accel3d: false, vhostUser: false },
      { model: "virtio", accel3d: true, vhostUser: true, rendernode: "/dev/dri/renderD128" },
    ]);
  });
});
