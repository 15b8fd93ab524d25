// The parser runner is plain node:child_process (a process library cost ~18 ms of every prepare,
// docs/performance.md), so what such a library would guarantee is proven here, with real programs.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runParser } from "../../src/apparmor/runner.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vaah-runner-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

describe("runParser", () => {
  it("passes arguments verbatim, feeds stdin, returns exit code and both outputs without the final newline", async () => {
    const p = script("echo", 'printf "%s|" "$@"; echo; cat; echo err >&2; exit 3');
    const r = await runParser(p, ["-r", "a b", "$HOME", "*"], { input: "profile text\n" });
    expect(r).toEqual({ exitCode: 3, stdout: "-r|a b|$HOME|*|\nprofile text", stderr: "err" });
  });

  it("gives the program LC_ALL=C and nothing else of our environment", async () => {
    process.env.VAAH_RUNNER_LEAK = "leaked";
    const r = await runParser("/usr/bin/env", []);
    delete process.env.VAAH_RUNNER_LEAK;
    expect(r).toEqual({ exitCode: 0, stdout: "LC_ALL=C", stderr: "" });
  });

  it("runs in the given working directory", async () => {
    const r = await runParser("/bin/pwd", [], { cwd: dir });
    expect(r.stdout).toBe(fs.realpathSync(dir));
  });

  it("refuses a relative program path without running anything", async () => {
    await expect(runParser("apparmor_parser", [])).rejects.toThrow("cannot run apparmor_parser: apparmor_parser: not an absolute path");
  });

  it("reports a missing program as a failure, not an exception", async () => {
    const r = await runParser(path.join(dir, "missing"), []);
    expect(r).toEqual({ exitCode: -1, stdout: "", stderr: "", failure: `could not run ${path.join(dir, "missing")}: ENOENT` });
  });

  it("reports a program killed by a signal", async () => {
    const r = await runParser(script("segv", "kill -SEGV $$"), []);
    expect(r.failure).toBe("killed by SIGSEGV");
    expect(r.exitCode).toBe(-1);
  });

  it("stops a program that outlives the timeout (SIGTERM) and says so", async () => {
    const started = Date.now();
    const r = await runParser(script("sleep", "exec sleep 30"), [], { timeoutMs: 300 });
    expect(r.failure).toBe("timed out after 300 ms");
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("kills a program that ignores SIGTERM after the grace time", async () => {
    const started = Date.now();
    const r = await runParser(script("stubborn", "trap '' TERM; i=0; while [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"), [], {
      timeoutMs: 200,
    });
    expect(r.failure).toBe("timed out after 200 ms");
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(5_000);
    expect(took).toBeLessThan(20_000);
  }, 30_000);

  it("keeps at most 1 MiB of output and stops a program that prints more", async () => {
    const r = await runParser(script("flood", "exec cat /dev/zero"), []);
    expect(r.failure).toBe("printed more than 1048576 bytes");
    expect(r.stdout.length).toBe(1024 * 1024);
  });

  it("does not fail when the program exits without reading its input", async () => {
    const r = await runParser("/bin/true", [], { input: "x".repeat(4 * 1024 * 1024) });
    expect(r).toEqual({ exitCode: 0, stdout: "", stderr: "" });
  });
});
