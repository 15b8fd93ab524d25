import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import { HostError } from "../errors.js";
import { nodeChildProcess } from "../lazy.js";

/** What one apparmor_parser run produced. */
export interface ParserResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Set when the process could not run or was killed (timeout, missing binary). */
  failure?: string;
}

export interface RunOptions {
  /** Text fed on stdin (e.g. a profile stub for -R). */
  input?: string;
  timeoutMs?: number;
  /** Working directory (real path); the parser resolves relative names against it. */
  cwd?: string;
}

/** When the caller gives none; the hook passes config `parser_timeout` (src/config.ts). */
export const DEFAULT_TIMEOUT_MS = 120_000;
// A parser that prints megabytes is broken; keep only enough to quote it.
const MAX_OUTPUT_BYTES = 1024 * 1024;
/** After a timeout: SIGTERM, then SIGKILL if the parser is still there this much later. */
const KILL_GRACE_MS = 5_000;

/**
 * Run apparmor_parser by absolute path with a scrubbed environment (`LC_ALL=C` only: no PATH,
 * nothing inherited from libvirtd), never through a shell. Plain node:child_process: the hook
 * runs this on every guest start, and loading a process library would cost more than the cache
 * hit it waits for (docs/performance.md).
 */
export async function runParser(parser: string, args: readonly string[], opts: RunOptions = {}): Promise<ParserResult> {
  if (!parser.startsWith("/")) throw new HostError(`cannot run apparmor_parser: ${parser}: not an absolute path`);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise<ParserResult>((resolve) => {
    let child: ChildProcess;
    try {
      // Loaded here, not at the top: hook calls that never run the parser (started, an unchanged
      // start) skip node:child_process and the stream/net modules it pulls in (docs/performance.md).
      child = nodeChildProcess().spawn(parser, [...args], {
        env: { LC_ALL: "C" },
        shell: false,
        // No input: /dev/null, which the parser reads as the empty input a closed pipe gives, without
        // the pipe and its write stream (a few ms of every load).
        stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
        // Not detached: the parser stays in the hook's process group, so whatever kills the hook's
        // group (a crash test, a supervisor) also kills the parser and its compiling child. A parser
        // that outlived its hook could still write the cache after a newer prepare ran.
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
      });
    } catch (err) {
      resolve({ exitCode: -1, stdout: "", stderr: "", failure: `could not run ${parser}: ${errorText(err)}` });
      return;
    }
    const stdout = new Output();
    const stderr = new Output();
    let failure: string | undefined;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    // apparmor_parser compiles in a forked child, which a kill of the parser alone would leave
    // running (holding our pipes open, so "close" would wait for the whole compile): a timeout
    // signals the parser and every descendant, listed before the parser dies and they are
    // re-parented out of reach.
    let tree: number[] = [];
    const signalTree = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      tree = [...new Set([...tree, child.pid, ...descendantsOf(child.pid)])];
      for (const pid of tree) {
        try {
          process.kill(pid, signal);
        } catch {
          // gone already
        }
      }
    };
    const kill = (why: string) => {
      failure ??= why;
      signalTree("SIGTERM");
      killTimer ??= setTimeout(() => signalTree("SIGKILL"), KILL_GRACE_MS);
      killTimer.unref();
    };
    const limit = timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`;
    const timer = setTimeout(() => kill(`timed out after ${limit}`), timeoutMs);
    const onData = (o: Output) => (chunk: Buffer) => {
      if (!o.add(chunk)) kill(`printed more than ${MAX_OUTPUT_BYTES} bytes`);
    };
    child.stdout!.on("data", onData(stdout));
    child.stderr!.on("data", onData(stderr));
    // The parser may exit without reading its input (EPIPE): its exit status says what happened.
    if (child.stdin) {
      child.stdin.on("error", () => {});
      child.stdin.end(opts.input);
    }
    const finish = (result: ParserResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      resolve(result);
    };
    child.on("error", (err) => {
      // Could not start (ENOENT, EACCES…); "close" may never come.
      finish({ exitCode: -1, stdout: stdout.text(), stderr: stderr.text(), failure: failure ?? `could not run ${parser}: ${errorText(err)}` });
    });
    child.on("close", (code, signal) => {
      const result: ParserResult = { exitCode: typeof code === "number" ? code : -1, stdout: stdout.text(), stderr: stderr.text() };
      if (failure) result.failure = failure;
      else if (signal) result.failure = `killed by ${signal}`;
      finish(result);
    });
  });
}

/** One output stream, kept up to MAX_OUTPUT_BYTES, decoded once at the end. */
class Output {
  private chunks: Buffer[] = [];
  private size = 0;
  /** false once the limit is passed (the rest is dropped). */
  add(chunk: Buffer): boolean {
    if (this.size >= MAX_OUTPUT_BYTES) return false;
    const keep = chunk.subarray(0, MAX_OUTPUT_BYTES - this.size);
    this.chunks.push(keep);
    this.size += keep.length;
    return keep.length === chunk.length;
  }
  /** UTF-8 text without one final newline (like the parser's last line printed on a terminal). */
  text(): string {
    return Buffer.concat(this.chunks).toString("utf8").replace(/\r?\n$/, "");
  }
}

function errorText(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message : String(err));
}

/** Did the parser fail? A zero exit with "parser error" text counts as a failure too. */
export function parserFailed(r: ParserResult): boolean {
  return r.failure !== undefined || r.exitCode !== 0 || /parser error/i.test(r.stderr) || /parser error/i.test(r.stdout);
}

/**
 * The parser's own explanation, on one line: its error lines when it printed any, else the last
 * thing it said, else the exit code. Noise it prints on every run without a kernel (cache notes)
 * is left out.
 */
export function parserMessage(r: ParserResult): string {
  if (r.failure) return r.failure;
  const lines = `${r.stderr}\n${r.stdout}`
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^Cache (read\/write disabled|miss|hit|added)/.test(l) && !/^Wrote cache/.test(l));
  const errors = lines.filter((l) => /error|unable|could not|cannot|failed|doesn't exist|denied/i.test(l));
  const chosen = errors.length > 0 ? errors : lines.slice(-1);
  // The same error repeats once per pass; say it once.
  const unique = [...new Set(chosen)].join("; ");
  const text = unique === "" ? `exit status ${r.exitCode}` : `${unique} (exit status ${r.exitCode})`;
  return text.length > 2000 ? text.slice(0, 2000) + "..." : text;
}

/**
 * Every process below `root` (children, grandchildren…), from the parent pids in /proc/<pid>/stat.
 * Only on the kill path: a scan of /proc costs a few ms, which a hook call that ends normally never
 * pays.
 */
function descendantsOf(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return [];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${e}/stat`, "latin1");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ")".
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (!Number.isInteger(ppid)) continue;
    const list = children.get(ppid) ?? [];
    list.push(Number(e));
    children.set(ppid, list);
  }
  const out: number[] = [];
  for (let queue = [root]; queue.length > 0; ) {
    const next = children.get(queue.shift()!) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}
