import { ruleOf, type RuleContext, type RuleFamily } from "./context.js";

const rule = ruleOf("launch-security");

/** Launch-security types for which QEMU opens the AMD SEV firmware device. */
const SEV_TYPES = new Set(["sev", "sev-snp"]);

/** `<launchSecurity type='sev'|'sev-snp'>`: QEMU talks to the PSP through `/dev/sev`. */
export const launchSecurityRules: RuleFamily = (ctx: RuleContext) => {
  const type = ctx.domain.launchSecurity;
  return type !== undefined && SEV_TYPES.has(type) ? [rule("/dev/sev", "rw", `launchSecurity ${type}`)] : [];
};
