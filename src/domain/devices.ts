/** Device families other than disks, chardevs and hostdevs: one small reader each. */
import type { Chardev, Filesystem, Graphics, Input, MemoryDevice, NetInterface, Rng, Shmem, Tpm, Video, Vsock } from "./model.js";
import type { XmlElement } from "./tree.js";
import { readChardev } from "./chardevs.js";
import { defined, label, path, requireToken, textPath, token, yesNo } from "./fields.js";
import { checkLabel } from "./values.js";
import { InvalidValue, preview } from "./fault.js";
import { isFileNameComponent } from "../names.js";

/** The `<source>` attribute that names the host side of each filesystem type. */
const FS_SOURCE_ATTR: Record<string, string> = { mount: "dir", bind: "dir", file: "file", block: "dev" };

export function readFilesystem(el: XmlElement): Filesystem {
  const type = token(el, "type") ?? "mount";
  const source = el.child("source");
  const driver = el.child("driver");
  const target = el.child("target");
  const sourceAttr = Object.hasOwn(FS_SOURCE_ATTR, type) ? FS_SOURCE_ATTR[type] : undefined;
  return defined({
    type,
    driver: driver && token(driver, "type"),
    accessmode: token(el, "accessmode"),
    source: sourceAttr === undefined ? undefined : path(source, sourceAttr),
    target: target && label(target, "dir"),
    readonly: el.has("readonly"),
    socket: path(source, "socket"),
  });
}

export function readGraphics(el: XmlElement): Graphics {
  const type = requireToken(el, "type");
  const sockets: string[] = [];
  const add = (socket: string | undefined) => {
    if (socket !== undefined && !sockets.includes(socket)) sockets.push(socket);
  };
  add(path(el, "socket"));
  for (const listen of el.children("listen")) {
    if (listen.attr("type") === "socket") add(path(listen, "socket"));
  }
  const gl = el.child("gl");
  return defined({
    type,
    sockets,
    glRendernode: path(gl, "rendernode"),
    // egl-headless is OpenGL by definition; elsewhere GL is on only with <gl enable='yes'>.
    glEnabled: type === "egl-headless" || (gl !== undefined && yesNo(gl, "enable")),
  });
}

export function readVideo(el: XmlElement): Video {
  const model = el.child("model");
  const accel = model?.child("acceleration");
  const driver = el.child("driver");
  return defined({
    model: model && token(model, "type"),
    accel3d: accel !== undefined && yesNo(accel, "accel3d"),
    vhostUser: driver?.attr("name") === "vhostuser",
    rendernode: path(accel, "rendernode"),
  });
}

export function readInput(el: XmlElement): Input {
  const source = el.child("source");
  // passthrough spells it evdev=, evdev inputs spell it dev=.
  return defined({ type: requireToken(el, "type"), dev: path(source, "evdev") ?? path(source, "dev") });
}

export function readInterface(el: XmlElement): NetInterface {
  const type = requireToken(el, "type");
  const source = el.child("source");
  const model = el.child("model");
  const driver = el.child("driver");
  const backend = el.child("backend");
  const mac = el.child("mac");
  const target = el.child("target");
  const alias = el.child("alias");
  const backendType = backend && token(backend, "type");
  return defined({
    type,
    model: model && token(model, "type"),
    driver: driver && token(driver, "name"),
    socket: type === "vhostuser" ? path(source, "path") : undefined,
    vdpaDev: type === "vdpa" ? path(source, "dev") : undefined,
    backendTap: path(backend, "tap"),
    backendVhost: path(backend, "vhost"),
    mac: mac && label(mac, "address"),
    // Read only where a rule needs them: the macvtap link, passt's socket name.
    targetDev: type === "direct" && target ? label(target, "dev") : undefined,
    alias: backendType === "passt" && alias ? label(alias, "name") : undefined,
    backendType,
  });
}

/** An rng device, plus its egd backend as a chardev (label "rng N egd"). */
export function readRng(el: XmlElement, index: number): { rng: Rng; chardev?: Chardev } {
  const backend = el.one("backend");
  const kind = requireToken(backend, "model");
  const rng = defined({ model: token(el, "model"), backend: kind, path: kind === "random" ? textPath(backend) : undefined });
  return kind === "egd" ? { rng, chardev: readChardev(backend, `rng ${index} egd`) } : { rng };
}

export function readShmem(el: XmlElement): Shmem {
  const name = el.convert('attribute "name"', el.requireAttr("name"), shmemName);
  const model = el.child("model");
  const server = el.child("server");
  return defined({ name, model: model && token(model, "type"), serverPath: path(server, "path"), hasServer: server !== undefined });
}

/** QEMU opens /dev/shm/<name>: a name that is not one plain file name would escape that directory. */
function shmemName(raw: string): string {
  if (!isFileNameComponent(raw)) {
    throw new InvalidValue(`invalid shared memory name "${preview(raw)}"`);
  }
  return checkLabel(raw);
}

export function readMemoryDevice(el: XmlElement): MemoryDevice {
  return defined({ model: requireToken(el, "model"), path: textPath(el.child("source")?.child("path")) });
}

export function readTpm(el: XmlElement): Tpm {
  const backend = el.one("backend");
  const type = requireToken(backend, "type");
  return defined({
    model: token(el, "model"),
    backend: type,
    version: type === "emulator" ? token(backend, "version") : undefined,
    devicePath: type === "passthrough" ? path(backend.child("device"), "path") : undefined,
    socket: type === "external" ? path(backend.child("source"), "path") : undefined,
    persistentState: backend.attr("persistent_state") === undefined ? undefined : yesNo(backend, "persistent_state"),
  });
}

export function readVsock(el: XmlElement): Vsock {
  return defined({ model: token(el, "model") });
}
