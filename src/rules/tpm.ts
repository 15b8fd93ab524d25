import path from "node:path";
import { PathError } from "../errors.js";
import type { HostFs } from "../hostfs.js";
import type { Domain, Tpm } from "../domain/model.js";
import type { Layout } from "../layout.js";
import type { OriginRule } from "../ir.js";
import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";
import { absolute } from "./absolute.js";
import { requireFileNameComponent } from "./names.js";
import { domainShortName } from "./runtime.js";
import { exists } from "../host/sysfs.js";

/** The host TPM a passthrough `<tpm>` without a device path gets (libvirt's default). */
export const DEFAULT_TPM_DEVICE = "/dev/tpm0";

/** `<tpm>`: swtpm emulator files, a passthrough host TPM, or an external swtpm socket. */
export const tpmRules: RuleFamily = (ctx: RuleContext) =>
  ctx.domain.devices.tpms.flatMap((tpm) => {
    switch (tpm.backend) {
      case "emulator":
        return emulatorRules(ctx.domain, tpm, ctx.layout);
      case "passthrough":
        return passthroughRules(ctx.fs, tpm);
      case "external":
        if (tpm.socket === undefined) throw new PathError("tpm external", "missing <source path=...> socket");
        return [ruleOf("tpm-socket")(absolute(tpm.socket, "tpm external socket"), "rw", "tpm external socket")];
      default:
        return [];
    }
  });

/**
 * The swtpm paths as qemu_tpm.c builds them (the guest's profile covers swtpm too: libvirt runs
 * it under the same label). The state directory itself is read (swtpm fsyncs it) and everything
 * below it read-write-lock. Socket and pid file are named after `<id>-<shortname>`, so they can
 * only be named when the XML carries the runtime id (prepare/start XML always does).
 */
function emulatorRules(domain: Domain, tpm: Tpm, layout: Layout): OriginRule[] {
  const rule = ruleOf("tpm-emulator");
  const stateDir = `${layout.swtpmStorageDir}/${domain.uuid}/${tpmStateSubdir(tpm.version)}`;
  const logName = requireFileNameComponent(`${domain.name}-swtpm.log`, "domain name", "tpm emulator log");
  const rules = [
    rule(stateDir, "r", "tpm emulator state", "/"),
    rule(stateDir, "rwk", "tpm emulator state", "/**"),
    rule(`${layout.swtpmLogDir}/${logName}`, "rw", "tpm emulator log"),
  ];
  const stem = domainShortName(domain);
  if (stem !== undefined) {
    const file = requireFileNameComponent(`${stem}-swtpm`, "domain name", "tpm emulator socket");
    rules.unshift(rule(`${layout.swtpmStateDir}/${file}.sock`, "rw", "tpm emulator socket"));
    rules.push(rule(`${layout.swtpmStateDir}/${file}.pid`, "rw", "tpm emulator pid"));
  }
  return rules;
}

/** `tpm2` for TPM 2.0 (libvirt's default when the XML gives no version), `tpm1.2` for 1.2. */
export function tpmStateSubdir(version: string | undefined): string {
  switch (version ?? "2.0") {
    case "2.0":
      return "tpm2";
    case "1.2":
      return "tpm1.2";
    default:
      throw new PathError(`tpm version ${version}`, "unsupported TPM version (expected 1.2 or 2.0)");
  }
}

/**
 * A host TPM: the device and its sysfs `cancel` file, found as libvirt's virTPMCreateCancelPath
 * does (class `misc` first, then `tpm`, by the device's basename). With neither present libvirt
 * passes /dev/null as the cancel path, which needs no rule of ours.
 */
function passthroughRules(fs: HostFs, tpm: Tpm): OriginRule[] {
  const device = absolute(tpm.devicePath ?? DEFAULT_TPM_DEVICE, "tpm passthrough device");
  const name = requireFileNameComponent(path.posix.basename(device), "TPM device name", "tpm passthrough device");
  // Bound to the TPM it resolved: the policy grants this origin only that TPM's cancel file.
  const rule = ruleOf("tpm-passthrough", name);
  const rules = [rule(device, "rw", "tpm passthrough device")];
  const cancel = ["misc", "tpm"]
    .map((cls) => `${fs.layout.sysfsClassDir}/${cls}/${name}/device/cancel`)
    .find((candidate) => exists(fs, candidate));
  if (cancel !== undefined) rules.push(rule(cancel, "rw", "tpm passthrough cancel"));
  return rules;
}
