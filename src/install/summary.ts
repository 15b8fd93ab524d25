/**
 * The installer's last words: what is confined on this host and what is not, and why. Read from
 * the installed config, qemu.conf, the kernel and libvirt's files under the layout.
 */
import fs from "node:fs";
import { listDefined } from "../adopted/defined.js";
import { adoptionProblem, attachFacts } from "../attach/index.js";
import type { Config } from "../config.js";
import { runningGuests } from "../doctor/confinement.js";
import { displayName, shellQuote } from "../doctor/display.js";
import type { Layout } from "../layout.js";
import { helperDivertable, helperProblems } from "./divert.js";
import { chooseAttach, readSecurityDriver } from "./host.js";

/** `layout`: the one `config` makes (Layout.from). */
export function summaryLines(layout: Layout, config: Config, opts: { configWritten: boolean }): string[] {
  const lines: string[] = [];
  const driver = readSecurityDriver(layout);
  const choice = chooseAttach(driver, helperDivertable(layout));
  const conf = `${layout.configPath}: attach = "${config.attach}", started_check = "${config.startedCheck}"`;
  if (opts.configWritten) lines.push(`${conf} (chosen for this host: ${choice.reason})`);
  else if (config.attach !== choice.attach) lines.push(`${conf} (kept as it was; this host suggests: ${choice.reason})`);
  else lines.push(`${conf} (kept as it was)`);

  if (!driver.kernelAppArmor) {
    lines.push(`NOT confined: this kernel has no AppArmor (${layout.apparmorEnabledFile}): no guest is confined until the host boots with AppArmor`);
  }
  if (config.attach === "none") {
    lines.push(
      driver.effective === "apparmor"
        ? `attach = "none": every guest is left to libvirt's own AppArmor driver (${driver.describe}); virt-aa-hook confines none`
        : `NOT confined: attach = "none" and ${driver.describe}: nothing puts QEMU into a profile`,
    );
  } else if (config.attach === "seclabel" && driver.effective !== "apparmor") {
    lines.push(`NOT confined: attach = "seclabel" needs libvirt's AppArmor driver, but ${driver.describe}`);
  } else if (config.attach === "wrapper" && driver.effective === "apparmor") {
    lines.push(`NOT confined by virt-aa-hook: attach = "wrapper" needs security_driver = "none", but ${driver.describe}`);
  } else if (config.attach === "helper") {
    const problems = helperProblems(layout);
    if (driver.effective !== "apparmor") lines.push(`NOT confined: attach = "helper" needs libvirt's AppArmor driver, but ${driver.describe}`);
    else if (problems.length > 0) lines.push(`NOT confined by virt-aa-hook: ${problems.join("; ")}`);
    else {
      lines.push(
        `helper mode: libvirt's AppArmor driver labels every guest dynamically and runs ${layout.libvirtHelper} -> ${layout.helperLauncher} (libvirt's own is ${layout.libvirtHelperReal}): ` +
          "virt-aa-hook writes and loads each guest's profile at start, hotplug, media change, snapshot, block job and restore; no domain needs adopting",
      );
    }
  }

  const defined = listDefined(layout);
  const running = runningGuests(layout);
  if (config.attach !== "none") {
    const adopted = defined.filter((d) => adoptionProblem(attachFacts(d.xml), config.attach, layout) === undefined).map((d) => displayName(d.name));
    const not = defined.filter((d) => adoptionProblem(attachFacts(d.xml), config.attach, layout) !== undefined);
    const helper = config.attach === "helper";
    if (adopted.length > 0) {
      lines.push(helper ? `labelled dynamically (confined by virt-aa-hook through libvirt's driver from their next start): ${adopted.join(", ")}` : `adopted (confined by virt-aa-hook from their next start): ${adopted.join(", ")}`);
    }
    if (not.length > 0) {
      const names = not.map((d) => displayName(d.name)).join(", ");
      const fix = not.length === 1 ? `virt-aa-hook adopt ${shellQuote(not[0]!.name)}` : "virt-aa-hook adopt --all";
      lines.push(
        helper
          ? `not labelled dynamically (libvirt runs no virt-aa-helper for them: a static label or <seclabel type='none'/>): ${names}; fix: ${fix}`
          : config.attach === "seclabel" && driver.effective === "apparmor" && !config.requireAttach
            ? `not adopted (left to libvirt's own AppArmor driver): ${names}; to confine them with virt-aa-hook: ${fix}`
            : `NOT confined (not adopted): ${names}; fix: ${fix}`,
      );
    }
    if (defined.length === 0) {
      lines.push(helper ? "no domain is defined yet: new domains are confined from their first start" : "no domain is defined yet: adopt new domains with virt-aa-hook adopt NAME");
    }
  }
  for (const r of running) {
    const what =
      r.confinement === "confined" || r.confinement === "by libvirt"
        ? `running, ${r.confinement}`
        : `running NOT confined (${r.confinement}${r.label !== undefined ? `: ${displayName(r.label)}` : ""}): restart it (virsh destroy/start) once adopted`;
    lines.push(`${displayName(r.name)}: ${what}`);
  }

  lines.push(
    layout.template === layout.derivedTemplate
      ? `NVRAM: profiles created from ${layout.derivedTemplate} let each guest open only its own NVRAM`
      : `NVRAM: template = ${layout.template} (not ${layout.derivedTemplate}): guests may open each other's NVRAM in ${layout.libvirtNvramDir}`,
  );
  if (config.attach === "seclabel") {
    lines.push(
      fs.existsSync(layout.host(layout.libvirtdDropIn))
        ? `at boot: libvirtd.service runs virt-aa-hook load-adopted first (${layout.libvirtdDropIn})`
        : "at boot: no systemd drop-in: run virt-aa-hook load-adopted before libvirtd starts, or libvirt drops adopted domains",
    );
  }
  return lines;
}
