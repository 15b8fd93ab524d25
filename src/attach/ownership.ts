/**
 * Who writes and loads a guest's `libvirt-<uuid>` and `.files`: virt-aa-hook, or libvirt's own
 * AppArmor driver. With `security_driver = "apparmor"` libvirt labels every domain that does not
 * carry a static label itself, and its helper (virt-aa-helper) writes and loads exactly the files
 * this hook writes. So a domain that was never adopted (no static label `libvirt-<uuid>`) is left
 * to libvirt there: the hook neither writes nor loads its profile, and libvirt confines it with
 * its own generator. Adopted domains (and every domain in wrapper mode, or when libvirt's driver
 * is not AppArmor) are the hook's. Refusing unadopted domains (`require_attach = "yes"`) happens
 * in the prepare path before this is asked.
 *
 * In helper mode (`attach = "helper"`) libvirt's driver labels domains dynamically but the
 * generator it runs is ours (its virt-aa-helper diverted to virt-aa-hook's): every guest is the
 * hook's, none is left to libvirt. A domain libvirt does not label dynamically (a static label,
 * `<seclabel type='none'/>`) gets no virt-aa-helper call at all; the hook still writes and loads
 * its profile at prepare, and `require_attach` / `started_check` decide what happens to it
 * (hook/attach-check.ts).
 */
import type { Config } from "../config.js";
import { readSecurityDriver } from "../install/host.js";
import type { Layout } from "../layout.js";
import { attachFacts, hasOurStaticLabel } from "./index.js";

export type ProfileOwner = { owner: "hook" } | { owner: "libvirt"; reason: string };

export function profileOwner(layout: Layout, config: Pick<Config, "attach" | "requireAttach">, xml: Buffer | string): ProfileOwner {
  // require_attach = "yes": an unadopted domain is refused by the prepare path, never handed over.
  if (config.requireAttach) return { owner: "hook" };
  // Wrapper mode needs libvirt's driver off (doctor says so); the profile is always ours there.
  if (config.attach === "wrapper") return { owner: "hook" };
  // Helper mode: libvirt's driver runs our virt-aa-helper, so what it labels is ours too.
  if (config.attach === "helper") return { owner: "hook" };
  const driver = readSecurityDriver(layout);
  if (driver.effective !== "apparmor") return { owner: "hook" };
  let facts: ReturnType<typeof attachFacts>;
  try {
    facts = attachFacts(typeof xml === "string" ? xml : xml.toString("utf8"));
  } catch {
    // Not readable as a domain: the hook's own path rejects it with a located error.
    return { owner: "hook" };
  }
  if (hasOurStaticLabel(facts)) return { owner: "hook" };
  return {
    owner: "libvirt",
    reason: `left to libvirt's AppArmor driver (${driver.describe}): not adopted, no static label libvirt-${facts.uuid}`,
  };
}
