import type { Domain } from "../domain/model.js";
import { noRuntimeOwnership, type RuntimeOwnership } from "../ir.js";
import type { Layout } from "../layout.js";
import { domainShortName } from "./runtime.js";

/**
 * This guest's own entries in libvirt's managed places (ir.ts: RuntimeOwnership), named as the
 * runtime and TPM families name the paths they grant.
 */
export function runtimeOwnership(domain: Domain, layout: Layout): RuntimeOwnership {
  const short = domainShortName(domain);
  const ownTrees = [
    `${layout.swtpmStorageDir}/${domain.uuid}`,
    // NVRAM files are named by the XML like disk images (libvirt's default is
    // nvram/<name>_VARS.fd, but any name is valid and a renamed guest keeps its old one), so no
    // name tells whose a file is. What keeps guests off each other's NVRAM is the abstraction the
    // installer derives without libvirt's shared `nvram/*_VARS.fd` rule plus the exclusive-write
    // check across running guests (docs/threat-model.md, "Policy by provenance").
    `${layout.libvirtLibDir}/nvram`,
  ];
  const ownFiles = [
    layout.libvirtPidFile(domain.name),
    `${layout.libvirtLibDir}/save/${domain.name}.save`,
    `${layout.swtpmLogDir}/${domain.name}-swtpm.log`,
  ];
  if (short !== undefined) {
    ownTrees.push(
      `${layout.libvirtLibDir}/domain-${short}`,
      `${layout.libvirtChannelTargetDir}/domain-${short}`,
      `${layout.libvirtMemoryBackingDir}/${short}`,
    );
  }
  return {
    ...noRuntimeOwnership(layout),
    ownTrees,
    ownFiles,
    ...(short === undefined ? {} : { runSubdirPrefix: `${short}-`, hugepageSubdir: `libvirt/qemu/${short}` }),
  };
}
