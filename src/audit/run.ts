/**
 * `virt-aa-hook denials`: read the sources, keep the guests' decisions, explain them, print.
 * Decide first (records → findings, map.ts), then print; following reads on until a signal.
 */
import { ExitError, formatLine } from "../errors.js";
import type { Layout } from "../layout.js";
import { canonicalUuid } from "../names.js";
import { visible } from "./display.js";
import { findingJson, findingText } from "./format.js";
import { guestFacts } from "./guests.js";
import { groupRecords, mapDenials, type GuestFacts } from "./map.js";
import { guestUuidOf, parseAuditLine, type AuditRecord } from "./parse.js";
import { chooseSources, eventKey, type Source } from "./sources.js";

export interface DenialsOptions {
  layout: Layout;
  /** Only this guest (a name, or a UUID). */
  name?: string;
  /** Epoch seconds: nothing older. */
  since?: number;
  follow: boolean;
  json: boolean;
  write: (text: string) => void;
}

export async function runDenials(opts: DenialsOptions): Promise<void> {
  const sources = chooseSources(opts.layout);
  if (sources.length === 0) {
    throw new ExitError(
      1,
      formatLine("error", "cannot read the kernel's audit lines", "none of /var/log/audit/audit.log, the journal (journalctl), /var/log/kern.log, /var/log/syslog, dmesg is there; see docs/denials.md"),
    );
  }
  const seen = new Set<string>();
  // Followers start before the backlog is read, so nothing falls between the two; what both
  // see is dropped by its event key.
  const pending: string[] = [];
  let onLive: ((line: string) => void) | undefined;
  let ended: ((why: string) => void) | undefined;
  const stops = opts.follow ? sources.map((s) => s.follow((line) => (onLive ? onLive(line) : pending.push(line)), (why) => ended?.(why || `${s.label} ended`))) : [];

  const records: AuditRecord[] = [];
  for (const source of sources) {
    let lines: string[];
    try {
      lines = await source.read(opts.since);
    } catch (err) {
      stops.forEach((stop) => stop());
      throw new ExitError(1, formatLine("error", `cannot read ${source.label}`, (err as Error).message));
    }
    for (const line of lines) {
      const r = keep(parseAuditLine(line), seen, opts.since);
      if (r !== undefined) records.push(r);
    }
  }
  records.sort((a, b) => (a.time ?? Infinity) - (b.time ?? Infinity));

  const uuids = new Set(records.map((r) => guestUuidOf(r.profile)).filter((u): u is string => u !== undefined));
  let { facts, byName } = guestFacts(opts.layout, uuids);
  const targets = opts.name === undefined ? undefined : targetUuids(opts.name, byName, facts);
  const ours = (r: AuditRecord) => {
    const uuid = guestUuidOf(r.profile);
    return uuid !== undefined && (targets === undefined || targets.has(uuid));
  };
  const print = (findings: ReturnType<typeof mapDenials>) => {
    for (const f of findings) opts.write(opts.json ? `${findingJson(f)}\n` : findingText(f));
  };

  const findings = mapDenials(groupRecords(records.filter(ours)), facts);
  print(findings);
  if (findings.length === 0 && !opts.json) opts.write(nothingLine(opts, sources));
  if (!opts.follow) return;

  await new Promise<void>((resolve, reject) => {
    const finish = (err?: ExitError) => {
      stops.forEach((stop) => stop());
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      if (err) reject(err);
      else resolve();
    };
    const onSignal = () => finish();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    ended = (why) => finish(new ExitError(1, formatLine("error", "cannot follow the kernel's audit lines", why)));
    onLive = (line) => {
      const r = keep(parseAuditLine(line), seen, opts.since);
      if (r === undefined || !ours(r)) return;
      const uuid = guestUuidOf(r.profile)!;
      if (!facts.has(uuid)) ({ facts, byName } = guestFacts(opts.layout, new Set([uuid])));
      print(mapDenials(groupRecords([r]), facts));
    };
    for (const line of pending.splice(0)) onLive(line);
  });
}

/** The record, unless it is none, older than `since`, or an event already seen in another source. */
function keep(r: AuditRecord | undefined, seen: Set<string>, since: number | undefined): AuditRecord | undefined {
  if (r === undefined) return undefined;
  // A line without the kernel's stamp cannot be placed in time: with --since it is left out.
  if (since !== undefined && (r.time === undefined || r.time < since)) return undefined;
  const key = eventKey(r.time, r.serial);
  if (key !== undefined) {
    if (seen.has(key)) return undefined;
    seen.add(key);
  }
  return r;
}

/** The UUIDs NAME stands for: a guest of that name (a renamed or re-created guest may have had several), or a UUID. */
function targetUuids(name: string, byName: ReadonlyMap<string, string[]>, facts: ReadonlyMap<string, GuestFacts>): Set<string> {
  const uuids = new Set(byName.get(name) ?? []);
  const asUuid = canonicalUuid(name);
  if (asUuid !== undefined) uuids.add(asUuid);
  if (uuids.size === 0 && !facts.has(name)) {
    throw new ExitError(
      1,
      formatLine("error", `cannot find guest ${visible(name)}`, "no running domain, definition, state record or kept profile has that name; give its UUID, or run `virt-aa-hook denials` for every guest"),
    );
  }
  return uuids;
}

function nothingLine(opts: DenialsOptions, sources: readonly Source[]): string {
  const whose = opts.name === undefined ? "of any guest profile" : `for ${visible(opts.name)}`;
  const since = opts.since === undefined ? "" : ` since ${new Date(opts.since * 1000).toISOString()}`;
  return `no AppArmor denials ${whose} in ${sources.map((s) => s.label).join(", ")}${since}\n`;
}
