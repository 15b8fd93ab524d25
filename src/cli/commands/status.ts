import type { CommandModule } from "yargs";
import { detectEnvironment, Parser } from "../../apparmor/index.js";
import { runningGuests, type Confinement } from "../../doctor/confinement.js";
import { displayName } from "../../doctor/display.js";
import { loadForCommand } from "../config.js";
import type { Config } from "../../config.js";
import { helperProblems } from "../../install/divert.js";
import type { Layout } from "../../layout.js";
import { collectStatus, type GuestStatus } from "../../store/status.js";

interface StatusArgs {
  root: string;
  json: boolean;
}

/** A status row: a guest we manage, or a running guest we do not (profile fields absent). */
export interface StatusRow extends Partial<GuestStatus> {
  name: string;
  /** What its QEMU runs as now (docs: confinement.ts), or "not running". */
  qemu: Confinement | "not running";
  /** The kernel's label of its QEMU, when it runs. */
  qemuLabel?: string;
}

export function statusRows(layout: Layout, loadedMode: (profile: string) => string | null | undefined): StatusRow[] {
  const managed = collectStatus(layout, loadedMode);
  const running = runningGuests(layout);
  const rows: StatusRow[] = managed.map((g) => {
    const r = running.find((x) => x.name === g.name && (x.uuid === undefined || x.uuid === g.uuid));
    return { ...g, qemu: r ? r.confinement : "not running", ...(r?.label !== undefined ? { qemuLabel: r.label } : {}) };
  });
  for (const r of running) {
    if (managed.some((g) => g.name === r.name && (r.uuid === undefined || r.uuid === g.uuid))) continue;
    rows.push({ name: r.name, ...(r.uuid ? { uuid: r.uuid } : {}), qemu: r.confinement, ...(r.label !== undefined ? { qemuLabel: r.label } : {}) });
  }
  return rows.sort((a, b) => a.name.localeCompare(b.name) || (a.uuid ?? "").localeCompare(b.uuid ?? ""));
}

/** Human-readable table, one guest per line; names with invisible characters escaped. */
export function formatStatusRows(rows: StatusRow[]): string {
  if (rows.length === 0) return "no guests managed by virt-aa-hook, none running\n";
  const header = ["GUEST", "QEMU", "PROFILE", "LOADED", "AS", "PROFILE FILE", ".FILES"];
  const body = rows.map((r) => [
    displayName(r.name),
    r.qemu,
    r.profile ?? "-",
    r.loaded ?? "-",
    // The mode we loaded it in, and what set it: "complain (metadata)", "enforce (config)".
    r.loadedAs === undefined ? "-" : r.modeFrom === undefined ? r.loadedAs : `${r.loadedAs} (${r.modeFrom === "ignored" ? "metadata ignored" : r.modeFrom})`,
    r.profileOrigin ?? "-",
    r.profile === undefined ? "-" : r.filesExists ? (r.filesModified ? "modified" : "ok") : "missing",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ") + "\n";
  return line(header) + body.map(line).join("");
}

/** The first line of the text status: the attach mode in effect and how it puts QEMU into its profile. */
export function attachModeLine(config: Pick<Config, "attach">, layout: Layout): string {
  switch (config.attach) {
    case "helper": {
      const problems = helperProblems(layout);
      return (
        `attach = "helper": libvirt's AppArmor driver labels guests dynamically and runs virt-aa-hook's virt-aa-helper (${layout.libvirtHelper} -> ${layout.helperLauncher})` +
        (problems.length > 0 ? `; NOT in place: ${problems.join("; ")} (virt-aa-hook doctor)` : "") +
        "\n"
      );
    }
    case "seclabel":
      return `attach = "seclabel": adopted domains carry the static label libvirt-<uuid>; libvirt's AppArmor driver makes the transition\n`;
    case "wrapper":
      return `attach = "wrapper": adopted domains run QEMU through virt-aa-hook's emulator wrapper (${layout.wrapperDir})\n`;
    case "none":
      return `attach = "none": virt-aa-hook puts no guest's QEMU into its profile\n`;
  }
}

/** `virt-aa-hook status [--json]`: the guests we manage and every running guest, and what confines each QEMU. */
export function statusCommand(): CommandModule<{ root: string }, StatusArgs> {
  return {
    command: "status",
    describe:
      "List the guests virt-aa-hook manages and every running guest: what their QEMU runs as (confined / by libvirt / complain / unconfined), profile files, loaded or not, edited or pristine",
    builder: (y) => y.option("json", { type: "boolean", default: false, describe: "print a JSON array" }),
    handler: (args) => {
      const { layout, config } = loadForCommand(args.root);
      const parser = new Parser(layout.parser, detectEnvironment(layout));
      const rows = statusRows(layout, (name) => parser.loadedMode(name));
      // JSON stays the array of rows (scripts read it); the text says the mode first.
      process.stdout.write(args.json ? JSON.stringify(rows, null, 2) + "\n" : attachModeLine(config, layout) + formatStatusRows(rows));
    },
  };
}
