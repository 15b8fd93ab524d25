/**
 * Programs the admin side runs (installer, doctor), through execa: by absolute path, no shell,
 * a minimal environment. The hook keeps its own runner (apparmor/runner.ts, docs/performance.md).
 *
 * execa is imported here, on the first program run, never at the top of a module: its
 * initialisers touch `process.stdin`, which turns a piped stdin non-blocking, and a command that
 * then reads its stdin (`explain -`) gets EAGAIN.
 */
/** The environment admin-side programs get: nothing inherited but a fixed PATH and C locale. */
export const PROGRAM_ENV = { LC_ALL: "C", PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

export interface ProgramResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  /** Why it did not run or did not finish (not found, killed, timed out). */
  failure?: string;
}

/** Run `program` (absolute path) and collect its output; never throws for a failing program. */
export async function runProgram(program: string, args: readonly string[], opts: { inherit?: boolean; timeoutMs?: number } = {}): Promise<ProgramResult> {
  if (!program.startsWith("/")) return { exitCode: undefined, stdout: "", stderr: "", failure: `${program}: not an absolute path` };
  const { execa } = await import("execa");
  const r = await execa(program, [...args], {
    env: PROGRAM_ENV,
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
    ...(opts.inherit ? { stdio: "inherit" as const } : { stdin: "ignore" as const }),
    ...(opts.timeoutMs !== undefined ? { timeout: opts.timeoutMs } : {}),
  });
  const failure = r.failed && r.exitCode === undefined ? r.shortMessage : undefined;
  return {
    exitCode: r.exitCode,
    stdout: typeof r.stdout === "string" ? r.stdout : "",
    stderr: typeof r.stderr === "string" ? r.stderr : "",
    ...(failure !== undefined ? { failure } : {}),
  };
}

/** libvirt's version from `libvirtd --version` (or virtqemud's: Layout.libvirtDaemons), e.g. "9.0.0"; undefined when none answers. */
export async function libvirtVersion(daemons: readonly string[]): Promise<string | undefined> {
  for (const daemon of daemons) {
    const r = await runProgram(daemon, ["--version"], { timeoutMs: 30_000 });
    const m = r.exitCode === 0 ? /(\d+\.\d+\.\d+)/.exec(r.stdout) : null;
    if (m) return m[1];
  }
  return undefined;
}
