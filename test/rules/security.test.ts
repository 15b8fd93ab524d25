import { describe, expect, it } from "vitest";
import { launchSecurityRules as launchSecurityRulesWithOrigin } from "../../src/rules/security.js";
import { baseDomain, ruleContext, withoutOrigins } from "./fixtures.js";

// Origins are checked once per family in origins.test.ts; here rules are compared without them.
const launchSecurityRules = withoutOrigins(launchSecurityRulesWithOrigin);

const rules = (launchSecurity?: string) => launchSecurityRules(ruleContext(baseDomain(launchSecurity ? { launchSecurity } : {})));

describe("launch security", () => {
  it("grants /dev/sev to SEV and SEV-SNP guests only", () => {
    expect(rules("sev")).toEqual([{ path: "/dev/sev", suffix: "", perms: "rw", source: "launchSecurity sev" }]);
    expect(rules("sev-snp")).toEqual([{ path: "/dev/sev", suffix: "", perms: "rw", source: "launchSecurity sev-snp" }]);
    expect(rules("s390-pv")).toEqual([]);
    expect(rules()).toEqual([]);
  });
});
