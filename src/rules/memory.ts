import { PathError } from "../errors.js";
import type { Shmem } from "../domain/model.js";
import type { OriginRule } from "../ir.js";
import type { Layout } from "../layout.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { absolute } from "./absolute.js";
import { requireFileNameComponent } from "./names.js";

/**
 * `<shmem>` (ivshmem). Without a server, QEMU maps the POSIX shared memory object
 * `/dev/shm/<name>` (ivshmem-plain). With `<server>` (ivshmem-doorbell), QEMU connects to the
 * ivshmem server's socket and receives the memory as a descriptor; libvirt fills in
 * `/var/lib/libvirt/shmem-<name>-sock` when `<server/>` has no path (qemuDomainPrepareShmemChardev).
 */
export const shmemRules: RuleFamily = (ctx: RuleContext) => ctx.domain.devices.shmems.flatMap((shmem) => shmemRulesFor(shmem, ctx.layout));

const shmemRule = ruleOf("shmem");
const memoryRule = ruleOf("memory");

function shmemRulesFor(shmem: Shmem, layout: Layout): OriginRule[] {
  // The name is pasted into a file name either way.
  const name = requireFileNameComponent(shmem.name, "shmem name", "shmem");
  if (shmem.hasServer) {
    const socket = shmem.serverPath ?? `${layout.libvirtShmemSocketDir}/shmem-${name}-sock`;
    return [shmemRule(absolute(socket, `shmem ${name} server`), "rw", `shmem ${name} server`)];
  }
  return [shmemRule(`${layout.shmDir}/${name}`, "rw", `shmem ${name}`)];
}

/** Memory device models backed by a host file QEMU maps read-write. */
const FILE_BACKED_MODELS = new Set(["nvdimm", "virtio-pmem"]);

/**
 * `<memory model='nvdimm'|'virtio-pmem'>`: the `<source><path>` file or device. dimm, virtio-mem
 * and sgx-epc use guest RAM backends (covered by the runtime family's memory backing rules).
 */
export const memoryDeviceRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.memoryDevices.flatMap((mem, i) => {
    if (!FILE_BACKED_MODELS.has(mem.model)) return [];
    const source = `memory ${i} ${mem.model}`;
    if (mem.path === undefined) throw new PathError(source, "missing <source><path>");
    return [memoryRule(absolute(mem.path, source), "rw", source)];
  });
