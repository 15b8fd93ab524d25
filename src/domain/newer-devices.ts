/** Devices libvirt 10–12 added that open host files: `<pstore>`, host smartcards, the D-Bus display. */
import type { DbusDisplay, Pstore, Smartcard } from "./model.js";
import type { XmlElement } from "./tree.js";
import { defined, path, requireToken, textPath, token, yesNo } from "./fields.js";
import { preview } from "./fault.js";

/** `<pstore backend='acpi-erst'><path>FILE</path><size .../></pstore>`: libvirt requires both. */
export function readPstore(el: XmlElement): Pstore {
  const backend = requireToken(el, "backend");
  // The only backend libvirt knows (virDomainPstoreBackend); anything else is a newer libvirt's.
  if (backend !== "acpi-erst") el.fail(`unsupported pstore backend "${preview(backend)}"`);
  const file = textPath(el.one("path"));
  return { backend, path: file ?? el.one("path").fail("missing pstore file path") };
}

/**
 * `<smartcard mode='host'>` and `mode='host-certificates'` (with its optional `<database>`); a
 * passthrough smartcard is a chardev (chardevs.ts) and gives undefined here.
 */
export function readSmartcard(el: XmlElement): Smartcard | undefined {
  const mode = requireToken(el, "mode");
  switch (mode) {
    case "host":
      return { mode };
    case "host-certificates":
      return defined({ mode, database: textPath(el.child("database")) });
    case "passthrough":
      return undefined;
    default:
      return el.fail(`unsupported smartcard mode "${preview(mode)}"`);
  }
}

/** `<graphics type='dbus' p2p=... address=...>`; other graphics types give undefined. */
export function readDbusDisplay(el: XmlElement): DbusDisplay | undefined {
  if (token(el, "type") !== "dbus") return undefined;
  return defined({ p2p: yesNo(el, "p2p"), address: path(el, "address") });
}
