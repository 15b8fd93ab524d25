/**
 * One kernel AppArmor audit line → an AuditRecord. Works on every form the line reaches a log in:
 * dmesg (`[  51.29] audit: type=1400 audit(1796465953.412:16): apparmor="DENIED" ...`), kern.log
 * and syslog (a syslog prefix before that), the journal's MESSAGE, and auditd's audit.log
 * (`type=AVC msg=audit(1796465953.412:16): apparmor="DENIED" ...`).
 *
 * The fields are the kernel's `key=value` pairs. A string the kernel does not trust is written by
 * audit_log_untrustedstring (linux kernel/audit.c, audit_log_n_untrustedstring): in double quotes
 * when it is plain, else, when it contains `"`, a space, a control character or a byte above 0x7e
 * (audit_string_contains_control), as upper-case hex without quotes (audit_log_n_hex). So a path a
 * guest chooses can never break out of its field: a quote or a space in it turns it into hex. The
 * decoded bytes are untrusted all the same: they only ever become escaped text (display.ts).
 */

/** One AppArmor decision the kernel logged for a confined process. */
export interface AuditRecord {
  /** "DENIED" (enforce) or "ALLOWED" (complain mode: what enforce would deny). */
  decision: "DENIED" | "ALLOWED";
  /** Seconds since the epoch with milliseconds, from `audit(SECONDS.MS:SERIAL)`; undefined if the line has none. */
  time?: number;
  /** The audit serial: with `time`, what identifies one event across logs. */
  serial?: number;
  operation: string;
  /** The confining profile (label), decoded. */
  profile: string;
  /** The object: a file path for file operations; absent for e.g. `capable`. Raw bytes, decoded. */
  name?: Buffer;
  /** `requested_mask`/`denied_mask` as AppArmor file permission letters (see permsOfMask). */
  requested?: string;
  denied?: string;
  comm?: Buffer;
  pid?: number;
  /** `capname` for capability denials. */
  capname?: string;
}

/** Fields the kernel writes with audit_log_untrustedstring: quoted, or hex when not plain. */
const UNTRUSTED_STRING_FIELDS = new Set(["name", "comm", "profile", "target", "peer", "label", "peer_label", "exe", "srcname"]);

/**
 * key=value pairs: a quoted value has no `"` inside (the kernel hex-encodes such strings); an
 * unquoted one runs to the next blank. auditd's enriched format appends `\x1d`-separated fields,
 * which stop a value as a blank does.
 */
const FIELD = /(?:^|[\s\x1d])([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"]*)"|([^\s"\x1d]*))/g;
const STAMP = /audit\((\d{1,12})(?:\.(\d{1,9}))?:(\d{1,20})\)/;
const HEX = /^(?:[0-9A-F]{2})+$/;

/** The record in `line`, or undefined when it is no AppArmor DENIED/ALLOWED line. */
export function parseAuditLine(line: string): AuditRecord | undefined {
  const at = line.indexOf("apparmor=");
  if (at < 0) return undefined;
  const fields = new Map<string, Buffer>();
  const raw = new Map<string, string>();
  for (const m of line.slice(at === 0 ? 0 : at - 1).matchAll(FIELD)) {
    const key = m[1]!;
    if (fields.has(key)) continue; // the kernel's own field comes first; later ones are not its
    const quoted = m[2];
    const bare = m[3] ?? "";
    raw.set(key, quoted ?? bare);
    fields.set(key, quoted !== undefined ? Buffer.from(quoted, "latin1") : UNTRUSTED_STRING_FIELDS.has(key) && HEX.test(bare) ? Buffer.from(bare, "hex") : Buffer.from(bare, "latin1"));
  }
  const decision = raw.get("apparmor");
  if (decision !== "DENIED" && decision !== "ALLOWED") return undefined;
  const profile = fields.get("profile");
  const operation = raw.get("operation");
  if (profile === undefined || operation === undefined) return undefined;
  const stamp = STAMP.exec(line.slice(0, at));
  const rec: AuditRecord = { decision, operation, profile: profile.toString("latin1") };
  if (stamp) {
    rec.time = Number(stamp[1]) + Number(`0.${stamp[2] ?? "0"}`);
    rec.serial = Number(stamp[3]);
  }
  const name = fields.get("name");
  if (name !== undefined) rec.name = name;
  const requested = raw.get("requested_mask");
  if (requested !== undefined) rec.requested = permsOfMask(requested);
  const denied = raw.get("denied_mask");
  if (denied !== undefined) rec.denied = permsOfMask(denied);
  const comm = fields.get("comm");
  if (comm !== undefined) rec.comm = comm;
  const pid = raw.get("pid");
  if (pid !== undefined && /^\d{1,10}$/.test(pid)) rec.pid = Number(pid);
  const capname = raw.get("capname");
  if (capname !== undefined && /^[a-z_]{1,40}$/.test(capname)) rec.capname = capname;
  return rec;
}

/**
 * The kernel's file permission letters (linux security/apparmor/lib.c aa_file_perm_chrs
 * "xwracd         km l", printed by file.c audit_file_mask) as a profile's: `c` (create) and `d`
 * (delete) are granted by a rule's `w`, so they read as `w`; old kernels wrote the owner/other
 * split as `r::`/`::r`, whose colons are dropped. Result in AppArmor's order, no duplicates.
 */
export function permsOfMask(mask: string): string {
  const letters = new Set<string>();
  for (const c of mask) {
    if (c === ":") continue;
    letters.add(c === "c" || c === "d" ? "w" : c);
  }
  const order = "rwalkmx";
  return [...letters].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b)).join("");
}

/** The UUID of one of our guest profiles (`libvirt-<canonical uuid>`, also a child `libvirt-<uuid>//...`), else undefined. */
export function guestUuidOf(profile: string): string | undefined {
  const m = /^libvirt-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\/\/.*)?$/.exec(profile);
  return m ? m[1] : undefined;
}
