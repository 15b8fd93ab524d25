import type { CommandModule } from "yargs";
import { detectEnvironment, Parser } from "../../apparmor/index.js";
import { runningGuests, type Confinement } from "../../doctor/confinement.js";
import { displayName } from "../../doctor/display.js";
import { activeUuids } from "../../doctor/in-use.js";
import { loadForCommand } from "../config.js";
import type { Config } from "../../config.js";
import { helperProblems } from "../../install/divert.js";
import type { Layout } from "../../layout.js";
import { listDefined } from "../../adopted/defined.js";
import { guestUuidsOnDisk, readGuestFiles, standing, type GuestFiles, type Standing } from "../../store/leftovers.js";
import { collectStatus, guestStatus, type GuestStatus } from "../../store/status.js";

interface StatusArgs {
  root: string;
  json: boolean;
  all: boolean;
}

/** A status row: a guest we manage, or a running guest we do not (profile fields absent). */
export interface StatusRow extends Partial<GuestStatus> {
  name: string;
  /** What its QEMU runs as now (docs: confinement.ts), or "not running". */
  qemu: Confinement | "not running";
  /** The kernel's label of its QEMU, when it runs. */
  qemuLabel?: string;
  /** With --all, for guests we have files of (store/leftovers.ts Standing). */
  standing?: Standing;
}

/**
 * The UUIDs libvirt defines (its /etc/libvirt/qemu/*.xml, read as files: no virsh) and those that
 * run or are being started (doctor/in-use.ts: never shown as orphaned inside their start window).
 */
export function domainUuids(layout: Layout, guests: readonly GuestFiles[]): { defined: Set<string>; running: Set<string> } {
  return { defined: new Set(listDefined(layout).map((d) => d.uuid)), running: activeUuids(layout, guests, Date.now()) };
}

/**
 * The rows: every guest we hold a record of and every running guest; with `all`, also the
 * profiles left without a record (kept: the domain is still defined; orphaned: it is not), and
 * each of ours with where it stands. `hidden` counts the kept and orphaned ones left out without `all`.
 */
export function statusRows(
  layout: Layout,
  loadedMode: (profile: string) => string | null | undefined,
  opts: { all?: boolean } = {},
): StatusRow[] & { hidden?: number } {
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
  const onDisk = guestUuidsOnDisk(layout).map((uuid) => readGuestFiles(layout, uuid));
  const domains = domainUuids(layout, onDisk);
  const ours = new Set(managed.map((g) => g.uuid));
  const extra: StatusRow[] = [];
  for (const g of onDisk) {
    const { uuid } = g;
    if (ours.has(uuid)) continue;
    const where = standing(uuid, false, domains.defined, domains.running);
    // A running guest without our record is already a row of its own.
    if (where === "running") continue;
    const name = g.kept?.name ?? listDefinedName(layout, uuid) ?? "-";
    extra.push({ ...guestStatus(g, loadedMode), name, qemu: "not running", standing: where });
  }
  const sorted = (list: StatusRow[]) => list.sort((a, b) => a.name.localeCompare(b.name) || (a.uuid ?? "").localeCompare(b.uuid ?? ""));
  if (!opts.all) return Object.assign(sorted(rows), { hidden: extra.length });
  for (const r of rows) {
    if (r.profile !== undefined && r.uuid !== undefined) r.standing = standing(r.uuid, true, domains.defined, domains.running);
  }
  return sorted([...rows, ...extra]);
}

function listDefinedName(layout: Layout, uuid: string): string | undefined {
  return listDefined(layout).find((d) => d.uuid === uuid)?.name;
}

/** How we load it and what set it: "complain (metadata)", "enforce (config)"; the profile's own complain flag wins. */
function loadedAsText(r: StatusRow): string {
  if (r.profileComplain) return "complain (profile flags)";
  if (r.loadedAs === undefined) return "-";
  return r.modeFrom === undefined ? r.loadedAs : `${r.loadedAs} (${r.modeFrom === "ignored" ? "metadata ignored" : r.modeFrom})`;
}

/** Human-readable table, one guest per line; names with invisible characters escaped. */
export function formatStatusRows(rows: StatusRow[] & { hidden?: number }): string {
  const hidden = rows.hidden ?? 0;
  const more = hidden > 0 ? `${hidden} profile(s) of stopped or undefined guests not listed: virt-aa-hook status --all\n` : "";
  if (rows.length === 0) return (hidden > 0 ? "no guest running or managed by virt-aa-hook\n" : "no guests managed by virt-aa-hook, none running\n") + more;
  const withStanding = rows.some((r) => r.standing !== undefined);
  const header = ["GUEST", ...(withStanding ? ["STANDING"] : []), "QEMU", "PROFILE", "LOADED", "AS", "PROFILE FILE", ".FILES"];
  const body = rows.map((r) => [
    displayName(r.name),
    ...(withStanding ? [r.standing ?? "-"] : []),
    r.qemu,
    r.profile ?? "-",
    r.loaded ?? "-",
    loadedAsText(r),
    r.profileOrigin ?? "-",
    r.profile === undefined ? "-" : r.filesExists ? (r.filesModified ? "edited" : "ok") : "missing",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ") + "\n";
  return line(header) + body.map(line).join("") + more;
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
      "List the guests virt-aa-hook manages and every running guest: what their QEMU runs as (confined / by libvirt / complain / unconfined), profile files, loaded or not; PROFILE FILE says pristine (as virt-aa-hook wrote it), edited (virt-aa-hook wrote it, its sha256 changed since: the admin's now, never removed), admin (never virt-aa-hook's) or missing; AS says complain (profile flags) when the profile's header has flags=(complain)",
    builder: (y) =>
      y
        .option("json", { type: "boolean", default: false, describe: "print a JSON array" })
        .option("all", {
          type: "boolean",
          default: false,
          describe:
            "also list the profiles of guests without a record: kept (the domain is defined and stopped; release kept its edited profile) and orphaned (no defined domain has the UUID: virt-aa-hook prune removes them), with a STANDING column",
        }),
    handler: (args) => {
      const { layout, config } = loadForCommand(args.root);
      const parser = new Parser(layout.parser, detectEnvironment(layout));
      const rows = statusRows(layout, (name) => parser.loadedMode(name), { all: args.all });
      // JSON stays the array of rows (scripts read it); the text says the mode first.
      process.stdout.write(args.json ? JSON.stringify(rows, null, 2) + "\n" : attachModeLine(config, layout) + formatStatusRows(rows));
    },
  };
}
