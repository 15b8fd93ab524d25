import type { HostFs } from "../hostfs.js";
import type { Graphics } from "../domain/model.js";
import type { OriginRule } from "../ir.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { absolute } from "./absolute.js";
import { firstRenderNode } from "../host/drm.js";

const rule = ruleOf("graphics");
const xauthRule = ruleOf("xauth");

/**
 * `<graphics>`: listen sockets, OpenGL render nodes, SDL's X authority file.
 *
 * The other host files a GL-enabled QEMU reads (`/dev/dri/`, the render node's sysfs attributes,
 * EGL vendor JSONs, drirc, NVIDIA's nodes) are rules/gl.ts's; the DRI/Mesa libraries are granted
 * by the base abstraction already.
 */
export const graphicsRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.graphics.flatMap((g) => [
    ...g.sockets.map((socket) => rule(absolute(socket, `graphics ${g.type} socket`), "rw", `graphics ${g.type} socket`)),
    ...renderNodeRules(ctx.fs, g),
    // qemuBuildGraphicsSDLCommandLine: XAUTHORITY=<xauth> (and DISPLAY=<display>) in QEMU's
    // environment; libX11 reads the file to authenticate to the X server. DISPLAY needs no file
    // rule: libxcb connects to the abstract socket `@/tmp/.X11-unix/X<n>` first.
    ...(g.type === "sdl" && g.xauth !== undefined ? [xauthRule(absolute(g.xauth, "graphics sdl xauth"), "r", "graphics sdl xauth")] : []),
  ]);

/**
 * `<video>`: `<acceleration accel3d='yes' rendernode=...>` of a vhost-user-gpu (libvirt picks the
 * node when none is given: qemuVhostUserFillDomainGPU → virHostGetDRMRenderNode), and
 * `<model type='virtio' blob='on'>` (libvirt 9.2+): QEMU's virtio-gpu creates blob resources
 * through `/dev/udmabuf` (ui/udmabuf.c udmabuf_fd, opened O_RDWR).
 */
export const videoRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.videos.flatMap((video, i) => {
    const out: OriginRule[] = [];
    if (video.accel3d && (video.rendernode !== undefined || video.vhostUser)) {
      const node = video.rendernode === undefined ? firstRenderNode(ctx.fs) : absolute(video.rendernode, `video ${i} rendernode`);
      if (node !== undefined) out.push(rule(node, "rw", `video ${i} rendernode`));
    }
    if (video.blob === true) out.push(rule(`${ctx.layout.devDir}/udmabuf`, "rw", `video ${i} blob`));
    return out;
  });

function renderNodeRules(fs: HostFs, g: Graphics): OriginRule[] {
  const source = `graphics ${g.type} rendernode`;
  if (g.glRendernode !== undefined) return [rule(absolute(g.glRendernode, source), "rw", source)];
  if (!needsAutoRenderNode(g)) return [];
  const node = firstRenderNode(fs);
  // No node at all: libvirt itself fails the start ("No DRM render nodes available").
  return node === undefined ? [] : [rule(node, "rw", source)];
}

/**
 * libvirt's virDomainGraphicsNeedsAutoRenderNode: spice or dbus with `<gl enable='yes'>`, and
 * egl-headless always, when no rendernode is given.
 */
export function needsAutoRenderNode(g: Graphics): boolean {
  if (g.type === "egl-headless") return true;
  return (g.type === "spice" || g.type === "dbus") && g.glEnabled;
}
