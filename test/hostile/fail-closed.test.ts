/**
 * Fail-closed matrix: every host fault we can cause (parser missing, crashing, failing; template
 * missing; config invalid; /etc/apparmor.d/libvirt read-only) refuses the guest at prepare and
 * start (exit 1: libvirt aborts the start, docs/hook.md) with one exact stderr line saying why,
 * and leaves no partial file; while stopped, reconnect and release, for the same faults, exit 0
 * and never make things worse (files unchanged or properly removed, a running guest's profile
 * never unloaded by a failed reconnect).
 *
 * Everything runs through the real hooks/qemu in a temporary root with the real apparmor_parser
 * loading into a fake securityfs. The one stand-in is the "crashing parser": a script that kills
 * itself with SIGSEGV or SIGKILL, because the real apparmor_parser cannot be made to crash on
 * purpose.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { defaultTestConfig, type TestRoot } from "../lifecycle/fixture.js";
import {
  callHookAsync,
  guest,
  hookRoot,
  libvirtDirEntries,
  LIBVIRT_DIR,
  readOrUndef,
  REMOVE,
  REPLACE,
  snapshot,
  uuidFor,
  versionXml,
  type Guest,
} from "./faults-kit.js";

type Args = [string, string, string, string];
const op = (g: Guest, o: string): Args => [g.name, o, o === "stopped" || o === "release" ? "end" : "begin", "-"];

/** Read-only bind mounts made by this file, unmounted in afterAll even when a test fails. */
const mounts: string[] = [];
function unmount(dir: string): void {
  const i = mounts.indexOf(dir);
  if (i < 0) return;
  execFileSync("umount", [dir]);
  mounts.splice(i, 1);
}
afterAll(() => {
  for (const m of [...mounts].reverse()) {
    try {
      execFileSync("umount", ["-l", m]);
    } catch {
      // already gone
    }
  }
});

/** Can this machine make a read-only bind mount (root, mount namespace allows it)? */
const roSkip: string | undefined = (() => {
  const d = fs.mkdtempSync("/tmp/vaah-ro-probe-");
  try {
    execFileSync("mount", ["--bind", d, d], { stdio: "pipe" });
    try {
      execFileSync("mount", ["-o", "remount,ro,bind", d], { stdio: "pipe" });
      try {
        fs.writeFileSync(`${d}/x`, "");
        return "a read-only bind mount still accepts writes here";
      } catch {
        return undefined;
      }
    } finally {
      execFileSync("umount", [d], { stdio: "pipe" });
    }
  } catch (err) {
    return `cannot bind-mount read-only here: ${(err as Error).message.split("\n")[0]}`;
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
})();
if (roSkip) console.log(`fail-closed: skipping the read-only /etc/apparmor.d/libvirt case: ${roSkip}`);

interface Fault {
  name: string;
  skip?: string;
  apply(t: TestRoot): void;
  /** The exact stderr line of a refused prepare/start (without the "virt-aa-hook: error: " prefix). */
  refusal(t: TestRoot, g: Guest, existing: boolean): string;
  /** A guest that already has its files is not affected by this fault (template: only for the first start). */
  existingUnaffected?: boolean;
  /** Rules unchanged on disk: reconnect needs no write and succeeds (read-only profiles dir). */
  reconnectUnaffected?: boolean;
}

const CONFIG = "/etc/libvirt/virt-aa-hook.conf";

function fakeParser(t: TestRoot, signal: "SEGV" | "KILL"): void {
  // A stand-in parser that crashes: the real one cannot be made to.
  const p = t.at(`/fake-parser-${signal}`);
  fs.writeFileSync(p, `#!/bin/sh\nkill -${signal} $$\n`, { mode: 0o755 });
  t.writeConfig({ ...defaultTestConfig(), parser: p });
}

const FAULTS: Fault[] = [
  {
    name: "parser missing",
    apply: (t) => t.writeConfig({ ...defaultTestConfig(), parser: "/nonexistent/apparmor_parser" }),
    refusal: (_t, g) => `${g.name}: ${g.profile}: cannot run /nonexistent/apparmor_parser: not an executable file`,
  },
  {
    name: "parser crashing (SIGSEGV)",
    apply: (t) => fakeParser(t, "SEGV"),
    refusal: (_t, g) => `${g.name}: ${g.profile}: cannot load ${g.profileName}: killed by SIGSEGV`,
  },
  {
    name: "parser crashing (SIGKILL)",
    apply: (t) => fakeParser(t, "KILL"),
    refusal: (_t, g) => `${g.name}: ${g.profile}: cannot load ${g.profileName}: killed by SIGKILL`,
  },
  {
    name: "parser failing (include base without tunables)",
    // The include base loses its tunables (a per-root symlink to the shared copy, so only this
    // root's). apparmor_dir cannot stand in for this fault: it moves the profiles with it.
    apply: (t) => fs.rmSync(t.at("/etc/apparmor.d/tunables")),
    // A staged new profile is shown by its host name; an existing one by its path on this
    // filesystem (the same thing with --root /).
    refusal: (t, g, existing) => {
      const p = existing ? t.at(g.profile) : g.profile;
      return `${g.name}: ${g.profile}: cannot load ${g.profileName}: AppArmor parser error for ${p} in profile ${p} at line 5: Could not open 'tunables/global' (exit status 1)`;
    },
  },
  {
    name: "template missing",
    apply: (t) => fs.rmSync(t.at(`${LIBVIRT_DIR}/TEMPLATE.qemu`)),
    refusal: (_t, g) => `${g.name}: ${LIBVIRT_DIR}/TEMPLATE.qemu: cannot read the AppArmor template: ENOENT`,
    existingUnaffected: true,
  },
  {
    name: "config invalid (syntax)",
    apply: (t) => fs.appendFileSync(t.at(CONFIG), "lock_timeout 5\n"),
    refusal: (_t, g) => `${g.name}: -: cannot read config ${CONFIG}: line 3: expected key = "value" (one pair of double quotes, nothing after it)`,
  },
  {
    name: "config invalid (value)",
    apply: (t) => fs.appendFileSync(t.at(CONFIG), 'lock_timeout = "0"\n'),
    refusal: (_t, g) => `${g.name}: -: cannot read config ${CONFIG}: line 3: lock_timeout: must be a whole number of seconds from 1 to 3600, not "0"`,
  },
  {
    name: "/etc/apparmor.d/libvirt read-only",
    ...(roSkip ? { skip: roSkip } : {}),
    apply: (t) => {
      const d = t.at(LIBVIRT_DIR);
      execFileSync("mount", ["--bind", d, d]);
      mounts.push(d);
      execFileSync("mount", ["-o", "remount,ro,bind", d]);
    },
    refusal: (_t, g) => `${g.name}: ${g.files}: cannot write the new rules in ${LIBVIRT_DIR}: EROFS: read-only file system`,
    reconnectUnaffected: true,
  },
];

/** Exit 1 (the guest does not start), nothing on stdout, exactly this one error line on stderr. */
function expectRefused(o: string, r: { status: number | null; stdout: string; stderr: string }, refusal: string): void {
  expect({ op: o, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
    op: o,
    status: 1,
    stdout: "",
    stderr: `virt-aa-hook: error: ${refusal}\n`,
  });
}

/** Exit 0, and stderr empty or exactly one warning line about this guest. */
function harmless(r: { status: number | null; stdout: string; stderr: string }, g: Guest): void {
  expect(r.status).toBe(0);
  expect(r.stdout).toBe("");
  if (r.stderr !== "") expect(r.stderr).toMatch(new RegExp(`^virt-aa-hook: warning: ${g.name}: [^\\n]+\\n$`));
}

describe.concurrent("fail-closed: a host fault refuses the guest and says why", () => {
  for (const [i, f] of FAULTS.entries()) {
    it.skipIf(f.skip !== undefined)(`${f.name}: a new guest is refused at prepare and start; nothing is created`, async () => {
      const t = hookRoot("vaah-fc-new-");
      const g = guest("vm1", uuidFor("fail-closed-new", i));
      try {
        const xml = versionXml(t, g, 0);
        const before = libvirtDirEntries(t);
        f.apply(t);
        for (const o of ["prepare", "start"]) {
          expectRefused(o, await callHookAsync(t, op(g, o), xml), f.refusal(t, g, false));
          expect(libvirtDirEntries(t)).toEqual(f.name === "template missing" ? before.filter((e) => e !== "TEMPLATE.qemu") : before);
          expect(readOrUndef(t, g.state)).toBeUndefined();
          expect(fs.readFileSync(t.at(REPLACE)).length).toBe(0); // nothing was loaded
        }
        for (const o of ["stopped", "reconnect", "release"]) {
          harmless(await callHookAsync(t, op(g, o), xml), g);
          expect(snapshot(t, g)).toEqual({ [g.profile]: undefined, [g.files]: undefined, [g.state]: undefined });
        }
      } finally {
        unmount(t.at(LIBVIRT_DIR));
        t.remove();
      }
    });

    it.skipIf(f.skip !== undefined)(`${f.name}: a running guest keeps its files and its loaded profile; release only removes`, async () => {
      const t = hookRoot("vaah-fc-run-");
      const g = guest("vm1", uuidFor("fail-closed-run", i));
      try {
        const v0 = versionXml(t, g, 0);
        const v1 = versionXml(t, g, 1);
        const first = await callHookAsync(t, op(g, "prepare"), v0);
        expect(first).toMatchObject({ status: 0, stderr: "" });
        const before = snapshot(t, g);
        const entries = libvirtDirEntries(t);
        f.apply(t);

        if (f.existingUnaffected) {
          // The template is read only to create a guest's profile: a known guest starts as usual.
          for (const o of ["prepare", "start"]) expect(await callHookAsync(t, op(g, o), v1)).toMatchObject({ status: 0, stderr: "" });
          expect(readOrUndef(t, g.profile)?.toString()).toBe(before[g.profile]);
          return;
        }

        for (const o of ["prepare", "start"]) {
          expectRefused(o, await callHookAsync(t, op(g, o), v1), f.refusal(t, g, true));
          expect(snapshot(t, g)).toEqual(before);
          expect(libvirtDirEntries(t)).toEqual(entries);
        }

        // stopped and a failed reconnect: nothing changes, nothing is unloaded.
        for (const o of ["stopped", "reconnect"]) {
          const r = await callHookAsync(t, op(g, o), v0);
          harmless(r, g);
          if (o === "reconnect" && !f.reconnectUnaffected && !f.name.startsWith("config")) {
            expect(r.stderr).toBe(`virt-aa-hook: warning: ${f.refusal(t, g, true)}\n`);
          }
          // A reconnect that succeeded (no write was needed) only refreshes the record's time.
          const same = (s: Record<string, string | undefined>) => ({ ...s, [g.state]: s[g.state]?.replace(/"updated": "[^"]*"/, '"updated": "-"') });
          expect(same(snapshot(t, g))).toEqual(same(before));
          expect(libvirtDirEntries(t)).toEqual(entries);
          expect(fs.readFileSync(t.at(REMOVE)).length).toBe(0);
        }

        // release: every file of ours is either exactly as it was or gone; nothing new appears.
        harmless(await callHookAsync(t, op(g, "release"), v0), g);
        const after = snapshot(t, g);
        for (const [p, content] of Object.entries(after)) if (content !== undefined) expect(content).toBe(before[p]);
        for (const e of libvirtDirEntries(t)) expect(entries).toContain(e);
      } finally {
        unmount(t.at(LIBVIRT_DIR));
        t.remove();
      }
    });
  }
});

describe("fail-closed: reconnect_failure = fail", () => {
  it("a failed reconnect exits 1 (libvirt kills the guest, as configured) and still unloads nothing", async () => {
    const t = hookRoot("vaah-fc-rf-");
    const g = guest("vm1", uuidFor("fail-closed-rf", 0));
    try {
      const v0 = versionXml(t, g, 0);
      expect(await callHookAsync(t, op(g, "prepare"), v0)).toMatchObject({ status: 0, stderr: "" });
      const before = snapshot(t, g);
      const p = t.at("/fake-parser-SEGV");
      fs.writeFileSync(p, "#!/bin/sh\nkill -SEGV $$\n", { mode: 0o755 });
      t.writeConfig({ ...defaultTestConfig(), parser: p, reconnect_failure: "fail" });
      const r = await callHookAsync(t, op(g, "reconnect"), v0);
      expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
        status: 1,
        stdout: "",
        stderr: `virt-aa-hook: error: ${g.name}: ${g.profile}: cannot load ${g.profileName}: killed by SIGSEGV\n`,
      });
      expect(snapshot(t, g)).toEqual(before);
      expect(fs.readFileSync(t.at(REMOVE)).length).toBe(0);
    } finally {
      t.remove();
    }
  });
});
