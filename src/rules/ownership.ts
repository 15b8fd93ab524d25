import type { Domain } from "../domain/model.js";
import type { Layout } from "../layout.js";
import { domainShortName } from "./runtime.js";
import { SWTPM_LOG_DIR, SWTPM_STATE_DIR, SWTPM_STORAGE_DIR } from "./tpm.js";

/**
 * Which of the places libvirt manages for ALL guests hold THIS guest's own files, computed the way
 * the runtime and TPM families compute the paths they grant (libvirt names them after the guest's
 * `<id>-<short name>`, name or UUID). The policy grants a path below a managed root only when it is
 * one of these, whichever element names it, so no XML can reach another guest's monitor socket,
 * agent channel, swtpm state, hugepage or file-backed RAM, or libvirt's own sockets and state.
 */
export interface RuntimeOwnership {
  /** Roots libvirt manages for every guest (and for itself): below them only `own*` is granted. */
  managedRoots: string[];
  /** This guest's own directories: the directory and everything below it. */
  ownTrees: string[];
  /** This guest's own single files. */
  ownFiles: string[];
  /**
   * libvirt's run dir (`/run/libvirt/qemu`) and the prefix (`<id>-<short name>-`) of the entries
   * libvirt names after this guest in its helper subdirectories (`swtpm/`, `dbus/`, `passt/`,
   * `slirp/`): `<run dir>/<subdir>/<prefix>...` is this guest's.
   */
  runDir: string;
  runSubdirPrefix?: string;
  /** `libvirt/qemu/<id>-<short name>`: this guest's directory below each hugetlbfs mount. */
  hugepageSubdir?: string;
}

export function runtimeOwnership(domain: Domain, layout: Layout): RuntimeOwnership {
  const short = domainShortName(domain);
  const ownTrees = [
    `${SWTPM_STORAGE_DIR}/${domain.uuid}`,
    // NVRAM files are named by the XML like disk images (libvirt's default is
    // nvram/<name>_VARS.fd, but any name is valid and a renamed guest keeps its old one), so no
    // name tells whose a file is. What keeps guests off each other's NVRAM is the abstraction the
    // installer derives without libvirt's shared `nvram/*_VARS.fd` rule plus the exclusive-write
    // check across running guests (docs/threat-model.md, "Policy by provenance").
    `${layout.libvirtLibDir}/nvram`,
  ];
  const ownFiles = [
    `${layout.libvirtRunDir}/${domain.name}.pid`,
    `${layout.libvirtLibDir}/save/${domain.name}.save`,
    `${SWTPM_LOG_DIR}/${domain.name}-swtpm.log`,
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
    runDir: layout.libvirtRunDir,
    ...(short === undefined ? {} : { runSubdirPrefix: `${short}-`, hugepageSubdir: `libvirt/qemu/${short}` }),
  };
}

/** The managed roots with nothing in them owned: for judging a path before the guest is known. */
export function noRuntimeOwnership(layout: Layout): RuntimeOwnership {
  return {
    managedRoots: [
      layout.libvirtLibDir,
      layout.libvirtChannelTargetDir,
      layout.libvirtMemoryBackingDir,
      // All of /run/libvirt: the daemons' sockets (libvirt-sock, virtqemud-sock, virtlogd-sock...)
      // and every guest's live XML, pid and helper sockets.
      parentOf(layout.libvirtRunDir),
      SWTPM_STATE_DIR,
      SWTPM_STORAGE_DIR,
      SWTPM_LOG_DIR,
    ],
    ownTrees: [],
    ownFiles: [],
    runDir: layout.libvirtRunDir,
  };
}

function parentOf(dir: string): string {
  const at = dir.lastIndexOf("/");
  return at <= 0 ? "/" : dir.slice(0, at);
}
