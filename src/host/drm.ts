import path from "node:path";
import type { HostFs } from "../hostfs.js";
import { exists, linkTargetName, listDirectory, readAttribute } from "./sysfs.js";

/**
 * What the host's OpenGL stack (QEMU's EGL helpers, Mesa, libdrm, libglvnd, NVIDIA's driver)
 * reads for a GL guest, found through the layout root (ctx.fs), never the real host in tests.
 * Answers are facts about the host: trusted, but read defensively (anything odd is "absent").
 * What each file is for, and the source each fact comes from, is in docs/graphics.md.
 */

/**
 * The render node libvirt picks when the XML names none: virHostGetDRMRenderNode
 * (src/util/virutil.c) opens /dev/dri and takes the first entry, in readdir order, whose name
 * starts with "renderD" (no check of its type). `readdirRaw` keeps that order; a sorted listing
 * would pick renderD128 where libvirt may pick renderD129. libvirt writes its choice into the
 * live XML (qemuProcessGraphicsSetupRenderNode, or qemuVhostUserFillDomainGPU for vhost-user-gpu)
 * before the `start` hook, so only `prepare` relies on this.
 */
export function firstRenderNode(fs: HostFs): string | undefined {
  const dri = fs.layout.driDir;
  let names: string[];
  try {
    names = fs.readdirRaw(dri);
  } catch {
    return undefined; // libvirt fails the start itself ("No DRM render nodes available")
  }
  const first = names.find((name) => name.startsWith("renderD"));
  return first === undefined ? undefined : `${dri}/${first}`;
}

/** A DRM minor's place in sysfs, as libdrm finds it from the node's device number. */
export interface DrmDevice {
  /** `/sys/devices/pci0000:00/0000:00:02.0/drm/renderD128`: the minor's own directory. */
  minorDir: string;
  /**
   * The directory libdrm reads the device's attributes from: `/sys/dev/char/M:m/device`, resolved;
   * for a virtio-gpu its parent (get_pci_path strips the trailing `/virtioN`).
   */
  deviceDir: string;
  /** The bus, from the `subsystem` link: "pci", "platform", "usb", "host1x", "spi", ... */
  bus: string;
}

/**
 * The sysfs device behind a DRM node (`/dev/dri/renderD128`), or undefined when the path is not a
 * DRM character device on this host. libdrm (xf86drm.c) goes through `/sys/dev/char/<maj>:<min>`:
 * drmNodeIsDRM checks `.../device/drm` exists; drmParseSubsystemType reads the `device/subsystem`
 * link (and, for virtio, its parent's); get_pci_path resolves `device`.
 */
export function drmDevice(fs: HostFs, node: string): DrmDevice | undefined {
  let st;
  try {
    st = fs.stat(node);
  } catch {
    return undefined;
  }
  if (st === undefined || !st.isCharacterDevice()) return undefined;
  const { major, minor } = deviceNumber(st.rdev);
  const charDir = `${fs.layout.sysfsDir}/dev/char/${major}:${minor}`;
  if (!exists(fs, `${charDir}/device/drm`)) return undefined;
  const minorDir = resolve(fs, charDir);
  let deviceDir = resolve(fs, `${charDir}/device`);
  if (minorDir === undefined || deviceDir === undefined) return undefined;
  let bus = subsystemOf(fs, deviceDir);
  if (bus === "virtio") {
    const parent = path.posix.dirname(deviceDir);
    const parentBus = subsystemOf(fs, parent);
    if (parentBus !== undefined) {
      deviceDir = parent;
      bus = parentBus;
    }
  }
  if (bus === undefined) return undefined;
  return { minorDir, deviceDir, bus };
}

/**
 * The attribute files libdrm reads of a PCI device (xf86drm.c, Linux): drmParsePciBusInfo reads
 * `uevent` (PCI_SLOT_NAME); drmParsePciDeviceInfo → parse_separate_sysfs_files reads `revision`
 * (only with DRM_DEVICE_GET_PCI_REVISION, which Mesa's Intel drivers pass:
 * src/intel/dev/intel_device_info.c intel_get_device_info_from_fd; Mesa's loader passes 0), `vendor`, `device`,
 * `subsystem_vendor`, `subsystem_device`, and falls back to the first 64 bytes of `config` when
 * one of them is missing (kernels without `revision`). Only the files the host has are listed,
 * `config` only when that fallback can happen.
 */
export function drmDeviceFiles(fs: HostFs, dev: DrmDevice): string[] {
  const has = (name: string) => exists(fs, `${dev.deviceDir}/${name}`);
  const files = ["uevent"];
  if (dev.bus === "pci") {
    const attrs = ["revision", "vendor", "device", "subsystem_vendor", "subsystem_device"];
    files.push(...attrs.filter(has));
    if (!attrs.every(has) && has("config")) files.push("config");
  }
  return files.filter(has).map((name) => `${dev.deviceDir}/${name}`);
}

/**
 * The NVIDIA device nodes the GPU behind a render node needs, or [] when that GPU is not driven by
 * NVIDIA's proprietary driver (its sysfs `driver` link does not end in `nvidia`): a guest rendering
 * on an Intel or AMD node gets no NVIDIA node, whatever else the host has. For an NVIDIA GPU: the
 * control node `/dev/nvidiactl`, `/dev/nvidia-modeset` and that GPU's own `/dev/nvidia<minor>`,
 * the minor read from the driver's `/proc/driver/nvidia/gpus/<pci>/information` ("Device Minor:");
 * never another GPU's node, never `/dev/nvidia-uvm`/`-uvm-tools` (CUDA's unified memory and its
 * profiling interface: not part of the GL path; neither libvirt's helper nor abstractions/nvidia
 * grants them). Only nodes that exist as character devices are listed, in name order.
 */
export function nvidiaNodesFor(fs: HostFs, dev: DrmDevice): string[] {
  if (dev.bus !== "pci" || linkTargetName(fs, `${dev.deviceDir}/driver`) !== "nvidia") return [];
  const pci = path.posix.basename(dev.deviceDir);
  const info = readAttribute(fs, `${fs.layout.procDir}/driver/nvidia/gpus/${pci}/information`);
  const minor = /^Device Minor:[ \t]*([0-9]+)[ \t]*$/m.exec(info ?? "")?.[1];
  const names = ["nvidiactl", "nvidia-modeset"];
  if (minor !== undefined) names.push(`nvidia${Number(minor)}`);
  const devDir = fs.layout.devDir;
  return names
    .map((name) => `${devDir}/${name}`)
    .filter((node) => quietStat(fs, node)?.isCharacterDevice() === true)
    .sort();
}

/**
 * Configuration directories the GL stack lists and reads, each with the file names it reads there:
 * - libglvnd's libEGL: vendor JSONs in `/etc/glvnd/egl_vendor.d` then `/usr/share/glvnd/egl_vendor.d`
 *   (src/EGL/libeglvendor.c, DEFAULT_EGL_VENDOR_CONFIG_DIRS from sysconfdir and datadir; only
 *   `*.json`);
 * - NVIDIA's libEGL_nvidia (eglexternalplatform): platform JSONs in `/etc/egl/egl_external_platform.d`
 *   and `/usr/share/egl/egl_external_platform.d`;
 * - Mesa's driconf (src/util/xmlconfig.c): every `*.conf` in `/usr/share/drirc.d`, then `/etc/drirc`.
 */
export const GL_CONFIG_DIRS: ReadonlyArray<{ dir: string; suffix: string }> = [
  { dir: "/etc/glvnd/egl_vendor.d", suffix: ".json" },
  { dir: "/usr/share/glvnd/egl_vendor.d", suffix: ".json" },
  { dir: "/etc/egl/egl_external_platform.d", suffix: ".json" },
  { dir: "/usr/share/egl/egl_external_platform.d", suffix: ".json" },
  { dir: "/usr/share/drirc.d", suffix: ".conf" },
];

/** Single GL configuration files: Mesa's system drirc. */
export const GL_CONFIG_FILES: readonly string[] = ["/etc/drirc"];
/**
 * What NVIDIA's userspace driver reads in /proc: its module parameters (device file modes) and the
 * module list. AppArmor's `abstractions/nvidia` and libvirt's own helper (for every GL guest) grant
 * both; we grant them only to a guest whose render node's GPU is NVIDIA's (nvidiaNodesFor).
 */
export const NVIDIA_PROC_FILES: readonly string[] = ["/proc/driver/nvidia/params", "/proc/modules"];

/** The GL configuration on this host: each existing config directory and the files read in it. */
export function glConfig(fs: HostFs): { dirs: string[]; files: string[] } {
  const dirs: string[] = [];
  const files: string[] = [];
  for (const { dir, suffix } of GL_CONFIG_DIRS) {
    const names = quietStat(fs, dir)?.isDirectory() === true ? listDirectory(fs, dir) : undefined;
    if (names === undefined) continue;
    dirs.push(dir);
    for (const name of names) {
      if (name.endsWith(suffix) && quietStat(fs, `${dir}/${name}`)?.isFile() === true) files.push(`${dir}/${name}`);
    }
  }
  for (const file of GL_CONFIG_FILES) if (quietStat(fs, file)?.isFile() === true) files.push(file);
  return { dirs, files };
}

/** glibc's gnu_dev_major/gnu_dev_minor for the 64-bit dev_t node gives as a number. */
export function deviceNumber(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  return {
    major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n)),
    minor: Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n)),
  };
}

function subsystemOf(fs: HostFs, deviceDir: string): string | undefined {
  const link = `${deviceDir}/subsystem`;
  try {
    if (fs.lstat(link)?.isSymbolicLink() !== true) return undefined;
    return path.posix.basename(fs.readlink(link));
  } catch {
    return undefined;
  }
}

/** realpath(3) of a host path, every link resolved inside the layout root; undefined if broken. */
export function resolve(fs: HostFs, hostPath: string): string | undefined {
  const parts = hostPath.split("/").filter((p) => p !== "");
  let done = "";
  let hops = 0;
  while (parts.length > 0) {
    const part = parts.shift()!;
    if (part === ".") continue;
    if (part === "..") {
      done = path.posix.dirname(done === "" ? "/" : done);
      if (done === "/") done = "";
      continue;
    }
    const next = `${done}/${part}`;
    const st = quietLstat(fs, next);
    if (st === undefined) return undefined;
    if (st.isSymbolicLink()) {
      if (++hops > 40) return undefined; // ELOOP
      let target: string;
      try {
        target = fs.readlink(next);
      } catch {
        return undefined;
      }
      parts.unshift(...target.split("/").filter((p) => p !== ""));
      if (target.startsWith("/")) done = "";
      continue;
    }
    done = next;
  }
  return done === "" ? "/" : done;
}

function quietStat(fs: HostFs, hostPath: string) {
  try {
    return fs.stat(hostPath);
  } catch {
    return undefined;
  }
}

function quietLstat(fs: HostFs, hostPath: string) {
  try {
    return fs.lstat(hostPath);
  } catch {
    return undefined;
  }
}
