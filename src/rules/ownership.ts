import path from "node:path";
import type { Domain } from "../domain/model.js";
import { noRuntimeOwnership, type RuntimeOwnership } from "../ir.js";
import type { Layout } from "../layout.js";
import { qemuConfManagedRoots, type QemuConf } from "../host/qemu-conf.js";
import { domainShortName } from "./runtime.js";

/**
 * This guest's own entries in libvirt's managed places (ir.ts: RuntimeOwnership), named as the
 * runtime and TPM families name the paths they grant, in the directories `qemu` (qemu.conf) puts them.
 */
export function runtimeOwnership(domain: Domain, layout: Layout, qemu: QemuConf): RuntimeOwnership {
  const short = domainShortName(domain);
  const ownTrees = [`${layout.swtpmStorageDir}/${domain.uuid}`];
  const ownFiles = [
    layout.libvirtPidFile(domain.name),
    `${layout.libvirtLibDir}/save/${domain.name}.save`,
    `${layout.swtpmLogDir}/${domain.name}-swtpm.log`,
    // QEMU's log (rules/runtime.ts); every other file below libvirt's log directory is another
    // guest's log or libvirt's own.
    `${layout.libvirtLogDir}/${domain.name}.log`,
    // The NVRAM files this guest's XML names, one by one, never libvirt's shared NVRAM directory:
    // NVRAM files are named by the XML like disk images (libvirt's default is
    // nvram/<name>_VARS.fd, but any name is valid and a renamed guest keeps its old one), so no
    // name tells whose a file is, and a tree over the directory would reach every guest's
    // variables. What keeps a guest off another running guest's NVRAM it names is the
    // exclusive-write check (hook/exclusive.ts); the installer's abstraction drops libvirt's
    // shared `nvram/*_VARS.fd` rule (docs/threat-model.md, "Policy by provenance").
    // Only a file directly in the NVRAM directory is an NVRAM file: `<nvram>` naming another
    // guest's swtpm state or pid file is not made "own" by being named there. A `<pstore>` file
    // kept next to the NVRAM files (libvirt 10+, rules/pstore.ts) is treated the same way. Here
    // lexically; nvramNamed below is resolved by the pipeline (a symlinked alias of the directory).
    ...nvramNamed(domain).filter((p) => path.posix.dirname(p) === layout.libvirtNvramDir),
  ];
  if (short !== undefined) {
    ownTrees.push(
      `${layout.libvirtLibDir}/domain-${short}`,
      `${layout.libvirtChannelTargetDir}/domain-${short}`,
      `${qemu.memoryBackingDir}/${short}`,
    );
  }
  return {
    ...noRuntimeOwnership(layout, qemuConfManagedRoots(qemu, layout)),
    ownTrees,
    ownFiles,
    nvramNamed: nvramNamed(domain),
    nvramDir: layout.libvirtNvramDir,
    // `<log dir>/<name>-*`: chardev logs the XML names after the guest (libvirt's documented
    // `<name>-serial0.log`). Not another guest's QEMU log unless a guest is called `<name>-...`;
    // while that guest runs, its log is held and the exclusive-write check refuses the path.
    ownFilePrefixes: [`${layout.libvirtLogDir}/${domain.name}-`],
    ...(short === undefined ? {} : { runSubdirPrefix: `${short}-`, hugepageSubdir: `libvirt/qemu/${short}` }),
  };
}

/** The `<nvram>` file, its backing layers and the `<pstore>` files as the XML names them (normalised, absolute). */
function nvramNamed(domain: Domain): string[] {
  const nvram = domain.os.nvram;
  const named = [
    ...(nvram === undefined ? [] : [nvram.path, ...(nvram.backingStore ?? []).map((layer) => layer.path)]),
    ...domain.devices.pstores.map((p) => p.path),
  ];
  return named.filter((p): p is string => p !== undefined && p.startsWith("/")).map((p) => path.posix.normalize(p));
}
