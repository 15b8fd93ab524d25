import { HostError } from "../errors.js";

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

const DEFAULT_TIMEOUT_MS = 120_000;
// A parser that prints megabytes is broken; keep only enough to quote it.
const MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * Run apparmor_parser by absolute path with a scrubbed environment (`LC_ALL=C` only: no PATH,
 * nothing inherited from libvirtd), never through a shell. execa is imported here and only here,
 * so hook operations that run no program never pay for loading it.
 */
export async function runParser(parser: string, args: readonly string[], opts: RunOptions = {}): Promise<ParserResult> {
  if (!parser.startsWith("/")) throw new HostError(`cannot run apparmor_parser: ${parser}: not an absolute path`);
  const { execa } = await import("execa");
  const r = await execa(parser, [...args], {
    env: { LC_ALL: "C" },
    extendEnv: false,
    reject: false,
    shell: false,
    input: opts.input ?? "",
    timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxBuffer: MAX_OUTPUT_BYTES,
    stripFinalNewline: true,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  const result: ParserResult = {
    exitCode: typeof r.exitCode === "number" ? r.exitCode : -1,
    stdout: String(r.stdout ?? ""),
    stderr: String(r.stderr ?? ""),
  };
  if (r.timedOut) result.failure = `timed out after ${Math.round((opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000)} s`;
  else if (r.signal) result.failure = `killed by ${r.signal}`;
  else if (r.failed && r.exitCode === undefined) result.failure = r.shortMessage ?? "could not run";
  return result;
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
