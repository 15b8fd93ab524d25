/**
 * Who writes and loads a guest's `libvirt-<uuid>` and `.files`: virt-aa-hook, or libvirt's own
 * AppArmor driver. With `security_driver = "apparmor"` libvirt labels every domain that does not
 * carry a static label itself, and its helper (virt-aa-helper) writes and loads exactly the files
 * this hook writes. So a domain that was never adopted (no static label `libvirt-<uuid>`) is left
 * to libvirt there: the hook neither writes nor loads its profile, and libvirt confines it with
 * its own generator. Adopted domains (and every domain in wrapper mode, or when libvirt's driver
 * is not AppArmor) are the hook's. Refusing unadopted domains (`require_attach = "yes"`) happens
 * in the prepare path before this is asked.
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
