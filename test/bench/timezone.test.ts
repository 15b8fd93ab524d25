/**
 * The hook's log stamp never asks for the host's time zone (src/hook/timestamp.ts): V8's
 * toISOString makes ICU read /etc/localtime and its zone data on first use, ≈ 0.5–0.8 ms of a
 * call that otherwise has no date to format (docs/performance.md). Proven on the installed hook
 * (hooks/qemu → loader → bundle) by the files it opens, under strace; the control is plain node
 * formatting a date the old way, which must open /etc/localtime (else the check proves nothing).
 * Needs `npm run build` first.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { domainXml, installHook } from "../lifecycle/harness.js";

const STRACE = "/usr/bin/strace";
const HAVE_STRACE = fs.existsSync(STRACE) && spawnSync(STRACE, ["-o", "/dev/null", "/bin/true"]).status === 0;

let roots: TestRoot[] = [];
afterEach(() => {
  for (const t of roots) t.remove();
  roots = [];
});

/** Every path the command (and anything it runs) opened. */
function opened(t: TestRoot, argv: string[], input: string): string[] {
  const log = t.at("/strace.log");
  const r = spawnSync(STRACE, ["-f", "-e", "trace=open,openat", "-o", log, ...argv], { input, env: { LC_ALL: "C" }, cwd: "/", timeout: 60_000 });
  expect(r.status, r.stderr.toString()).toBe(0);
  const paths = [...fs.readFileSync(log, "utf8").matchAll(/open(?:at)?\((?:AT_FDCWD, )?"([^"]*)"/g)].map((m) => m[1]!);
  fs.rmSync(log);
  return paths;
}

describe.skipIf(!HAVE_STRACE)("the log stamp reads no time zone", () => {
  it("control: node's own toISOString opens /etc/localtime here", () => {
    const t = makeTestRoot("vaah-tz-");
    roots.push(t);
    expect(opened(t, [process.execPath, "-e", "new Date().toISOString()"], "")).toContain("/etc/localtime");
  });

  for (const op of [["migrate", "begin"], ["stopped", "end"]] as [string, string][]) {
    it(`${op.join(" ")} writes its stamped log line without opening /etc/localtime`, () => {
      const t = makeTestRoot("vaah-tz-");
      roots.push(t);
      const hook = installHook(t);
      const paths = opened(t, [hook, "vm1", ...op, "-"], domainXml());
      expect(paths).not.toContain("/etc/localtime");
      const line = t.read("/var/log/libvirt/virt-aa-hook.log").trim().split("\n").at(-1)!;
      expect(line).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z virt-aa-hook\\[\\d+\\]: guest="vm1" op="${op[0]}" exit=0 `));
      // The stamp is now, in UTC: within a minute of the test's own clock.
      expect(Math.abs(Date.parse(line.slice(0, 24)) - Date.now())).toBeLessThan(60_000);
    });
  }
});

if (!HAVE_STRACE) {
  describe("the log stamp reads no time zone", () => {
    it.skip("skipped: needs /usr/bin/strace (apt-get install strace)", () => {});
  });
}
