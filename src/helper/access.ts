/**
 * What a `-F PATH` call gets (docs/helper.md, "Read or write"). libvirt sends `-F` for every
 * element of a chain it is about to hand to QEMU and always means `rwk`: it ignores its own
 * read-only flag. We decide from the live domain XML on stdin (the definition as it is now, which
 * for a hotplug does not yet contain the new device):
 *
 * - read-only (`rk`) when the path is the top image of a `<readonly/>` disk in that XML, and no
 *   disk uses it writable or as a backing layer / data file (then the XML's own rule covers it and
 *   operations.ts adds no grant);
 * - read-write (`rwk`) otherwise. Paths the XML does not name are new to the guest (a hotplugged
 *   disk and its chain, a snapshot overlay, a copy destination, a new medium, a restore file, a
 *   tap device): libvirt is about to give them to QEMU, which opens disks read-write unless the
 *   device is read-only, and the XML cannot tell us yet. A backing layer the XML names read-only
 *   is written by QEMU when a block commit targets it, and a commit's start (and its end) is the
 *   only time libvirt sends `-F` for a layer already in the chain.
 *
 * Either way the grant is judged by the policy like every rule: a restricted location, another
 * running guest's image (which a write would conflict with), or a device no element may use, is
 * refused. Every `-F` grant is dropped at libvirt's next regeneration (`-r` without a file), so a
 * write given while a device is being added lasts until the XML can say what the device needs.
 */
import type { Disk, Domain } from "../domain/model.js";
import type { HostFs } from "../hostfs.js";
import { canonicalise } from "../policy/canonical.js";

export interface Access {
  write: boolean;
  /** Why, for the log: "new to the guest", "read-only disk sda", ... */
  why: string;
}

export function accessFor(fs: HostFs, domain: Domain, path: string): Access {
  const target = canonicalise(fs, path);
  const same = (p: string | undefined) => p !== undefined && p.startsWith("/") && safeCanonical(fs, p) === target;
  let readOnlyTop: string | undefined;
  for (const [i, disk] of domain.devices.disks.entries()) {
    const name = `disk ${disk.target ?? i}`;
    if (layersOf(disk).some(same)) return { write: true, why: `a backing layer or data file of ${name} (a block commit target)` };
    if (same(disk.path)) {
      if (!disk.readonly) return { write: true, why: `the writable top of ${name}` };
      readOnlyTop ??= name;
    }
  }
  if (readOnlyTop !== undefined) return { write: false, why: `the top of read-only ${readOnlyTop}` };
  return { write: true, why: "not in the domain XML yet (a device, medium, overlay, copy or file being added)" };
}

/** Every local path below a disk's top: its `<dataStore>`, backing layers and their data files. */
function layersOf(disk: Disk): (string | undefined)[] {
  const out: (string | undefined)[] = [disk.dataStore?.path];
  for (const layer of disk.backingStore ?? []) out.push(layer.path, layer.dataStore?.path);
  return out;
}

function safeCanonical(fs: HostFs, p: string): string | undefined {
  try {
    return canonicalise(fs, p);
  } catch {
    return undefined;
  }
}
