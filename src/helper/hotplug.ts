/**
 * The chain of an image libvirt is about to hand to QEMU that the live XML does not name yet: a
 * hot-plugged disk's top (libvirt sends `-r -F` for each element of its chain, top first, before
 * the disk enters the live XML; /work/notes/issue17-research.md §6), a new medium, a snapshot
 * overlay. Without this, every element would become a read-write grant, so a hot-plugged image
 * whose header names a file anywhere (another guest's stopped disk, a host file) would get it
 * `rwk`. The hook's rule for header-named files (rules/storage.ts headerNamedCheck) holds here too:
 * the `-F` path is judged as the top of a writable disk with no `<backingStore>`, by the same disk
 * rules and header walk (src/images) a disk in the XML gets. A refused layer refuses the `-F` (the
 * hotplug fails); otherwise each header-named layer is returned as a read-only grant, recorded with
 * the top's, so the `-F` calls for those layers that follow find it and add nothing (operations.ts):
 * they cannot widen it to write. One header walk per `-F` of a new top; none for raw files.
 */
import type { Disk, Domain } from "../domain/model.js";
import { PathError } from "../errors.js";
import { qemuConfOf, type HookContext } from "../hook/context.js";
import { HostFs } from "../hostfs.js";
import type { RuntimeGrant } from "../ir.js";
import { probeFormat, PROBE_BYTES } from "../images/probe.js";
import { checkRule } from "../policy/index.js";

/** The source (the `.files` comment, `explain`, the record) of a layer granted this way: also its marker. */
export const HEADER_LAYER_SOURCE = "libvirt virt-aa-helper -F: backing layer named by a hot-plugged image's header";

/** The synthetic disk's target: its rules read "disk (hot-plugged) backing 1", and so do refusals. */
const TARGET = "(hot-plugged)";

/**
 * The read-only grants for the files `file`'s header chain names (none for a raw file, a device
 * that is not an image, or an image without a backing file), or a PathError/GuestError naming the
 * first layer the policy refuses and why.
 */
export async function hotplugLayers(ctx: HookContext, domain: Domain, file: string): Promise<RuntimeGrant[]> {
  const fs = new HostFs(ctx.layout);
  // The policy's verdict before anything is read (the hook runs as root), as the disk rules give
  // it before they read a top's header (images.vet: path and origin only). A path it refuses is
  // not read here; the grant itself is then judged by the full policy as before (a save file in
  // libvirt's managed directories, a device).
  let real: string;
  try {
    real = checkRule(fs, { path: file, suffix: "", perms: "r", source: `disk ${TARGET}`, origin: { kind: "disk" } }).path;
  } catch (err) {
    if (err instanceof PathError) return [];
    throw err;
  }
  let st;
  try {
    st = fs.stat(real);
  } catch {
    return [];
  }
  if (st === undefined || !(st.isFile() || st.isBlockDevice())) return [];
  let head: Buffer;
  try {
    head = fs.readHead(real, PROBE_BYTES);
  } catch {
    return []; // unreadable: QEMU will fail to open it too; nothing to follow
  }
  // libvirt tells QEMU the format, but not us: QEMU's own probe. Erring on the side of reading: a
  // raw image whose contents look like a qcow2 header is walked too, which can only refuse the
  // -F or add read-only layers inside its directory tree, never widen anything.
  const format = probeFormat(head);
  if (format === "raw") return [];
  if (format === "qcow") throw new PathError(file, "a qcow (version 1) image: virt-aa-hook cannot tell which files QEMU would open for it (convert it: qemu-img convert -O qcow2)");
  const disk: Disk = { type: st.isBlockDevice() ? "block" : "file", device: "disk", path: file, format, readonly: false, shareable: false, target: TARGET };
  const synthetic: Domain = { ...domain, devices: { ...domain.devices, disks: [...domain.devices.disks, disk] } };
  const { buildProfile } = await import("../pipeline.js");
  const rules = buildProfile(synthetic, { layout: ctx.layout, qemu: qemuConfOf(ctx) }).rules;
  const prefix = `disk ${TARGET} `;
  const seen = new Set<string>();
  const out: RuntimeGrant[] = [];
  for (const r of rules) {
    if (!r.source.startsWith(prefix) || seen.has(r.path)) continue;
    seen.add(r.path);
    out.push({ path: r.path, write: false, by: "libvirt", source: HEADER_LAYER_SOURCE });
  }
  return out;
}
