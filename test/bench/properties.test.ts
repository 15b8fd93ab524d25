/**
 * The functional side of the performance work (issue 8, docs/performance.md), never timed:
 * - an ignored operation and `stopped` run none of yargs, execa, the XML parser or the lock
 *   library (V8's function event log names every module initialiser the bundle runs);
 * - `stopped` writes nothing but its log line;
 * - an unchanged `prepare` loads from the parser cache (no `-T`), an unchanged `start` does not run
 *   the parser at all, and neither rewrites the guest's files or its state record;
 * - the code caches npm run build makes are accepted by this node, and a bad one is harmless.
 * Needs `npm run build` first.
 */
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import vm from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { makeTestRoot, PARSER, defaultTestConfig, type TestRoot } from "../lifecycle/fixture.js";
import { BUNDLE, callHook, domainXml, installHook, tree, UUID } from "../lifecycle/harness.js";

const NAME = `libvirt-${UUID}`;
const FILES = `/etc/apparmor.d/libvirt/${NAME}.files`;
const PROFILE = `/etc/apparmor.d/libvirt/${NAME}`;
const STATE = `/var/lib/virt-aa-hook/${UUID}.json`;
const LOG = "/var/log/libvirt/virt-aa-hook.log";
const HEAVY = ["yargs", "execa", "fast-xml-parser", "proper-lockfile"];

let roots: TestRoot[] = [];
afterEach(() => {
  for (const t of roots) t.remove();
  roots = [];
});

function root(): TestRoot {
  const t = makeTestRoot("vaah-bench-props-");
  roots.push(t);
  fs.mkdirSync(t.at("/var/lib/libvirt/images"), { recursive: true });
  fs.writeFileSync(t.at("/var/lib/libvirt/images/vm1.img"), "");
  return t;
}

/** The npm packages whose module initialisers ran in one hook call of the bundle. */
function packagesRun(t: TestRoot, op: [string, string], xml: string): Set<string> {
  const logfile = t.at("/v8-functions.log");
  const r = spawnSync(
    process.execPath,
    ["--log-function-events", `--logfile=${logfile}`, "--no-logfile-per-isolate", BUNDLE, "hook", "--root", t.root, "--", "vm1", ...op, "-"],
    { input: xml, env: { LC_ALL: "C" }, cwd: "/", timeout: 60_000 },
  );
  expect(r.status, r.stderr.toString()).toBe(0);
  const pkgs = new Set<string>();
  for (const line of fs.readFileSync(logfile, "utf8").split("\n")) {
    if (!line.startsWith("function,first-execution,")) continue;
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(line);
    if (m) pkgs.add(m[1]!);
  }
  fs.rmSync(logfile);
  return pkgs;
}

describe("what a hook call loads", () => {
  it("prepare runs the XML parser and the lock library: the check sees module initialisers", () => {
    const t = root();
    const pkgs = packagesRun(t, ["prepare", "begin"], domainXml());
    expect(pkgs).toContain("fast-xml-parser");
    expect(pkgs).toContain("proper-lockfile");
    expect(pkgs).not.toContain("yargs");
    expect(pkgs).not.toContain("execa");
  });

  for (const op of [["migrate", "begin"], ["restore", "begin"], ["attach", "begin"], ["stopped", "end"]] as [string, string][]) {
    it(`${op.join(" ")} loads none of ${HEAVY.join(", ")}`, () => {
      const t = root();
      const pkgs = packagesRun(t, op, domainXml());
      for (const p of HEAVY) expect(pkgs, `${op[0]} ran ${p}`).not.toContain(p);
    });
  }
});

/** The node builtins a hook call of the bundle loaded beyond what `node -e 0` loads. */
function builtinsLoaded(t: TestRoot, op: [string, string] | undefined, xml: string): Set<string> {
  const preload = t.at("/module-list.cjs");
  const out = t.at("/module-list.txt");
  fs.writeFileSync(preload, `process.on("exit", () => require("fs").writeFileSync(${JSON.stringify(out)}, process.moduleLoadList.join("\\n")));\n`);
  const args = op ? [BUNDLE, "hook", "--root", t.root, "--", "vm1", ...op, "-"] : ["-e", "0"];
  const r = spawnSync(process.execPath, ["-r", preload, ...args], { input: xml, env: { LC_ALL: "C" }, cwd: "/", timeout: 60_000 });
  expect(r.status, r.stderr.toString()).toBe(0);
  const list = fs.readFileSync(out, "utf8").split("\n");
  fs.rmSync(out);
  return new Set(list.filter((m) => m.startsWith("NativeModule ")).map((m) => m.slice("NativeModule ".length)));
}

describe("node builtins a hook call loads (docs/performance.md)", () => {
  // child_process pulls in net and the streams, crypto its own dozen modules, perf_hooks eleven.
  const SPAWN = ["child_process", "net"];
  const CRYPTO = ["crypto"];
  const OTHER = ["perf_hooks", "assert"];
  const extra = (t: TestRoot, op: [string, string]) => {
    const base = builtinsLoaded(t, undefined, "");
    return [...builtinsLoaded(t, op, domainXml())].filter((m) => !base.has(m));
  };

  it("prepare loads child_process (the check sees builtins)", () => {
    const t = root();
    expect(extra(t, ["prepare", "begin"])).toEqual(expect.arrayContaining(SPAWN));
  });

  for (const op of [["migrate", "begin"], ["stopped", "end"], ["started", "begin"]] as [string, string][]) {
    it(`${op.join(" ")} loads none of ${[...SPAWN, ...CRYPTO, ...OTHER].join(", ")}`, () => {
      const t = root();
      if (op[0] === "started") {
        // A prepared guest whose QEMU runs in its profile: the whole check, up to "QEMU runs in ...".
        installHook(t);
        expect(callHook(t, ["vm1", "prepare", "begin", "-"], domainXml()).status).toBe(0);
        fs.mkdirSync(t.at("/run/libvirt/qemu"), { recursive: true });
        fs.writeFileSync(t.at("/run/libvirt/qemu/vm1.pid"), "4242\n");
        fs.mkdirSync(t.at("/proc/4242/attr/apparmor"), { recursive: true });
        fs.writeFileSync(t.at("/proc/4242/attr/apparmor/current"), `${NAME} (enforce)\n`);
      }
      const loaded = extra(t, op);
      for (const m of [...SPAWN, ...CRYPTO, ...OTHER]) expect(loaded, `${op[0]} loaded ${m}`).not.toContain(m);
      if (op[0] === "started") expect(t.read(LOG).trim().split("\n").at(-1)).toContain(`result="QEMU runs in ${NAME}"`);
    });
  }

  it(`an unchanged start loads none of ${[...SPAWN, ...CRYPTO, ...OTHER].join(", ")}`, () => {
    const t = root();
    installHook(t);
    expect(callHook(t, ["vm1", "prepare", "begin", "-"], domainXml()).status).toBe(0);
    const loaded = extra(t, ["start", "begin"]);
    for (const m of [...SPAWN, ...CRYPTO, ...OTHER]) expect(loaded, `start loaded ${m}`).not.toContain(m);
  });
});

describe("work the hook does not do", () => {
  /** A parser that records its arguments and then is the real one. */
  function recordingParser(t: TestRoot, extraConfig: Record<string, string> = {}): () => string[] {
    const calls = t.at("/parser-calls");
    const p = t.at("/recording-parser");
    fs.writeFileSync(p, `#!/bin/sh\necho "$*" >> '${calls}'\nexec ${PARSER} "$@"\n`, { mode: 0o755 });
    t.writeConfig({ ...defaultTestConfig(), parser: p, ...extraConfig });
    return () => {
      const lines = fs.existsSync(calls) ? fs.readFileSync(calls, "utf8").split("\n").filter(Boolean) : [];
      fs.rmSync(calls, { force: true });
      return lines;
    };
  }
  const mtimes = (t: TestRoot) => [FILES, PROFILE, STATE].map((p) => fs.statSync(t.at(p)).mtimeMs);
  const ok = (r: { status: number | null; stderr: string }) => expect(r.status, r.stderr).toBe(0);

  it("stopped writes nothing but its log line", () => {
    const t = root();
    installHook(t);
    ok(callHook(t, ["vm1", "prepare", "begin", "-"], domainXml()));
    const before = tree(t);
    const times = mtimes(t);
    const content = [FILES, PROFILE, STATE].map((p) => t.read(p));
    const logBefore = t.read(LOG);
    ok(callHook(t, ["vm1", "stopped", "end", "-"], domainXml()));
    expect(tree(t)).toEqual(before);
    expect(mtimes(t)).toEqual(times);
    expect([FILES, PROFILE, STATE].map((p) => t.read(p))).toEqual(content);
    const added = t.read(LOG).slice(logBefore.length).split("\n").filter(Boolean);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatch(/ op="stopped" exit=0 .*result="nothing to do"$/);
  });

  it("an unchanged prepare runs no parser (a compiled-store hit) and an unchanged start runs no parser", () => {
    const t = root();
    installHook(t);
    const calls = recordingParser(t);

    ok(callHook(t, ["vm1", "prepare", "begin", "-"], domainXml()));
    const cold = calls();
    // The parser's version, once per parser (remembered by its stat signature), then one compile
    // into the compiled-policy store, whose bytes are loaded (docs/compiled-store.md).
    expect(cold.map((c) => c.split(" ")[0])).toEqual(["--version", "-Q"]);
    expect(cold[1]!.split(" ")).toEqual(expect.arrayContaining(["-Q", "-K", "-o"]));
    expect(fs.readdirSync(t.at("/var/cache/virt-aa-hook/entries"))).toEqual([expect.stringMatching(new RegExp(`^${NAME}\\.[0-9a-f]{64}$`))]);

    const times = mtimes(t);
    fs.writeFileSync(t.at("/run/fake-securityfs/.replace"), "");
    ok(callHook(t, ["vm1", "prepare", "begin", "-"], domainXml()));
    expect(calls()).toEqual([]); // loaded from the store: no parser at all
    expect(fs.readFileSync(t.at("/run/fake-securityfs/.replace")).includes(Buffer.from(NAME))).toBe(true);

    ok(callHook(t, ["vm1", "start", "begin", "-"], domainXml()));
    expect(calls()).toEqual([]); // same rules, same mode: nothing to reload
    expect(mtimes(t)).toEqual(times); // .files, profile and state record untouched since the cold prepare
    expect(t.read(LOG)).toMatch(/op="start" exit=0 .*: unchanged"\n$/);
  });

  it("with compiled_store = \"no\", an unchanged prepare loads from the parser cache", () => {
    const t = root();
    installHook(t);
    const calls = recordingParser(t, { compiled_store: "no" });

    ok(callHook(t, ["vm1", "prepare", "begin", "-"], domainXml()));
    const cold = calls();
    expect(cold).toHaveLength(1);
    expect(cold[0]!.split(" ")).toEqual(expect.arrayContaining(["-r", "-W", "-T"])); // new rules: compiled, cache written

    ok(callHook(t, ["vm1", "prepare", "begin", "-"], domainXml()));
    const warm = calls();
    expect(warm).toHaveLength(1);
    const args = warm[0]!.split(" ");
    expect(args).toContain("-r");
    expect(args).not.toContain("-T"); // the cache is trusted: no recompile
    expect(args.at(-1)).toBe(t.at(PROFILE));
    const cache = t.at("/var/cache/apparmor/virt-aa-hook");
    const entries = fs.readdirSync(cache).flatMap((d) => (fs.statSync(path.join(cache, d)).isDirectory() ? fs.readdirSync(path.join(cache, d)) : []));
    expect(entries).toContain(NAME);
  });
});

describe("the V8 code caches hooks/qemu compiles the bundle with", () => {
  const REPO = path.resolve(path.dirname(BUNDLE), "..");
  const bundleText = () => fs.readFileSync(BUNDLE, "utf8");
  const buildId = () => /\/\/# virt-aa-hook-build ([0-9a-f]{64})\n$/.exec(bundleText())?.[1];

  it("the bundle's last line is the sha256 of the rest, and the bundle is ASCII", () => {
    const text = bundleText();
    const id = buildId();
    expect(id).toBeDefined();
    const body = text.slice(0, text.lastIndexOf("//# virt-aa-hook-build "));
    expect(crypto.createHash("sha256").update(body).digest("hex")).toBe(id);
    expect(/[^\x00-\x7f]/.test(text)).toBe(false);
  });

  it("npm run build made one cache per kind of operation, for this node, and V8 accepts them", () => {
    const id = buildId()!.slice(0, 24);
    const wrapped = `(function (exports, require, module, __filename, __dirname) {${bundleText()}\n})`;
    for (const kind of ["sync", "started", "release", "other"]) {
      const cache = `${BUNDLE}.${id}-${process.version}-${process.arch}.${kind}.v8cache`;
      expect(fs.existsSync(cache), cache).toBe(true);
      const script = new vm.Script(wrapped, { filename: BUNDLE, cachedData: fs.readFileSync(cache) });
      expect(script.cachedDataRejected, kind).toBe(false);
    }
  });

  it("a corrupt, foreign or missing cache only means a normal compile", () => {
    const t = root();
    // The launcher and a copy of the bundle in their own directory, with caches we control.
    const dir = t.at("/opt/hook");
    fs.mkdirSync(path.join(dir, "dist"), { recursive: true });
    fs.mkdirSync(path.join(dir, "hooks"), { recursive: true });
    const qemu = path.join(dir, "hooks/qemu");
    const bundle = path.join(dir, "dist/virt-aa-hook.cjs");
    fs.copyFileSync(BUNDLE, bundle);
    fs.copyFileSync(path.join(path.dirname(BUNDLE), "loader.cjs"), path.join(dir, "dist/loader.cjs"));
    const cache = `${bundle}.${buildId()!.slice(0, 24)}-${process.version}-${process.arch}.other.v8cache`;
    const run = () =>
      spawnSync(qemu, ["vm1", "migrate", "begin", "-"], { input: domainXml(), env: { LC_ALL: "C" }, cwd: "/" });
    const logged = () => t.read(LOG).trim().split("\n").at(-1);
    // The launcher outside <root>/etc/libvirt/hooks serves "/": point it at the test root instead.
    const launcher = fs.readFileSync(path.join(REPO, "hooks/qemu"), "utf8").replace('--root "${ROOT:-/}"', `--root '${t.root}'`);
    expect(launcher).toContain(`--root '${t.root}'`);
    fs.writeFileSync(qemu, launcher, { mode: 0o755 });
    for (const content of [undefined, Buffer.from("not a code cache"), fs.readFileSync(`${BUNDLE}.${buildId()!.slice(0, 24)}-${process.version}-${process.arch}.sync.v8cache`).subarray(0, 5000)]) {
      fs.rmSync(cache, { force: true });
      if (content) fs.writeFileSync(cache, content);
      const r = run();
      expect(r.status, r.stderr.toString()).toBe(0);
      expect(r.stderr.toString()).toBe("");
      expect(logged()).toMatch(/ guest="vm1" op="migrate" exit=0 .*result="nothing to do"$/);
    }
  });
});
