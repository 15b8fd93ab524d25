/**
 * Replays what libvirt 9.0 really sent its helper (recorded by the lab's record mode,
 * test/lab/record-to-fixtures.mjs: test/fixtures/libvirt-helper-calls/<operation>.json, each
 * `[{argv, stdin}]` in call order, argv[0] the path libvirt ran) against our helper through the
 * real launcher, one operation per temp root. Before an operation's calls the guest is made
 * (`-c` with the operation's first XML), as libvirt's start would have. Every call must succeed
 * as it did with libvirt's helper, and after each call:
 * - a regeneration leaves exactly the XML's rules plus the grants still allowed to stay (only
 *   libvirt grants whose path the XML names as a `<mirror>`);
 * - `-F PATH` (absolute) leaves PATH among the guest's grants and in the `.files`, unless the
 *   XML's own rules grant it already (then there is no grant);
 * - `-D` leaves no `.files`, profile or record.
 * Skipped while no recording exists.
 */
import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadLayout } from "../../src/config.js";
import { mirrorPaths } from "../../src/helper/mirror.js";
import { coveredByXml } from "../../src/helper/operations.js";
import { buildProfile } from "../../src/pipeline.js";
import { readState } from "../../src/store/state.js";
import { makeTestRoot, type TestRoot } from "../lifecycle/fixture.js";
import { callHelper, installHelper, type RecordedCall } from "./harness.js";

const DIR = path.resolve(new URL("../fixtures/libvirt-helper-calls", import.meta.url).pathname);
const files = fs.existsSync(DIR) ? fs.readdirSync(DIR).filter((f) => f.endsWith(".json")).sort() : [];

let t: TestRoot;
beforeEach(() => {
  t = makeTestRoot("vaah-replay-");
  installHelper(t);
});
afterEach(() => t.remove());

const uuidOf = (argv: string[]) => {
  const i = argv.indexOf("-u");
  return i >= 0 ? argv[i + 1]!.slice("libvirt-".length) : undefined;
};

describe.skipIf(files.length === 0)("libvirt 9.0's recorded helper calls", () => {
  it.each(files)("%s", (file) => {
    const calls = JSON.parse(fs.readFileSync(path.join(DIR, file), "utf8")) as RecordedCall[];
    expect(Array.isArray(calls)).toBe(true);
    const first = calls.find((c) => c.stdin !== "");
    if (first) {
      const r = callHelper(t, ["-c", "-u", `libvirt-${uuidOf(first.argv)}`], first.stdin);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
    const { layout } = loadLayout(t.root);
    /** Paths -F granted since the last regeneration. */
    const granted = new Set<string>();
    for (const [i, call] of calls.entries()) {
      const args = call.argv.slice(1);
      const uuid = uuidOf(args)!;
      const filesPath = `/etc/apparmor.d/libvirt/libvirt-${uuid}.files`;
      const r = callHelper(t, args, call.stdin);
      expect({ call: i, args, status: r.status, stderr: r.stderr }).toEqual({ call: i, args, status: 0, stderr: r.stderr.startsWith("virt-aa-hook: warning:") ? r.stderr : "" });
      const mode = args.find((a) => /^-[acrRD]$/.test(a));
      const fIndex = args.indexOf("-F");
      const grants = readState(t.at(`/var/lib/virt-aa-hook/${uuid}.json`))?.grants ?? [];
      if (mode === "-D") {
        expect(t.exists(filesPath)).toBe(false);
        expect(t.exists(`/var/lib/virt-aa-hook/${uuid}.json`)).toBe(false);
      } else if ((mode === "-r" || mode === "-c") && fIndex < 0) {
        // Only a running job's destination keeps its -F grant, and it does keep it.
        const mirrors = mirrorPaths(Buffer.from(call.stdin));
        for (const g of grants.filter((g) => g.by === "libvirt")) expect(mirrors).toContain(g.path);
        for (const m of mirrors.filter((m) => granted.has(m))) expect(grants.map((g) => g.path)).toContain(m);
        granted.clear();
        expect(t.read(filesPath)).toBe(buildProfile(call.stdin, { layout, grants }).filesText);
      } else if (fIndex >= 0 && args[fIndex + 1]!.startsWith("/")) {
        // Granted now: by a grant, or by the XML's own rules already (then no grant was added).
        const file = args[fIndex + 1]!;
        const tree = file.endsWith("/{,**}");
        const target = tree ? file.slice(0, -"/{,**}".length) : file;
        if (!tree && grants.some((g) => g.path === file)) {
          expect(t.read(filesPath)).toContain(`"${file}" r`);
          granted.add(file);
        } else {
          expect(coveredByXml(buildProfile(call.stdin, { layout }).rules, target, tree ? "rw" : "rk", tree)).toBe(true);
        }
      }
    }
  });
});
