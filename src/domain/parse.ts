/**
 * libvirt domain XML → the typed Domain model. The XML is hostile (anyone who may define a
 * domain writes it): it is screened before parsing, parsed once, and every value is checked as
 * it is read. Any rejection is a GuestError naming the guest (once known) and the element.
 */
import { GuestError, PathError } from "../errors.js";
import type { Chardev, Devices, Domain, Hostdev, Rng } from "./model.js";
import { readChardevs } from "./chardevs.js";
import { readFilesystem, readGraphics, readInput, readInterface, readMemoryDevice, readRng, readShmem, readTpm, readVideo, readVsock } from "./devices.js";
import { defined, textPath, token } from "./fields.js";
import { readHostdev, readInterfaceHostdev } from "./hostdevs.js";
import { readDbusDisplay, readPstore, readSmartcard } from "./newer-devices.js";
import { readId, readName, readType, readUuid } from "./identity.js";
import { readSettings } from "./metadata.js";
import { readFwcfgFiles, readMemoryBacking, readOs, readSecLabels } from "./os.js";
import { screenXml } from "./screen.js";
import { readDisk } from "./storage.js";
import { parseTree, type XmlElement } from "./tree.js";

export function parseDomain(xml: string | Buffer): Domain {
  let guest = "-";
  try {
    const root = parseTree(screenXml(xml));
    if (root.tag !== "domain") root.fail(`root element is <${root.tag}>, expected <domain>`);
    guest = readName(root);
    return readDomain(root, guest);
  } catch (err) {
    if (err instanceof PathError) throw new GuestError(guest, err.path, err.reason);
    throw err;
  }
}

function readDomain(root: XmlElement, name: string): Domain {
  const devices = root.child("devices");
  const launchSecurity = root.child("launchSecurity");
  return defined({
    name,
    uuid: readUuid(root),
    id: readId(root),
    type: readType(root),
    emulator: textPath(devices?.child("emulator")),
    os: readOs(root.child("os")),
    fwcfgFiles: readFwcfgFiles(root),
    memoryBacking: readMemoryBacking(root.child("memoryBacking")),
    seclabels: readSecLabels(root),
    launchSecurity: launchSecurity && (token(launchSecurity, "type") ?? launchSecurity.fail('missing attribute "type"')),
    devices: devices ? readDevices(devices) : emptyDevices(),
    settings: readSettings(root),
  });
}

function readDevices(devices: XmlElement): Devices {
  const chardevs: Chardev[] = readChardevs(devices);
  const rngs: Rng[] = [];
  devices.children("rng").forEach((el, i) => {
    const { rng, chardev } = readRng(el, i);
    rngs.push(rng);
    if (chardev) chardevs.push(chardev);
  });
  const interfaceElements = devices.children("interface");
  const hostdevs: Hostdev[] = devices.children("hostdev").map(readHostdev);
  for (const el of interfaceElements) {
    const hostdev = readInterfaceHostdev(el);
    if (hostdev) hostdevs.push(hostdev);
  }
  return {
    disks: devices.children("disk").map(readDisk),
    filesystems: devices.children("filesystem").map(readFilesystem),
    chardevs,
    graphics: devices.children("graphics").map(readGraphics),
    videos: devices.children("video").map(readVideo),
    inputs: devices.children("input").map(readInput),
    interfaces: interfaceElements.map(readInterface),
    rngs,
    shmems: devices.children("shmem").map(readShmem),
    memoryDevices: devices.children("memory").map(readMemoryDevice),
    tpms: devices.children("tpm").map(readTpm),
    vsocks: devices.children("vsock").map(readVsock),
    hostdevs,
    pstores: devices.children("pstore").map(readPstore),
    smartcards: devices.children("smartcard").flatMap((el) => readSmartcard(el) ?? []),
    dbusDisplays: devices.children("graphics").flatMap((el) => readDbusDisplay(el) ?? []),
  };
}

/** A domain without a <devices> element: every family empty. */
export function emptyDevices(): Devices {
  return {
    disks: [],
    filesystems: [],
    chardevs: [],
    graphics: [],
    videos: [],
    inputs: [],
    interfaces: [],
    rngs: [],
    shmems: [],
    memoryDevices: [],
    tpms: [],
    vsocks: [],
    hostdevs: [],
    pstores: [],
    smartcards: [],
    dbusDisplays: [],
  };
}
