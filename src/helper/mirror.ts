/**
 * The files of every block job destination in the live domain XML: a disk's `<mirror>` (blockcopy
 * and active commit while they run). libvirt grants them with `-F` when the job starts, and the
 * regeneration it runs at a copy's pivot still shows the old image as `<source>` and the new one
 * only as `<mirror>` (qemu_blockjob.c removes the old chain before it switches the source;
 * /work/notes/issue17-research.md §6). libvirt's own helper ignores `<mirror>`, so its regen takes
 * the new image from QEMU while QEMU writes it. We keep a `-F` grant across a regeneration for as
 * long as the live XML still names its path as a mirror (docs/helper.md).
 *
 * The domain model (src/domain) does not read `<mirror>`; this reads only these elements:
 * `<disk><mirror file=...>` (the old form), `<mirror><source file|dev=...>`, and the mirror's own
 * `<backingStore>` chain, each as written.
 */
import { screenXml } from "../domain/screen.js";
import { parseTree, type XmlElement } from "../domain/tree.js";

export function mirrorPaths(xml: Buffer): string[] {
  // Almost every call has no block job: skip the second parse.
  if (!xml.includes("<mirror")) return [];
  const devices = parseTree(screenXml(xml)).child("devices");
  const out: string[] = [];
  for (const disk of devices?.children("disk") ?? []) {
    for (const mirror of disk.children("mirror")) {
      push(out, mirror.attr("file"));
      pushSource(out, mirror);
      let layer = mirror.children("backingStore")[0];
      while (layer !== undefined && !layer.isEmpty()) {
        pushSource(out, layer);
        layer = layer.children("backingStore")[0];
      }
    }
  }
  return out;
}

function pushSource(out: string[], el: XmlElement): void {
  const source = el.children("source")[0];
  if (source === undefined) return;
  push(out, source.attr("file"));
  push(out, source.attr("dev"));
}

function push(out: string[], p: string | undefined): void {
  if (p !== undefined && p.startsWith("/")) out.push(p);
}
