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
import type { Layout } from "../layout.js";
import { PROGRAM_ENV } from "../install/probes.js";
import { LineSplitter } from "./lines.js";

export type SourceKind = "audit.log" | "journal" | "kern.log" | "syslog" | "dmesg";

export interface Source {
  kind: SourceKind;
  /** How the admin would name it: the file, or the program line. */
  label: string;
  /** Hands each line that may be an AppArmor decision to `onLine`, from `since` (epoch seconds) where the source can skip older ones itself; nothing is held. */
  read(since: number | undefined, onLine: (line: string) => void): Promise<void>;
  /** New lines as they come, until the returned function is called. */
  follow(onLine: (line: string) => void, onEnd: (why: string) => void): () => void;
}

/** Cheap pre-filter before the parser: every line the kernel writes for a decision has one of these. */
export function mayBeDecision(line: string): boolean {
  return line.includes('apparmor="DENIED"') || line.includes('apparmor="ALLOWED"');
}

/**
 * A kernel line as rsyslog writes it to kern.log or syslog (review19 F4): the syslog tag `kernel`
 * right after the host (traditional `Dec  5 10:30:00 host kernel: `, RFC 3339
 * `2026-12-05T10:30:00.123456+00:00 host kernel: `, RFC 5424 `<6>1 TIME host kernel - - - `),
 * then the kernel's optional printk time and its audit prefix, with `apparmor=` right after the
 * stamp. `logger` from a local user writes its user name as the tag; it can claim `kernel` too
 * (`logger -t kernel`): these files are not trustworthy (docs/denials.md, "Sources").
 */
const SYSLOG_KERNEL_DECISION =
  /^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)|<\d{1,3}>1 \S+) \S+ kernel(?::| - - -) (?:\[ *\d+\.\d+\] )?audit: type=1400 audit\(\d+(?:\.\d+)?:\d+\): apparmor="(?:DENIED|ALLOWED)" /;

export function isSyslogKernelDecision(line: string): boolean {
  return SYSLOG_KERNEL_DECISION.test(line);
}

/** How often a followed file is looked at. */
const POLL_MS = 500;

/** The sources this host has, in the order of preference above. */
export function chooseSources(layout: Layout): Source[] {
  const sources: Source[] = [];
  const isFile = (p: string) => fs.statSync(layout.host(p), { throwIfNoEntry: false })?.isFile() === true;
  if (isFile(layout.auditLog)) sources.push(fileSource("audit.log", layout.auditLog, layout));
  const journalctl = layout.journalctls.find((p) => isFile(p));
  const dmesg = layout.dmesgs.find((p) => isFile(p));
  if (journalctl !== undefined && hasJournal(layout)) sources.push(journalSource(layout.host(journalctl), layout));
  else if (isFile(layout.kernLog)) sources.push(fileSource("kern.log", layout.kernLog, layout));
  else if (isFile(layout.syslog)) sources.push(fileSource("syslog", layout.syslog, layout));
  else if (dmesg !== undefined && layout.isRealRoot) sources.push(dmesgSource(dmesg));
  return sources;
}

/**
 * The journal is a source when journald runs (its socket, /run/systemd/journal/socket) or left
 * persistent files of earlier boots (/var/log/journal/<machine-id>/*.journal). An empty
 * /var/log/journal alone (a host or VM without journald) is not: dmesg is read there instead.
 */
function hasJournal(layout: Layout): boolean {
  if (fs.statSync(layout.host(layout.journaldSocket), { throwIfNoEntry: false }) !== undefined) return true;
  const dir = layout.host(layout.journalDir);
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
  // audit.log is written by auditd alone; kern.log and syslog by rsyslog for every program.
  const pick = kind === "audit.log" ? mayBeDecision : isSyslogKernelDecision;
  return {
    kind,
    label: hostPath,
    read: (_since, onLine) =>
      new Promise<void>((resolve, reject) => {
        // latin1: every byte stays one character; the kernel's lines are ASCII anyway.
        const lines = new LineSplitter((line) => {
          if (pick(line)) onLine(line);
        });
        const input = fs.createReadStream(file, { encoding: "latin1" });
        input.on("data", (chunk) => lines.push(chunk as string));
        input.on("error", reject);
        input.on("end", () => {
          lines.end();
          resolve();
        });
      }),
    follow: (onLine, onEnd) => followFile(file, pick, onLine, onEnd),
  };
}

/**
 * Polls `file` for what is appended after now (review19 F10). It is read through an open
 * descriptor: when the name is given to another file (logrotate renames, then the logger creates a
 * new one), the old file is read to its end first, then the new one from its start. A file whose
 * size went below what was read, or whose byte before the offset is no longer the one read there
 * (copytruncate, then regrown within one poll), is read again from its start: events read twice
 * are dropped by their stamp (eventKey). An unfinished line of a replaced or truncated file is
 * dropped.
 */
function followFile(file: string, pick: (line: string) => boolean, onLine: (line: string) => void, onEnd: (why: string) => void): () => void {
  let fd: number | undefined;
  let ino: number | undefined;
  let offset = 0;
  let lastByte: number | undefined;
  const lines = new LineSplitter((line) => {
    if (pick(line)) onLine(line);
  });
  const byteAt = (at: number): number | undefined => {
    const b = Buffer.alloc(1);
    return fs.readSync(fd!, b, 0, 1, at) === 1 ? b[0] : undefined;
  };
  const open = (atEnd: boolean) => {
    try {
      fd = fs.openSync(file, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    const st = fs.fstatSync(fd);
    ino = st.ino;
    offset = atEnd ? st.size : 0;
    lastByte = atEnd && offset > 0 ? byteAt(offset - 1) : undefined;
    lines.reset();
  };
  const drain = () => {
    const size = fs.fstatSync(fd!).size;
    if (size < offset || (lastByte !== undefined && byteAt(offset - 1) !== lastByte)) {
      offset = 0;
      lastByte = undefined;
      lines.reset();
    }
    const buf = Buffer.alloc(1024 * 1024);
    while (offset < size) {
      const n = fs.readSync(fd!, buf, 0, Math.min(buf.length, size - offset), offset);
      if (n === 0) break;
      offset += n;
      lastByte = buf[n - 1];
      lines.push(buf.subarray(0, n).toString("latin1"));
    }
  };
  const close = () => {
    if (fd !== undefined) fs.closeSync(fd);
    fd = undefined;
  };
  open(true);
  const timer = setInterval(() => {
    try {
      const st = fs.statSync(file, { throwIfNoEntry: false });
      if (fd !== undefined) drain();
      if (st !== undefined && st.ino !== ino) {
        close();
        open(false);
        if (fd !== undefined) drain();
      }
    } catch (err) {
      clearInterval(timer);
      close();
      onEnd(`cannot read ${file}: ${(err as Error).message}`);
    }
  }, POLL_MS);
  return () => {
    clearInterval(timer);
    close();
  };
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
    read: (since, onLine) => collect(journalctl, [...base, ...(since !== undefined ? [`--since=@${Math.floor(since)}`] : [])], journalMessage, onLine),
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
    read: (_since, onLine) => collect(dmesg, [], (l) => (mayBeDecision(l) ? l : undefined), onLine),
    // `--follow` prints the whole buffer first: what was read already is dropped by eventKey.
    follow: (onLine, onEnd) => stream(dmesg, ["--follow"], (l) => (mayBeDecision(l) ? l : undefined), onLine, onEnd),
  };
}

function collect(program: string, args: string[], pick: (line: string) => string | undefined, onLine: (line: string) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    stream(program, args, pick, onLine, (why) => (why === "" ? resolve() : reject(new Error(why))));
  });
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
    const lines = new LineSplitter((line) => {
      const picked = pick(line);
      if (picked !== undefined && !stopped) onLine(picked);
    });
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (chunk: string) => lines.push(chunk));
    const closed = new Promise<void>((resolve) => proc.stdout.once("end", () => resolve()));
    const r = await proc;
    await closed;
    lines.end();
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
