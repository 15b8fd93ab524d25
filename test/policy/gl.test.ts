/**
 * What the policy grants the GL render path (origin "gl", rules/gl.ts) and SDL's X authority file
 * (origin "xauth"): each grant next to the refusals that show it is no wider than that.
 */
import { describe, expect, it } from "vitest";
import { Layout } from "../../src/layout.js";
import type { Origin, Rule } from "../../src/ir.js";
import { refusal, type PathFacts, type PolicyInput } from "../../src/policy/index.js";
import { runtimeOwnership } from "../../src/rules/ownership.js";
import { baseDomain } from "../rules/fixtures.js";
import { defaultQemuConf } from "../../src/host/qemu-conf.js";

const layout = new Layout("/");
const input: PolicyInput = { ownership: runtimeOwnership(baseDomain({ name: "vm1", id: 7 }), layout, defaultQemuConf(layout)), host: { hugetlbfsMounts: [] }, layout };
const facts = (type: PathFacts["type"] = "missing"): PathFacts => ({ type, swap: false, blockUse: [] });
const GPU = "/sys/devices/pci0000:00/0000:00:02.0";
const rule = (path: string, perms: string, origin: Origin, suffix: Rule["suffix"] = ""): Rule => ({ path, suffix, perms, source: "src", origin });
const gl = (path: string, perms = "r", suffix: Rule["suffix"] = "", type: PathFacts["type"] = "file") => refusal(rule(path, perms, { kind: "gl" }, suffix), facts(type), input);
const glDev = (path: string, perms = "r", suffix: Rule["suffix"] = "", device = GPU) => refusal(rule(path, perms, { kind: "gl", device }, suffix), facts("file"), input);
const xauth = (path: string, perms = "r", type: PathFacts["type"] = "file") => refusal(rule(path, perms, { kind: "xauth" }), facts(type), input);

describe("gl: configuration and /dev/dri/, read-only, nothing else", () => {
  it.each([
    ["/dev/dri", "/"],
    ["/usr/share/glvnd/egl_vendor.d", "/"],
    ["/etc/glvnd/egl_vendor.d", "/"],
    ["/usr/share/egl/egl_external_platform.d", "/"],
    ["/usr/share/drirc.d", "/"],
    ["/usr/share/glvnd/egl_vendor.d/50_mesa.json", ""],
    ["/etc/egl/egl_external_platform.d/10_nvidia_wayland.json", ""],
    ["/usr/share/drirc.d/00-mesa-defaults.conf", ""],
    ["/etc/drirc", ""],
    ["/proc/driver/nvidia/params", ""],
    ["/proc/modules", ""],
  ] as const)("grants %s%s read-only", (path, suffix) => {
    expect(gl(path, "r", suffix, suffix === "/" ? "dir" : "file")).toBeUndefined();
  });

  it.each([
    // Writes, trees, other names and other places.
    ["/usr/share/glvnd/egl_vendor.d/50_mesa.json", "rw", "", "restricted location /usr"],
    ["/usr/share/glvnd/egl_vendor.d", "r", "/**", "restricted location /usr"],
    ["/usr/share/glvnd/egl_vendor.d/notes.txt", "r", "", "restricted location /usr"],
    ["/usr/share/glvnd/egl_vendor.d/sub/x.json", "r", "", "restricted location /usr"],
    ["/usr/share/drirc.d/00-mesa-defaults.json", "r", "", "restricted location /usr"],
    ["/etc/shadow", "r", "", "restricted location /etc"],
    ["/etc/drirc", "rw", "", "restricted location /etc"],
    ["/proc/driver/nvidia/gpus", "r", "/", "restricted location /proc"],
    ["/proc/kallsyms", "r", "", "restricted location /proc"],
    ["/proc/modules", "rw", "", "restricted location /proc"],
    ["/dev/dri", "r", "/**", "recursive access would include the device nodes below /dev/dri"],
    ["/dev/dri/card0", "rw", "", "/dev/dri/card0 is not a device node"],
  ] as const)("refuses %s %s%s", (path, perms, suffix, reason) => {
    expect(gl(path, perms, suffix)).toContain(reason);
  });

  it("grants NVIDIA's nodes to gl, and to no other element", () => {
    for (const node of ["/dev/nvidiactl", "/dev/nvidia-modeset", "/dev/nvidia0"]) {
      expect(gl(node, "rw", "", "char")).toBeUndefined();
      expect(refusal(rule(node, "rw", { kind: "graphics" }), facts("char"), input)).toContain("is not a device node a <graphics> or <video> may use");
    }
    // CUDA's unified memory and its profiling interface are not the GL path's.
    for (const node of ["/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"]) expect(gl(node, "rw", "", "char")).toContain("is not a device node a GL render path");
    expect(gl("/dev/nvidia-caps", "rw", "", "dir")).toContain("is not a device node a GL render path");
  });

  it("grants /dev/udmabuf to <video> (blob), not to the GL path or a runtime grant", () => {
    expect(refusal(rule("/dev/udmabuf", "rw", { kind: "graphics" }), facts("char"), input)).toBeUndefined();
    expect(gl("/dev/udmabuf", "rw", "", "char")).toContain("is not a device node");
    expect(refusal(rule("/dev/udmabuf", "rw", { kind: "granted" }), facts("char"), input)).toContain("is not a device node");
  });
});

describe("gl: the render node's sysfs device, bound to the device the family found", () => {
  it.each(["uevent", "vendor", "device", "subsystem_vendor", "subsystem_device", "revision", "config", "drm/renderD128/uevent", "drm/card0/uevent"])(
    "grants %s",
    (file) => expect(glDev(`${GPU}/${file}`)).toBeUndefined(),
  );

  it("grants the drm/ listing, nothing deeper", () => {
    expect(glDev(`${GPU}/drm`, "r", "/")).toBeUndefined();
    expect(glDev(`${GPU}/drm`, "r", "/*")).toContain("sysfs");
    expect(glDev(`${GPU}/drm/renderD128/dev`)).toContain("restricted location /sys");
  });

  it.each([
    [`${GPU}/remove`, "r", GPU, "sysfs files of a host device"],
    [`${GPU}/vendor`, "rw", GPU, "sysfs files of a host device"],
    [`${GPU}/resource0`, "r", GPU, "sysfs files of a host device"],
    // Another card: the origin names the first one.
    ["/sys/devices/pci0000:00/0000:01:00.0/vendor", "r", GPU, "sysfs files of a host device"],
    // A parent bridge's attribute is not the GPU's.
    ["/sys/devices/pci0000:00/vendor", "r", GPU, "restricted location /sys"],
    // A device that is not under /sys/devices.
    ["/sys/kernel/security/apparmor/policy/x", "r", "/sys/kernel/security/apparmor/policy", "restricted location /sys"],
  ] as const)("refuses %s %s", (path, perms, device, reason) => {
    expect(glDev(path, perms, "", device)).toContain(reason);
  });

  it("a gl rule without a device gets no sysfs", () => {
    expect(gl(`${GPU}/vendor`)).toContain("sysfs files of a host device");
  });
});

describe("xauth: X authority files only, read-only", () => {
  it.each(["/home/alice/.Xauthority", "/run/user/1000/gdm/Xauthority", "/run/user/1000/.mutter-Xwaylandauth.ABC123", "/tmp/xauth_QwErTy", "/run/lightdm/alice/xauthority"])(
    "grants %s",
    (path) => expect(xauth(path)).toBeUndefined(),
  );

  it.each([
    ["/home/alice/.ssh/id_rsa", "r", "file", "is not named like an X authority file"],
    ["/home/alice/.bashrc", "r", "file", "is not named like an X authority file"],
    ["/etc/X11/xauth", "r", "file", "is not named like an X authority file"],
    ["/home/alice/.Xauthority", "rw", "file", `only read (asked for "rw")`],
    ["/home/alice/.Xauthority", "r", "fifo", "should be a regular file but is a FIFO"],
    ["/root/.Xauthority", "r", "file", "restricted location /root"],
    ["/etc/.Xauthority", "r", "file", "restricted location /etc"],
  ] as const)("refuses %s %s (%s)", (path, perms, type, reason) => {
    expect(xauth(path, perms, type)).toContain(reason);
  });

  it("another element naming an Xauthority file in a home directory is still refused", () => {
    expect(refusal(rule("/home/alice/.Xauthority", "r", { kind: "chardev-file" }), facts("file"), input)).toContain("users' dotfiles");
  });
});
