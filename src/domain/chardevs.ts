/** Character-device backends, wherever they appear (serial, console, channel, smartcard, ...). */
import type { Chardev } from "./model.js";
import type { XmlElement } from "./tree.js";
import { defined, label, path, token } from "./fields.js";

/** Backends whose `<source path=...>` is a host path QEMU opens (pty: the live /dev/pts/N). */
const PATH_TYPES = new Set(["file", "dev", "pipe", "unix", "pty"]);

/**
 * One backend. `fallbackType` is libvirt's default when `type` is missing (pty for the serial
 * family); elsewhere the attribute is required.
 */
export function readChardev(el: XmlElement, source: string, fallbackType?: string): Chardev {
  const type = token(el, "type") ?? fallbackType ?? el.fail('missing attribute "type"');
  // udp carries two <source> elements (bind and connect), both network addresses.
  const src = type === "udp" ? undefined : el.child("source");
  return defined({
    source,
    type,
    path: PATH_TYPES.has(type) ? path(src, "path") : undefined,
    mode: src && token(src, "mode"),
    tls: type === "tcp" && src ? token(src, "tls") : undefined,
    logFile: path(el.child("log"), "file"),
  });
}

/** serial, parallel, console, channel, passthrough smartcards and redirdevs, in that order. */
export function readChardevs(devices: XmlElement): Chardev[] {
  const out: Chardev[] = [];
  for (const kind of ["serial", "parallel", "console"]) {
    devices.children(kind).forEach((el, i) => out.push(readChardev(el, `${kind} ${i}`, "pty")));
  }
  devices.children("channel").forEach((el, i) => {
    const target = el.child("target");
    const name = target && label(target, "name");
    out.push(readChardev(el, `channel ${name ?? i}`, "pty"));
  });
  devices.children("smartcard").forEach((el, i) => {
    if (el.attr("mode") === "passthrough") out.push(readChardev(el, `smartcard ${i}`));
  });
  devices.children("redirdev").forEach((el, i) => out.push(readChardev(el, `redirdev ${i}`)));
  return out;
}
