/**
 * The live domain XML for the admin commands (grant/revoke/sync): `virsh --connect qemu:///system
 * dumpxml --security-info NAME`, virsh by absolute path (never looked up in PATH), run through
 * execa like the installer's programs. `--security-info`: the same XML libvirt hands its own
 * helper (VIR_DOMAIN_DEF_FORMAT_SECURE); it is parsed, never printed or logged.
 */
import { runProgram } from "../install/probes.js";
import type { LiveXml } from "./admin.js";

export function liveXmlFrom(virsh: string, uri: string): LiveXml {
  return async (name) => {
    if (!virsh.startsWith("/")) throw new Error(`cannot run ${virsh}: not an absolute path`);
    const args = ["--connect", uri, "dumpxml", "--security-info", "--", name];
    const r = await runProgram(virsh, args, { timeoutMs: 60_000 });
    if (r.failure !== undefined) throw new Error(`cannot run ${virsh}: ${r.failure}`);
    if (r.exitCode !== 0) {
      const why = r.stderr.trim().split("\n").filter(Boolean).join(" ") || `exit ${r.exitCode}`;
      throw new Error(`virsh dumpxml: ${why}`);
    }
    return Buffer.from(r.stdout, "utf8");
  };
}
