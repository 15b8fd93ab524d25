import type { OriginRule } from "../ir.js";
import { PathError } from "../errors.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { drmDevice, drmDeviceFiles, firstRenderNode, glConfig, NVIDIA_PROC_FILES, nvidiaNodesFor } from "../host/drm.js";
import { needsAutoRenderNode } from "./graphics.js";

const rule = ruleOf("gl");

/**
 * The host files the OpenGL render path of a GL guest reads, beyond the render node itself (which
 * `<graphics>`/`<video>` grant, rules/graphics.ts). Neither Debian's abstractions/libvirt-qemu nor
 * base grant them; the DRI/EGL libraries are already granted (base: `/{usr/,}lib/@{multiarch}/**.so* mr`).
 * Only for guests that render with GL (usesGl), all read-only except the NVIDIA device nodes:
 *
 * - `/dev/dri/` (the listing): libdrm's drmGetDeviceFromDevId (xf86drm.c) lists it to match the
 *   fd to its device; QEMU's egl-helpers list it too when no rendernode is given.
 * - for each render node used: its minor's `uevent` (drmGetDeviceNameFromFd2), the `drm/` listing
 *   of its device (drmGetMinorNameForFD) and the device attributes libdrm reads (host/drm.ts
 *   drmDeviceFiles). libdrm also looks at every other DRM node's device while it searches; denying
 *   those only makes it skip them (process_device fails, the loop continues), so other cards'
 *   sysfs stays closed.
 * - EGL vendor and external-platform JSONs, Mesa's drirc files (host/drm.ts GL_CONFIG_DIRS), each
 *   directory listed (`/`) and each file there by name. A file the policy would refuse (a link out
 *   of those directories) is left out rather than refusing the guest: it is the host's, not the XML's.
 * - NVIDIA's nodes, `/proc/driver/nvidia/params` and `/proc/modules`, only when a render node used is
 *   an NVIDIA GPU's, and then only that GPU's nodes (host/drm.ts nvidiaNodesFor): never another GPU's,
 *   never UVM.
 *
 * Mesa's shader cache and NVIDIA's GL cache need nothing: libvirt runs QEMU with HOME and
 * XDG_CACHE_HOME in the guest's private directory (qemuBuildCommandLine: virCommandAddEnvPair
 * "HOME" and virCommandAddEnvXDG with priv->libDir, libvirt ≥ 6.x), which rules/runtime.ts grants
 * `rwk` with `{,/**}`.
 */
export const glRules: RuleFamily = (ctx: RuleContext) => {
  const nodes = glRenderNodes(ctx);
  if (nodes === undefined) return [];
  const out: OriginRule[] = [rule(ctx.layout.driDir, "r", "gl dri", "/")];
  const seen = new Set<string>();
  const nvidia = new Set<string>();
  for (const node of nodes) {
    const dev = drmDevice(ctx.fs, node);
    if (dev === undefined || seen.has(dev.deviceDir)) continue;
    seen.add(dev.deviceDir);
    for (const n of nvidiaNodesFor(ctx.fs, dev)) nvidia.add(n);
    const devRule = ruleOf("gl", dev.deviceDir);
    const source = `gl ${node.slice(node.lastIndexOf("/") + 1)} sysfs`;
    out.push(devRule(`${dev.minorDir}/uevent`, "r", source));
    out.push(devRule(`${dev.deviceDir}/drm`, "r", source, "/"));
    for (const file of drmDeviceFiles(ctx.fs, dev)) out.push(devRule(file, "r", source));
  }
  const config = glConfig(ctx.fs);
  const optional = [
    ...config.dirs.map((dir) => rule(dir, "r", "gl config", "/")),
    ...config.files.map((file) => rule(file, "r", "gl config")),
  ];
  out.push(...optional.filter((r) => admitted(ctx, r)));
  if (nvidia.size > 0) {
    out.push(...[...nvidia].sort().map((node) => rule(node, "rw", "gl nvidia")));
    out.push(...NVIDIA_PROC_FILES.map((file) => rule(file, "r", "gl nvidia")));
  }
  return out;
};

/**
 * The render nodes a GL guest's QEMU (or its vhost-user-gpu, which libvirt starts with the
 * guest's label) opens, or undefined when the guest does not render with GL at all. An explicit
 * node is as the XML names it; auto-picked as libvirt picks it. SDL with GL gets its DRI fd from
 * the X server, not by path: its sysfs is libvirt's default node's (the only one on a single-GPU
 * host). The nodes themselves are granted by rules/graphics.ts, judged as the element's devices.
 */
function glRenderNodes(ctx: RuleContext): string[] | undefined {
  const { graphics, videos } = ctx.domain.devices;
  const gl = graphics.filter((g) => g.glEnabled && g.type !== "vnc" && g.type !== "rdp");
  const vhostGpus = videos.filter((v) => v.accel3d && v.vhostUser);
  if (gl.length === 0 && vhostGpus.length === 0) return undefined;
  const nodes: string[] = [];
  const auto = () => firstRenderNode(ctx.fs);
  for (const g of gl) {
    const node = g.glRendernode ?? (needsAutoRenderNode(g) || g.type === "sdl" ? auto() : undefined);
    if (node !== undefined) nodes.push(node);
  }
  for (const v of vhostGpus) {
    const node = v.rendernode ?? auto();
    if (node !== undefined) nodes.push(node);
  }
  return nodes;
}

/** Whether the policy grants a host-derived optional rule (see the family's comment). */
function admitted(ctx: RuleContext, r: OriginRule): boolean {
  try {
    ctx.images.vet(r);
    return true;
  } catch (err) {
    if (err instanceof PathError) return false;
    throw err;
  }
}
