import type { OriginRule } from "../ir.js";
import type { RuleContext, RuleFamily } from "./context.js";
import { chardevRules } from "./chardevs.js";
import { filesystemRules } from "./filesystems.js";
import { firmwareRules } from "./firmware.js";
import { graphicsRules, videoRules } from "./graphics.js";
import { hostdevRules, nvmeDiskRules } from "./hostdevs.js";
import { inputRules } from "./inputs.js";
import { memoryDeviceRules, shmemRules } from "./memory.js";
import { interfaceRules, vsockRules } from "./network.js";
import { rngRules } from "./rng.js";
import { launchSecurityRules } from "./security.js";
import { diskRules } from "./storage.js";
import { tpmRules } from "./tpm.js";
import { runtimeRules } from "./runtime.js";
import { tlsRules } from "./tls.js";
import { metadataRules } from "./metadata.js";
import { sgxRules } from "./sgx.js";
import { pstoreRules } from "./pstore.js";
import { smartcardRules } from "./smartcard.js";
import { dbusDisplayRules } from "./dbus.js";

/**
 * Every device family, in the order their rules appear in the `.files`. Each family lives in its
 * own module; adding a family means adding it here.
 */
const FAMILIES: RuleFamily[] = [
  // storage, boot and consoles
  diskRules,
  filesystemRules,
  firmwareRules,
  chardevRules,
  // devices
  nvmeDiskRules,
  graphicsRules,
  dbusDisplayRules,
  videoRules,
  inputRules,
  interfaceRules,
  vsockRules,
  rngRules,
  shmemRules,
  memoryDeviceRules,
  sgxRules,
  pstoreRules,
  smartcardRules,
  tpmRules,
  launchSecurityRules,
  hostdevRules,
  // TLS certificates qemu.conf gives the devices above
  tlsRules,
  // per-guest runtime paths last: they depend on the guest, not on its devices
  runtimeRules,
  // what the admin pre-authorised in the domain's <metadata>, after everything the devices need
  metadataRules,
];

/** Domain → raw rules (not yet canonicalised, policy-checked or deduplicated: see pipeline). */
export function deriveRules(ctx: RuleContext): OriginRule[] {
  return FAMILIES.flatMap((family) => family(ctx));
}
