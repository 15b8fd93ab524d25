/**
 * Where the kernel's AppArmor audit lines are, and reading them (docs/denials.md, "Sources").
 *
 * The kernel sends each audit record to auditd when auditd runs (then it is in
 * /var/log/audit/audit.log and, as a rule, not in the kernel log), else to the kernel log
 * (printk: dmesg, the journal's kernel transport, kern.log and syslog through rsyslog). So we read
 * audit.log when it is there, plus the first of: the journal, kern.log, syslog, dmesg. The same
 * event read twice (auditd started in between) is counted once: see `eventKey`.
 *
 * Files are read under `--root`. The programs are this machine's (journalctl, dmesg) by absolute
 * path, never PATH, found under the root; journalctl reads the root's journal (`--root`), dmesg
 * only the running kernel's, so it is used only with the root `/`.
 */
import fs from "node:fs";
import readline from "node:readline";
import type { Layout } from "../layout.js";
import { PROGRAM_ENV } from "../install/probes.js";

export type SourceKind = "audit.log" | "journal" | "kern.log" | "syslog" | "dmesg";

export interface Source {
  kind: SourceKind;
  /** How the admin would name it: the file, or the program line. */
  label: string;
  /** The lines that may be AppArmor decisions, from `since` (epoch seconds) where the source can skip older ones itself. */
  read(since?: number): Promise<string[]>;
  /** New lines as they come, until the returned function is called. */
  follow(onLine: (line: string) => void, onEnd: (why: string) => void): () => void;
}

/** Cheap pre-filter before the parser: every line the kernel writes for a decision has one of these. */
export function mayBeDecision(line: string): boolean {
  return line.includes('apparmor="DENIED"') || line.includes('apparmor="ALLOWED"');
}

const AUDIT_LOG = "/var/log/audit/audit.log";
const KERN_LOG = "/var/log/kern.log";
const SYSLOG = "/var/log/syslog";
const JOURNALCTLS = ["/usr/bin/journalctl", "/bin/journalctl"];
const DMESGS = ["/usr/bin/dmesg", "/bin/dmesg"];
/** How often a followed file is looked at. */
const POLL_MS = 500;

/** The sources this host has, in the order of preference above. */
export function chooseSources(layout: Layout): Source[] {
  const sources: Source[] = [];
  const isFile = (p: string) => fs.statSync(layout.host(p), { throwIfNoEntry: false })?.isFile() === true;
  if (isFile(AUDIT_LOG)) sources.push(fileSource("audit.log", AUDIT_LOG, layout));
  const journalctl = JOURNALCTLS.find((p) => isFile(p));
  const dmesg = DMESGS.find((p) => isFile(p));
  if (journalctl !== undefined && hasJournal(layout)) sources.push(journalSource(layout.host(journalctl), layout));
  else if (isFile(KERN_LOG)) sources.push(fileSource("kern.log", KERN_LOG, layout));
  else if (isFile(SYSLOG)) sources.push(fileSource("syslog", SYSLOG, layout));
  else if (dmesg !== undefined && layout.isRealRoot) sources.push(dmesgSource(dmesg));
  return sources;
}

/**
 * The journal is a source when journald runs (its socket, /run/systemd/journal/socket) or left
 * persistent files of earlier boots (/var/log/journal/<machine-id>/*.journal). An empty
 * /var/log/journal alone (a host or VM without journald) is not: dmesg is read there instead.
 */
function hasJournal(layout: Layout): boolean {
  if (fs.statSync(layout.host("/run/systemd/journal/socket"), { throwIfNoEntry: false }) !== undefined) return true;
  const dir = layout.host("/var/log/journal");
  try {
    return fs.readdirSync(dir).some((machine) => {
      try {
        return fs.readdirSync(`${dir}/${machine}`).some((f) => f.endsWith(".journal"));
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

function fileSource(kind: SourceKind, hostPath: string, layout: Layout): Source {
  const file = layout.host(hostPath);
  return {
    kind,
    label: hostPath,
    read: async () => {
      const lines: string[] = [];
      const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: "latin1" }), crlfDelay: Infinity });
      for await (const line of rl) if (mayBeDecision(line)) lines.push(line);
      return lines;
    },
    follow: (onLine, onEnd) => followFile(file, onLine, onEnd),
  };
}

/**
 * Polls `file` for what is appended after now. A file that was replaced (logrotate: another
 * inode) or truncated is read again from its start. Lines are read as latin1: every byte stays
 * one character, and the kernel's lines are ASCII anyway.
 */
function followFile(file: string, onLine: (line: string) => void, onEnd: (why: string) => void): () => void {
  let st = fs.statSync(file, { throwIfNoEntry: false });
  let offset = st?.size ?? 0;
  let ino = st?.ino;
  let rest = "";
  const timer = setInterval(() => {
    try {
      st = fs.statSync(file, { throwIfNoEntry: false });
      if (st === undefined) return;
      if (st.ino !== ino || st.size < offset) {
        ino = st.ino;
        offset = 0;
        rest = "";
      }
      if (st.size === offset) return;
      const fd = fs.openSync(file, "r");
      try {
        const buf = Buffer.alloc(Math.min(st.size - offset, 16 * 1024 * 1024));
        const n = fs.readSync(fd, buf, 0, buf.length, offset);
        offset += n;
        const lines = (rest + buf.subarray(0, n).toString("latin1")).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) if (mayBeDecision(line)) onLine(line);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      clearInterval(timer);
      onEnd(`cannot read ${file}: ${(err as Error).message}`);
    }
  }, POLL_MS);
  return () => clearInterval(timer);
}

/**
 * The journal's kernel messages (`_TRANSPORT=kernel`, not `-k`, which would mean this boot only),
 * as JSON so that a message is one record whatever it contains; MESSAGE is a string, or an array
 * of bytes when it is not valid UTF-8 (journalctl's json output).
 */
function journalSource(journalctl: string, layout: Layout): Source {
  const base = ["--no-pager", "--quiet", "--output=json", ...(layout.isRealRoot ? [] : [`--root=${layout.root}`]), "_TRANSPORT=kernel"];
  return {
    kind: "journal",
    label: `${journalctl} ${base.join(" ")}`,
    read: (since) => collect(journalctl, [...base, ...(since !== undefined ? [`--since=@${Math.floor(since)}`] : [])], journalMessage),
    follow: (onLine, onEnd) => stream(journalctl, [...base, "--follow", "--lines=0"], journalMessage, onLine, onEnd),
  };
}

/** The MESSAGE of one line of `journalctl --output=json`, if it may be a decision. */
export function journalMessage(line: string): string | undefined {
  if (!mayBeDecisionJson(line)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  const m = (v as { MESSAGE?: unknown } | null)?.MESSAGE;
  if (typeof m === "string") return m;
  if (Array.isArray(m) && m.every((b) => Number.isInteger(b) && b >= 0 && b < 256)) return Buffer.from(m as number[]).toString("latin1");
  return undefined;
}

function mayBeDecisionJson(line: string): boolean {
  // In JSON the quotes are escaped; a MESSAGE that is a byte array is not pre-filtered.
  return line.includes('apparmor=\\"DENIED\\"') || line.includes('apparmor=\\"ALLOWED\\"') || line.includes('"MESSAGE":[');
}

function dmesgSource(dmesg: string): Source {
  return {
    kind: "dmesg",
    label: dmesg,
    read: () => collect(dmesg, [], (l) => (mayBeDecision(l) ? l : undefined)),
    // `--follow` prints the whole buffer first: what was read already is dropped by eventKey.
    follow: (onLine, onEnd) => stream(dmesg, ["--follow"], (l) => (mayBeDecision(l) ? l : undefined), onLine, onEnd),
  };
}

async function collect(program: string, args: string[], pick: (line: string) => string | undefined): Promise<string[]> {
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    stream(program, args, pick, (l) => lines.push(l), (why) => (why === "" ? resolve() : reject(new Error(why))));
  });
  return lines;
}

/**
 * Runs `program` (absolute path, PROGRAM_ENV) and hands each picked stdout line to `onLine`;
 * `onEnd("")` when it exits 0, else with why. The returned function stops it.
 */
function stream(program: string, args: string[], pick: (line: string) => string | undefined, onLine: (line: string) => void, onEnd: (why: string) => void): () => void {
  let stopped = false;
  let kill: (() => void) | undefined;
  void (async () => {
    // execa on first use only (probes.ts says why).
    const { execa } = await import("execa");
    if (stopped) return;
    const proc = execa(program, args, { env: PROGRAM_ENV, extendEnv: false, reject: false, stdin: "ignore", buffer: { stdout: false, stderr: true } });
    kill = () => proc.kill();
    const rl = readline.createInterface({ input: proc.stdout, crlfDelay: Infinity });
    const closed = new Promise<void>((resolve) => rl.once("close", () => resolve()));
    rl.on("line", (line) => {
      const picked = pick(line);
      if (picked !== undefined && !stopped) onLine(picked);
    });
    const r = await proc;
    await closed;
    if (stopped) return;
    if (r.exitCode === 0) onEnd("");
    else {
      const why = String(r.stderr ?? "").trim().split("\n").filter(Boolean).join(" ") || (r.exitCode !== undefined ? `exit ${r.exitCode}` : r.shortMessage);
      onEnd(`cannot run ${program}: ${why}`);
    }
  })().catch((err: unknown) => {
    if (!stopped) onEnd(`cannot run ${program}: ${(err as Error).message}`);
  });
  return () => {
    stopped = true;
    kill?.();
  };
}

/** One audit event, however many logs it is in: its `audit(SECONDS.MS:SERIAL)` stamp. */
export function eventKey(time: number | undefined, serial: number | undefined): string | undefined {
  return time === undefined || serial === undefined ? undefined : `${time.toFixed(3)}:${serial}`;
}
