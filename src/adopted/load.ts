/**
 * `virt-aa-hook load-adopted`: make the kernel hold the profile of every domain defined with our
 * static label, and forget the kept profiles of domains that are gone.
 *
 * Why: with attach = "seclabel", libvirt's AppArmor driver checks that a static label's profile is
 * loaded whenever it parses the domain — at every libvirtd start (it re-reads /etc/libvirt/qemu),
 * `virsh define` and `virsh edit` — and drops or refuses the domain when it is not. The kernel
 * forgets every profile at reboot, so this runs at boot before libvirtd (a systemd drop-in for
 * libvirtd.service, `ExecStartPre=-/usr/sbin/virt-aa-hook load-adopted`, installed by install.sh).
 * `release` keeps such profiles loaded when the guest stops (hook/release.ts).
 *
 * Cleanup: a record of ours whose domain is neither defined with our label (same UUID) nor active
 * (libvirt's status XML or a live pid file) is released as `release` would: unloaded, `.files`,
 * cache and record removed, the profile removed if pristine. That is how a kept profile goes away
 * after `virsh undefine` (libvirt runs no hook for undefine) or `adopt --undo`.
 */
import { definedWithOurLabel, isActive, listDefined } from "./defined.js";
import type { Config } from "../config.js";
import { errorLine, formatLine, type Warning } from "../errors.js";
import { HookLog } from "../hook/log.js";
import { releaseIdentified } from "../hook/release.js";
import { syncProfile } from "../hook/sync.js";
import type { HookContext } from "../hook/context.js";
import type { Layout } from "../layout.js";
import { listStates } from "../store/state.js";
import { displayName } from "../doctor/display.js";

export interface LoadOutcome {
  loaded: string[];
  failed: string[];
  removed: string[];
}

/** `layout`: the configured one (Layout.from(root, config)), so the log and profiles are where `config` says. */
export async function loadAdopted(
  layout: Layout,
  config: Config,
  out: (line: string) => void,
  opts: { releaseOnly?: boolean } = {},
): Promise<LoadOutcome> {
  const outcome: LoadOutcome = { loaded: [], failed: [], removed: [] };
  const log = new HookLog(layout.logFile === "" ? undefined : layout.host(layout.logFile), config.logLevel);
  const ctxFor = (guest: string): HookContext => ({ layout, config, guest, op: "load-adopted", warnings: [] });
  // What an operation noted: on stderr when meant for it, else in the log (hook/run.ts does the same).
  const report = (guest: string, warnings: readonly Warning[]) => {
    for (const w of warnings) {
      if (w.stderr) process.stderr.write(formatLine("warning", displayName(guest), w.path, w.reason) + "\n");
      else log.warning(guest, "load-adopted", w);
    }
  };

  const adopted = listDefined(layout).filter((d) => d.ourLabel);
  if (opts.releaseOnly) {
    // uninstall.sh: nothing new is loaded, only what is no longer needed is released.
  } else if (config.mode === "off") {
    out(`mode = "off": ${adopted.length} adopted domain(s) not loaded`);
  } else {
    for (const d of adopted) {
      const started = process.hrtime.bigint();
      const ctx = ctxFor(d.name);
      try {
        const r = await syncProfile(ctx, Buffer.from(d.xml, "utf8"), "if-not-loaded");
        report(d.name, ctx.warnings);
        out(`${displayName(d.name)}: ${r.profileName}: ${r.summary}`);
        log.summary(d.name, "load-adopted", 0, Number(process.hrtime.bigint() - started) / 1e6, `${r.profileName}: ${r.summary}`);
        outcome.loaded.push(d.name);
      } catch (err) {
        report(d.name, ctx.warnings);
        const line = errorLine(d.name, err);
        process.stderr.write(line + "\n");
        log.summary(d.name, "load-adopted", 1, Number(process.hrtime.bigint() - started) / 1e6, line);
        outcome.failed.push(d.name);
      }
    }
  }

  for (const s of listStates(layout.host(layout.stateDir))) {
    if (definedWithOurLabel(layout, s.name, s.uuid) || isActive(layout, s.name, s.uuid)) continue;
    const r = await releaseIdentified(ctxFor(s.name), { uuid: s.uuid, name: s.name }, { keepIfDefined: false });
    out(`${displayName(s.name)}: ${s.profileName}: no longer defined with its label nor running: ${r.summary}`);
    report(s.name, r.warnings);
    log.summary(s.name, "load-adopted", 0, 0, `released: ${r.summary}`);
    outcome.removed.push(s.name);
  }
  return outcome;
}
