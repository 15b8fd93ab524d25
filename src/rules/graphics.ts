import type { HostFs } from "../hostfs.js";
import type { Graphics } from "../domain/model.js";
import type { OriginRule } from "../ir.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { absolute } from "./absolute.js";
import { listDirectory } from "../host/sysfs.js";

const rule = ruleOf("graphics");

/**
 * `<graphics>`: listen sockets and OpenGL render nodes.
 *
 * The DRI/Mesa libraries and probe files a GL-enabled QEMU also reads (virt-aa-helper adds
 * `/usr/lib/.../dri/*.so*`, `/dev/dri/`, `/sys/devices/.../drm/...`) are host-wide and belong in
 * the shared abstraction, not in per-guest rules (our policy would refuse them anyway).
 */
export const graphicsRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.graphics.flatMap((g) => [
    ...g.sockets.map((socket) => rule(absolute(socket, `graphics ${g.type} socket`), "rw", `graphics ${g.type} socket`)),
    ...renderNodeRules(ctx.fs, g),
  ]);

/** `<video><model><acceleration accel3d='yes' rendernode=...>` (vhost-user-gpu). */
export const videoRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.videos.flatMap((video, i) =>
    video.accel3d && video.rendernode !== undefined
      ? [rule(absolute(video.rendernode, `video ${i} rendernode`), "rw", `video ${i} rendernode`)]
      : [],
  );

function renderNodeRules(fs: HostFs, g: Graphics): OriginRule[] {
  const source = `graphics ${g.type} rendernode`;
  if (g.glRendernode !== undefined) return [rule(absolute(g.glRendernode, source), "rw", source)];
  if (!needsAutoRenderNode(g)) return [];
  const node = defaultRenderNode(fs);
  // No node at all: libvirt itself fails the start ("No DRM render nodes available").
  return node === undefined ? [] : [rule(node, "rw", source)];
}

/**
 * libvirt's virDomainGraphicsNeedsAutoRenderNode: spice or dbus with `<gl enable='yes'>`, and
 * egl-headless always, when no rendernode is given.
 */
function needsAutoRenderNode(g: Graphics): boolean {
  if (g.type === "egl-headless") return true;
  return (g.type === "spice" || g.type === "dbus") && g.glEnabled;
}

/**
 * The render node libvirt picks when the XML names none: the first `renderD*` character device in
 * /dev/dri. libvirt takes the first in raw readdir order, which we cannot reproduce; we take the
 * lowest-numbered (renderD128 first), which is the only one on single-GPU hosts. This matters
 * only for the `prepare` hook: libvirt writes its choice into the live definition
 * (qemuProcessGraphicsSetupRenderNode) before the `start` hook, whose XML names it explicitly.
 */
export function defaultRenderNode(fs: HostFs): string | undefined {
  const dri = fs.layout.driDir;
  const nodes = (listDirectory(fs, dri) ?? [])
    .filter((name) => /^renderD[0-9]+$/.test(name))
    .filter((name) => fs.lstat(`${dri}/${name}`)?.isCharacterDevice() === true)
    .sort((a, b) => Number(a.slice("renderD".length)) - Number(b.slice("renderD".length)));
  return nodes.length > 0 ? `${dri}/${nodes[0]}` : undefined;
}
